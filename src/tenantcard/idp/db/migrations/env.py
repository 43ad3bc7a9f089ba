"""Alembic environment: runs on the connection handed over by ``tenantcard.idp.db.migrate``."""

from __future__ import annotations

from alembic import context

from tenantcard.idp.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table="idp_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
