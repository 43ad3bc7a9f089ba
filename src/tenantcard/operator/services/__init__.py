"""tenantcard.operator.services."""
