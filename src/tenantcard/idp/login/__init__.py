"""tenantcard.idp.login."""
