"""End to end over real HTTP: Authlib's OAuth 2.0 client runs the code flow (PKCE S256) against the IdP served
by uvicorn; the provider verifies the ID token and opens a session to the device the token points at.
The IdP's state lives on the real PostgreSQL server here (SQLite is the unit tests' default)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from tenantcard.client.isd import IsdSession
from tenantcard.crypto.identity import verify_device_auth
from tenantcard.idp.app import create_app
from tenantcard.idp.login.directory import DeviceStatus
from tenantcard.idp.oidc.clients import ClientService, NewClient
from tenantcard.idp.settings import IdpSettings
from tenantcard.provider.oidc import OidcClient, TokenError
from tenantcard.transport.tcp_client import connect
from tests.unit.idp.idp_support import (
    REDIRECT_A,
    REDIRECT_B,
    Ca,
    InMemoryDirectory,
    RunningDevice,
    bound_socket,
    new_ca,
    running_device,
    serve_http,
)

pytestmark = pytest.mark.postgres


@dataclass
class LiveIdp:
    issuer: str
    directory: InMemoryDirectory
    bank: NewClient
    mail: NewClient
    device: RunningDevice
    ca: Ca


@pytest.fixture
def live(tmp_path: Path, postgres_url: str) -> Iterator[LiveIdp]:
    ca = new_ca()
    with running_device(tmp_path, ca) as device, bound_socket() as (sock, issuer):
        directory = InMemoryDirectory()
        directory.statuses[device.device_id] = DeviceStatus.ACTIVE
        settings = IdpSettings(issuer=issuer, db_url=postgres_url, vault_uri=f"file:{tmp_path / 'idp.master.key'}")
        app = create_app(settings, directory=directory, root_ca=ca.cert)
        clients: ClientService = app.state.clients
        bank = clients.register("Bank", [REDIRECT_A])
        mail = clients.register("Mail", [REDIRECT_B])
        with serve_http(app, sock):
            yield LiveIdp(issuer, directory, bank, mail, device, ca)
        app.state.engine.dispose()


def _authlib_login(live: LiveIdp, client: NewClient, hint: str) -> tuple[dict[str, object], str]:
    """The code flow driven by Authlib's client; the browser's part is one GET that is not followed."""
    metadata = httpx.get(live.issuer + "/.well-known/openid-configuration").json()
    redirect_uri = client.client.redirect_uris[0]
    with OAuth2Client(
        client.client.client_id,
        client.client_secret,
        scope="openid",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    ) as oauth:
        verifier = generate_token(48)
        nonce = secrets.token_urlsafe(16)
        url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, login_hint=hint
        )
        browser = httpx.get(url, follow_redirects=False)
        assert browser.status_code == 302, browser.text
        answered = parse_qs(urlsplit(browser.headers["location"]).query)
        if "error" in answered:  # what the provider's callback sees: RFC 6749 §4.1.2.1
            raise OAuthError(error=answered["error"][0])
        token = oauth.fetch_token(
            metadata["token_endpoint"],
            authorization_response=browser.headers["location"],
            code_verifier=verifier,
            state=state,
        )
    return dict(token), nonce


def test_code_flow_with_authlib_then_the_provider_reaches_the_device(live: LiveIdp) -> None:
    token, nonce = _authlib_login(live, live.bank, live.device.address)
    assert token["token_type"] == "Bearer"
    provider = OidcClient(live.issuer, live.bank.client.client_id, live.bank.client_secret, REDIRECT_A)
    id_token = provider.verify_id_token(str(token["id_token"]), nonce)
    assert id_token.device_address == live.device.address and id_token.amr == ("hwk",)

    # The provider opens its own session to the address in the token and checks who answers there.
    challenge = secrets.token_bytes(32)
    with connect(id_token.device_address, timeout=5) as connection:
        isd = IsdSession(connection)
        isd.select()
        device_id = isd.get_device_id()
        chain = isd.get_certificates()
        signature = isd.internal_authenticate(challenge)
    verify_device_auth(list(chain), live.ca.cert, device_id, challenge, signature)
    assert device_id.hex() == live.device.device_id


def test_two_providers_different_sub_one_provider_same_sub(live: LiveIdp) -> None:
    subs: dict[str, set[str]] = {"bank": set(), "mail": set()}
    for name, client in (("bank", live.bank), ("mail", live.mail), ("bank", live.bank), ("mail", live.mail)):
        token, nonce = _authlib_login(live, client, live.device.address)
        provider = OidcClient(
            live.issuer, client.client.client_id, client.client_secret, client.client.redirect_uris[0]
        )
        subs[name].add(provider.verify_id_token(str(token["id_token"]), nonce).sub)
    assert len(subs["bank"]) == 1 and len(subs["mail"]) == 1
    assert subs["bank"] != subs["mail"]


def test_lost_device_can_no_longer_log_in(live: LiveIdp) -> None:
    _authlib_login(live, live.bank, live.device.address)
    live.directory.statuses[live.device.device_id] = DeviceStatus.LOST
    with pytest.raises(OAuthError) as caught:
        _authlib_login(live, live.bank, live.device.address)
    assert caught.value.error == "access_denied"


def test_replayed_code_over_http(live: LiveIdp) -> None:
    provider = OidcClient(live.issuer, live.bank.client.client_id, live.bank.client_secret, REDIRECT_A)
    request = provider.authorization_url(login_hint=live.device.address)
    location = httpx.get(request.url, follow_redirects=False).headers["location"]
    provider.handle_redirect(location, request)
    with pytest.raises(TokenError) as caught:
        provider.handle_redirect(location, request)
    assert caught.value.oauth_error == "invalid_grant"
