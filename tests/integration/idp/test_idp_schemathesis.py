"""schemathesis against the IdP's OpenAPI document: generated requests never get a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from tenantcard.idp.app import create_app
from tenantcard.idp.oidc.clients import ClientService
from tenantcard.idp.settings import IdpSettings
from tests.unit.idp.idp_support import REDIRECT_A, InMemoryDirectory, new_ca

# One app on an in-memory SQLite database for the whole module (schemathesis builds its tests at collection).
_vault_dir = tempfile.TemporaryDirectory()
_app = create_app(
    IdpSettings(
        issuer="http://127.0.0.1:8600",
        db_url="sqlite://",
        vault_uri=f"file:{Path(_vault_dir.name) / 'idp.master.key'}",
        device_timeout_seconds=1,
    ),
    directory=InMemoryDirectory(),
    root_ca=new_ca().cert,
)
_clients: ClientService = _app.state.clients
_clients.register("Bank", [REDIRECT_A])
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:200])
