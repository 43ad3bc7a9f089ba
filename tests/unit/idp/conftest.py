"""Fixtures of the identity provider's unit tests: the IdP app in-process, a CA, a device over TCP."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenantcard.idp.app import create_app
from tenantcard.idp.domain import Disclosure
from tenantcard.idp.login.directory import DeviceStatus
from tenantcard.idp.oidc.clients import ClientService
from tenantcard.idp.settings import IdpSettings
from tests.unit.idp.idp_support import (
    ISSUER,
    REDIRECT_A,
    REDIRECT_B,
    Ca,
    Clock,
    Idp,
    InMemoryDirectory,
    RunningDevice,
    new_ca,
    running_device,
)


@pytest.fixture(scope="session")
def ca() -> Ca:
    return new_ca()


@pytest.fixture
def device(tmp_path: Path, ca: Ca) -> Iterator[RunningDevice]:
    with running_device(tmp_path, ca) as running:
        yield running


@pytest.fixture
def idp(tmp_path: Path, ca: Ca, device: RunningDevice) -> Iterator[Idp]:
    directory = InMemoryDirectory()
    directory.handles["my-card"] = device.address
    directory.handles[device.device_id] = device.address
    directory.statuses[device.device_id] = DeviceStatus.ACTIVE
    clock = Clock()
    settings = IdpSettings(issuer=ISSUER, db_url=f"sqlite:///{tmp_path / 'idp.db'}", device_timeout_seconds=5)
    app = create_app(settings, directory=directory, root_ca=ca.cert, clock=clock)
    clients: ClientService = app.state.clients
    bank = clients.register("Bank", [REDIRECT_A])
    mail = clients.register("Mail", [REDIRECT_B])
    gov = clients.register("Gov", ["https://gov.example/cb"], Disclosure.DEVICE_ID)
    anon = clients.register("Anon", ["https://anon.example/cb"], Disclosure.ANONYMOUS)
    with TestClient(app, base_url=ISSUER) as http:
        yield Idp(app, http, clock, directory, bank, mail, gov, anon)


@pytest.fixture
def nonce() -> str:
    return secrets.token_urlsafe(16)
