"""Fixtures of the identity provider's unit tests: the IdP app in-process, a CA, a device over TCP."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.unit.idp.idp_support import (
    REDIRECT_A,
    REDIRECT_B,
    Ca,
    InMemoryDirectory,
    RunningDevice,
    new_ca,
    running_device,
)

from tenantcard.idp.app import create_app
from tenantcard.idp.domain import Disclosure
from tenantcard.idp.login.directory import DeviceStatus
from tenantcard.idp.oidc.clients import ClientService, NewClient
from tenantcard.idp.settings import IdpSettings
from tenantcard.provider.oidc import OidcClient

ISSUER = "http://127.0.0.1:8600"


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Idp:
    app: FastAPI
    http: TestClient
    clock: Clock
    directory: InMemoryDirectory
    bank: NewClient  # pairwise, sector bank.example
    mail: NewClient  # pairwise, sector mail.example
    gov: NewClient  # pairwise + device_id
    anon: NewClient  # anonymous

    def oidc_client(self, client: NewClient, redirect_uri: str | None = None) -> OidcClient:
        return OidcClient(
            ISSUER,
            client.client.client_id,
            client.client_secret,
            redirect_uri or client.client.redirect_uris[0],
            http=self.http,
            clock=self.clock,
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
