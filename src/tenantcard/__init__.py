"""tenantcard: one secure device, several isolated containers rented by different service providers."""

__version__ = "0.1.0"
