"""tenantcard.device."""
