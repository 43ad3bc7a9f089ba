"""tenantcard.idp.oidc."""
