"""tenantcard.cli."""
