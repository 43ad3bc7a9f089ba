"""tenantcard.idp."""
