"""tenantcard.operator."""
