"""tenantcard.operator.api."""
