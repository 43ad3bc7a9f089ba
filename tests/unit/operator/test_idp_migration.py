"""Schema revision 0002 (identity providers) on an existing operator database, SQLite and PostgreSQL: pointers
staff registered before it stay, belonging to staff (``idp_id`` NULL), and the revision downgrades cleanly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from tenantcard.operator.db.session import alembic_config, make_engine, migrate


def test_revision_0002_keeps_existing_pointers(db_url: str) -> None:
    migrate(db_url, "0001")
    engine = make_engine(db_url)
    device = {
        "id": "00112233445566778899",
        "serial": "OLD-1",
        "status": "active",
        "certificate_pem": "-",
        "isd_kvn": 1,
        "isd_keys_wrapped": b"x",
        "created_at": 1,
    }
    with engine.begin() as c:
        columns = ", ".join(device)
        values = ", ".join(f":{k}" for k in device)
        c.execute(sa.text(f"INSERT INTO devices ({columns}) VALUES ({values})"), device)
        c.execute(
            sa.text("INSERT INTO device_pointers (pointer, device_id) VALUES ('old-pointer', :d)"), {"d": device["id"]}
        )
    migrate(db_url)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT pointer, device_id, idp_id FROM device_pointers")).all()
        assert [tuple(r) for r in rows] == [("old-pointer", device["id"], None)]
        assert c.execute(sa.text("SELECT count(*) FROM identity_providers")).scalar() == 0
    engine.dispose()
    command.downgrade(alembic_config(db_url), "0001")  # and back
    engine = make_engine(db_url)
    assert "identity_providers" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    migrate(db_url)
