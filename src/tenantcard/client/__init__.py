"""tenantcard.client."""
