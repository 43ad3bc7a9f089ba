"""Storage of the identity provider: SQLAlchemy models, repositories and Alembic migrations."""
