"""Settings sources, the direct-address switch, the HTTP directory's input checks, and garbage ID tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantcard.idp.app import ConfigurationError, create_app
from tenantcard.idp.login.base import DeviceProof
from tenantcard.idp.login.directory import DirectoryError, HttpDeviceDirectory, UnknownDeviceError
from tenantcard.idp.oidc.clients import ClientService
from tenantcard.idp.settings import IdpSettings, load_settings
from tenantcard.provider.oidc import TokenError
from tests.unit.idp.idp_support import (
    ISSUER,
    REDIRECT_A,
    Ca,
    Clock,
    Idp,
    InMemoryDirectory,
    authorize,
    authorize_params,
    new_pkce,
)


def test_settings_from_toml_environment_and_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "idp.toml"
    config.write_text('issuer = "https://idp.example"\ncode_lifetime_seconds = 30\nid_token_lifetime_seconds = 600\n')
    monkeypatch.setenv("TENANTCARD_IDP_CODE_LIFETIME_SECONDS", "45")
    loaded = load_settings(config, id_token_lifetime_seconds=120, operator_url=None)
    assert loaded.issuer == "https://idp.example"
    assert loaded.code_lifetime_seconds == 45  # the environment beats the file
    assert loaded.id_token_lifetime_seconds == 120  # arguments beat both


def test_missing_operator_configuration_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        create_app(IdpSettings(db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    with pytest.raises(ConfigurationError):
        create_app(IdpSettings(db_url=f"sqlite:///{tmp_path / 'b.db'}"), directory=InMemoryDirectory())
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigurationError):
        create_app(
            IdpSettings(db_url=f"sqlite:///{tmp_path / 'c.db'}", operator_ca_pem=missing),
            directory=InMemoryDirectory(),
        )


def test_direct_addresses_can_be_turned_off(tmp_path: Path, ca: Ca) -> None:
    settings_ = IdpSettings(issuer=ISSUER, db_url=f"sqlite:///{tmp_path / 'idp.db'}", allow_direct_addresses=False)
    app = create_app(settings_, directory=InMemoryDirectory(), root_ca=ca.cert)
    clients: ClientService = app.state.clients
    bank = clients.register("Bank", [REDIRECT_A])
    with TestClient(app, base_url=ISSUER) as http:
        params = authorize_params(bank.client.client_id, REDIRECT_A, new_pkce(), "tcp://127.0.0.1:4000")
        response = authorize(http, params)
    assert response.status_code == 302 and "error=invalid_request" in response.headers["location"]


@pytest.mark.parametrize("handle", ["", "../admin", "a" * 21, "zz" * 10, "0123456789abcdef012/"])
def test_http_directory_refuses_malformed_device_ids_without_asking(handle: str) -> None:
    directory = HttpDeviceDirectory("http://127.0.0.1:9")  # nothing listens: a request would fail differently
    with pytest.raises(UnknownDeviceError):
        directory.status(handle)
    with pytest.raises(UnknownDeviceError):
        directory.register_pointer(handle, "pointer", DeviceProof(bytes(32), bytes(70)))
    directory.close()


@pytest.mark.parametrize("handle", ["", "../admin", "0123456789abcdef012/", "has space", "x" * 201, "é", "a\nb"])
def test_http_directory_refuses_malformed_handles_without_asking(handle: str) -> None:
    directory = HttpDeviceDirectory("http://127.0.0.1:9")
    with pytest.raises(UnknownDeviceError):
        directory.resolve(handle)
    directory.close()


@pytest.mark.parametrize("handle", ["a" * 21, "zz" * 10, "Ab-_9.x:y", "0123456789abcdef0123"])
def test_http_directory_asks_the_operator_about_device_ids_and_pointers(handle: str) -> None:
    directory = HttpDeviceDirectory("http://127.0.0.1:9")  # nothing listens: asking fails as unreachable
    with pytest.raises(DirectoryError, match="operator unreachable") as raised:
        directory.resolve(handle)
    assert not isinstance(raised.value, UnknownDeviceError)
    directory.close()


@settings(max_examples=60)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_garbage_id_tokens_raise_token_error_only(idp_for_garbage: Idp, garbage: str) -> None:
    with pytest.raises(TokenError):
        idp_for_garbage.oidc_client(idp_for_garbage.bank).verify_id_token(garbage, "nonce")


@pytest.fixture(scope="module")
def idp_for_garbage(tmp_path_factory: pytest.TempPathFactory) -> Idp:
    from fastapi import FastAPI

    from tests.unit.idp.idp_support import new_ca

    path = tmp_path_factory.mktemp("garbage")
    app: FastAPI = create_app(
        IdpSettings(issuer=ISSUER, db_url=f"sqlite:///{path / 'idp.db'}"),
        directory=InMemoryDirectory(),
        root_ca=new_ca().cert,
    )
    clients: ClientService = app.state.clients
    registered = [clients.register(n, [f"https://{n}.example/cb"]) for n in ("bank", "mail", "gov", "anon")]
    http = TestClient(app, base_url=ISSUER)
    return Idp(app, http, Clock(), InMemoryDirectory(), *registered)
