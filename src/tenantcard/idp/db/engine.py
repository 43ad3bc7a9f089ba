"""Engine creation and schema upgrade (Alembic, run programmatically from the package's migrations)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from tenantcard.keyvault import KeyVault

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; an in-memory SQLite URL gets one shared connection (for tests and one-off runs)."""
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = (
            create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
            if in_memory
            else create_engine(url, connect_args={"check_same_thread": False})
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA foreign_keys=ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine, vault: KeyVault | None = None) -> None:
    """Bring the schema to the newest revision (idempotent). ``vault`` seals what older revisions stored in
    clear (revision 0003); a database holding such rows refuses to upgrade without it."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["vault"] = vault
        command.upgrade(config, "head")
