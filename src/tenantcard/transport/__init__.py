"""tenantcard.transport."""
