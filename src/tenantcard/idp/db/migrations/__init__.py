"""Alembic migrations of the identity provider's schema."""
