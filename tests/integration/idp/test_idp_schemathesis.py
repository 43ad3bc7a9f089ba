"""schemathesis against the IdP's OpenAPI document: generated requests never get a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from tests.unit.idp.idp_support import REDIRECT_A, InMemoryDirectory, new_ca

from tenantcard.idp.app import create_app
from tenantcard.idp.oidc.clients import ClientService
from tenantcard.idp.settings import IdpSettings


@pytest.fixture
def idp_schema(tmp_path: Path) -> Any:
    settings_ = IdpSettings(
        issuer="http://127.0.0.1:8600", db_url=f"sqlite:///{tmp_path / 'idp.db'}", device_timeout_seconds=1
    )
    app = create_app(settings_, directory=InMemoryDirectory(), root_ca=new_ca().cert)
    clients: ClientService = app.state.clients
    clients.register("Bank", [REDIRECT_A])
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("idp_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:200])
