"""tenantcard.device.functions."""
