"""tenantcard.provider."""
