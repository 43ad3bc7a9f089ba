"""The access phase with every real component: the operator over HTTP (device directory, CA, loss reports),
a manufactured device over TCP, the IdP over HTTP, Authlib's OAuth client, and the provider SDK signing a
challenge in its own container on the device the ID token points at."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from tenantcard.client.container import ContainerSession
from tenantcard.client.pki import PkiClient
from tenantcard.idp.app import create_app
from tenantcard.idp.oidc.clients import ClientService, NewClient
from tenantcard.idp.settings import IdpSettings
from tenantcard.provider.keystore import FileKeystore
from tenantcard.provider.oidc import IdToken, OidcClient
from tenantcard.provider.sdk import OperatorClient, Provider
from tenantcard.transport.tcp_client import connect
from tests.integration.operator.conftest import LiveOperator, operator_settings
from tests.support.operator_rig import manufacture, wait_job
from tests.unit.idp.idp_support import bound_socket, serve_http

REDIRECT = "https://bank.example/callback"


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[LiveOperator]:
    op = LiveOperator(operator_settings(tmp_path, f"sqlite:///{tmp_path / 'operator.db'}")).start()
    yield op
    op.stop()


def _login(issuer: str, client: NewClient, hint: str) -> tuple[httpx.Response, OAuth2Client, str, str]:
    metadata = httpx.get(issuer + "/.well-known/openid-configuration").json()
    oauth = OAuth2Client(
        client.client.client_id,
        client.client_secret,
        scope="openid",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier, nonce = generate_token(48), secrets.token_urlsafe(16)
    url, state = oauth.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, login_hint=hint
    )
    browser = httpx.get(url, follow_redirects=False)
    assert browser.status_code == 302, browser.text
    token = None
    if "code" in parse_qs(urlsplit(browser.headers["location"]).query):
        token = oauth.fetch_token(
            metadata["token_endpoint"],
            authorization_response=browser.headers["location"],
            code_verifier=verifier,
            state=state,
        )
    oauth.close()
    return browser, oauth, nonce, str(token["id_token"]) if token else ""


def test_phase_two_with_the_real_operator(operator: LiveOperator, tmp_path: Path) -> None:
    admin = operator.admin()
    dev = manufacture(admin, containers=2, quota=8192, serial="SER-IDP-1")
    try:
        # Phase 1 (precondition): the bank takes a container over and makes a signing key in it.
        bank = admin.post("/v1/admin/providers", json={"name": "Bank"}).json()
        contract = admin.post("/v1/admin/contracts", json={"provider_id": bank["id"], "option": "A", "quota": 4096})
        sdk = Provider(
            FileKeystore.create(tmp_path / "bank.ks", "bank passphrase", n=2**10),
            OperatorClient(operator.url, bank["credential"]),
        )
        status = sdk.operator.request_container(contract.json()["id"], serial=dev.serial)  # type: ignore[union-attr]
        assert status.bundle is not None
        record = sdk.take_ownership(status.bundle)
        with sdk.open(record.name) as session:
            public = PkiClient(session).generate_key(1, "p256")
        assert isinstance(public, ec.EllipticCurvePublicKey)

        holder = admin.post("/v1/admin/holders", json={"name": "Alice"}).json()
        linked = admin.post(f"/v1/admin/holders/{holder['id']}/devices", json={"device_id": dev.device_id})
        assert linked.status_code == 204

        # The IdP gets its own credential role from the operator's staff (not the staff credential).
        registered = admin.post("/v1/admin/idps", json={"name": "Main IdP"})
        assert registered.status_code == 201, registered.text
        idp_credential = registered.json()["credential"]
        assert idp_credential.startswith("tci_")

        with bound_socket() as (sock, issuer):
            # The IdP's directory is the operator: no CA file, it is fetched from GET /v1/ca.
            settings = IdpSettings(
                issuer=issuer,
                db_url=f"sqlite:///{tmp_path / 'idp.db'}",
                operator_url=operator.url,
                operator_token=SecretStr(idp_credential),
            )
            idp_app = create_app(settings)
            clients: ClientService = idp_app.state.clients
            client = clients.register("Bank", [REDIRECT])
            with serve_http(idp_app, sock):
                # Phase 2: log in by the device id (a handle the operator resolves to the checked-in address).
                _, _, nonce, raw = _login(issuer, client, dev.device_id)
                oidc = OidcClient(issuer, client.client.client_id, client.client_secret, REDIRECT)
                token: IdToken = oidc.verify_id_token(raw, nonce)
                assert token.device_address == dev.address and token.amr == ("hwk",)

                # The provider reaches its container at the address in the token and signs a fresh challenge.
                challenge = secrets.token_bytes(32)
                with connect(token.device_address, timeout=10) as conn:
                    session = ContainerSession(conn, record.aid)
                    session.select()
                    session.authenticate(record.keys)
                    signature = PkiClient(session).sign(1, challenge)
                public.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))

                # Same provider, same sub, by address this time, and by the sub itself.
                _, _, nonce2, raw2 = _login(issuer, client, dev.address)
                assert oidc.verify_id_token(raw2, nonce2).sub == token.sub
                _, _, nonce3, raw3 = _login(issuer, client, token.sub)
                assert oidc.verify_id_token(raw3, nonce3).device_address == dev.address

                # The sub is the operator's IdP pointer for this device: phase 1 by pointer.
                by_pointer = sdk.operator.request_container(  # type: ignore[union-attr]
                    contract.json()["id"], idp_pointer=token.sub
                )
                assert by_pointer.bundle is not None and by_pointer.bundle.device_id.lower() == dev.device_id

                # The IdP registered that pointer under its own role, with the device's proof, and resolves it.
                pointer_added = admin.get("/v1/admin/audit", params={"subject": dev.device_id, "limit": 1000}).json()
                actors = {e["actor"] for e in pointer_added if e["action"] == "device.pointer_added"}
                assert actors == {f"idp:{registered.json()['id']}"}
                with operator.client(idp_credential) as as_idp:
                    resolved = as_idp.post("/v1/idp/resolve", json={"handle": token.sub})
                    assert resolved.status_code == 200, resolved.text
                    assert resolved.json() == {"device_id": dev.device_id, "address": dev.address, "status": "active"}

                # Phase 3: the holder reports the device lost; it can no longer log in.
                lost = operator.client(holder["credential"]).post(f"/v1/holder/devices/{dev.device_id}/lost")
                assert lost.status_code == 202
                wait_job(admin, lost.json()["id"])
                browser, _, _, raw4 = _login(issuer, client, dev.device_id)
                refused = parse_qs(urlsplit(browser.headers["location"]).query)
                assert refused["error"] == ["access_denied"] and raw4 == ""
            idp_app.state.engine.dispose()
    finally:
        dev.stop()
