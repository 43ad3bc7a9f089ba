"""tenantcard.operator.db."""
