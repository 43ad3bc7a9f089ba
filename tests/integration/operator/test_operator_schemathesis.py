"""schemathesis against the operator's OpenAPI document: no 5xx, every response matches its documented schema,
status code and content type — as staff, as a provider, as a holder and as an identity provider."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tenantcard.operator.app import create_app
from tenantcard.operator.settings import OperatorSettings
from tests.support.operator_rig import ADMIN

# One app on its own SQLite file for the whole module (schemathesis builds its tests at collection).
_dir = Path(tempfile.mkdtemp(prefix="operator-schemathesis-"))
_app = create_app(
    OperatorSettings(
        db_url=f"sqlite:///{_dir / 'operator.db'}",
        vault_uri=f"file:{_dir / 'master.key'}",
        admin_token=SecretStr(ADMIN),
        device_store_dir=_dir / "devices",
        run_workers=False,
        auth_failure_limit=1_000_000,
        device_timeout_seconds=0.5,
    )
)
_svc = _app.state.services
_, _PROVIDER = _svc.registry.register_provider("Schema Provider")
_, _HOLDER = _svc.registry.create_holder("Schema Holder")
_, _IDP = _svc.idps.register("Schema IdP")
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


def test_the_schema_covers_the_idp_routes() -> None:
    operations = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}  # type: ignore[union-attr]
    assert ("POST", "/v1/idp/resolve") in operations
    assert ("POST", "/v1/idp/devices/{device_id}/pointers") in operations


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_operator_api_conforms(case: Any) -> None:
    for credential in (ADMIN, _PROVIDER, _HOLDER, _IDP):
        case.call_and_validate(headers={"Authorization": f"Bearer {credential}"}, checks=CHECKS)
