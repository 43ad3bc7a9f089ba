"""tenantcard.crypto."""
