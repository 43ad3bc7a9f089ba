"""Shared pieces of the identity provider's tests: a real software device served over TCP, an in-memory device
directory (for the flow's tests only: the HTTP one talks to the operator), and functions that drive the code flow."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tenantcard.crypto.identity import issue_device_certificate, make_ca
from tenantcard.device.os import Device
from tenantcard.device.provision import DeviceSpec, create_device_store, gp_test_keys
from tenantcard.idp.login.base import DeviceProof
from tenantcard.idp.login.directory import DeviceStatus, UnknownDeviceError
from tenantcard.idp.oidc.clients import NewClient
from tenantcard.keyvault import FileKeyVault
from tenantcard.provider.oidc import OidcClient
from tenantcard.transport.tcp_server import DeviceServerThread

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


REDIRECT_A = "https://bank.example/callback"
REDIRECT_B = "https://mail.example/oidc"


class InMemoryDirectory:
    """The operator's directory as a dict: handle -> address, device id -> status."""

    def __init__(self) -> None:
        self.handles: dict[str, str] = {}
        self.statuses: dict[str, DeviceStatus] = {}
        self.pointers: dict[str, str] = {}  # pointer -> device id
        self.proofs: dict[str, DeviceProof] = {}  # pointer -> the login proof shown with it

    def resolve(self, handle: str) -> str:
        try:
            return self.handles[handle]
        except KeyError:
            raise UnknownDeviceError("unknown handle") from None

    def status(self, device_id: str) -> DeviceStatus:
        try:
            return self.statuses[device_id]
        except KeyError:
            raise UnknownDeviceError("unknown device") from None

    def register_pointer(self, device_id: str, pointer: str, proof: DeviceProof) -> None:
        self.pointers[pointer] = device_id
        self.proofs[pointer] = proof


@dataclass(frozen=True)
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def new_ca(name: str = "test operator CA") -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    return Ca(key, make_ca(name, key))


@dataclass(frozen=True)
class RunningDevice:
    device: Device
    server: DeviceServerThread

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def device_id(self) -> str:
        return self.device.device_id.hex()


@contextmanager
def running_device(directory_path: Path, ca: Ca, containers: int = 2) -> Iterator[RunningDevice]:
    """A device whose identity certificate is issued by ``ca``, served on 127.0.0.1 at a free port."""
    import datetime

    device_id = secrets.token_bytes(10)
    identity = ec.generate_private_key(ec.SECP256R1())
    not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)
    cert = issue_device_certificate(ca.key, ca.cert, identity.public_key(), device_id, "TEST-DEVICE", not_after)
    spec = DeviceSpec(
        device_id=device_id,
        serial="TEST-" + device_id.hex().upper(),
        isd_keys=gp_test_keys(),
        identity_key=identity,
        certificate_chain=[cert],
        containers=containers,
        root=ca.cert,
    )
    store = directory_path / f"{device_id.hex()}.db"
    vault = FileKeyVault(directory_path / f"{device_id.hex()}.seal")
    create_device_store(store, spec, vault)
    device = Device.open(store, vault)
    server = DeviceServerThread(device).start()
    try:
        yield RunningDevice(device, server)
    finally:
        server.stop()
        device.close()


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def new_pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return Pkce(verifier, challenge)


def authorize_params(
    client_id: str, redirect_uri: str, pkce: Pkce, login_hint: str | None, **extra: str
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    if login_hint is not None:
        params["login_hint"] = login_hint
    params.update(extra)
    return {k: v for k, v in params.items() if v != ""}


def redirect_query(response: httpx.Response) -> dict[str, str]:
    """The query of the Location a 302 from /authorize points at (code/state or error/state)."""
    assert response.status_code == 302, (response.status_code, response.text)
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(http: httpx.Client, params: dict[str, str]) -> httpx.Response:
    return http.get("/authorize?" + urlencode(params), follow_redirects=False)


@contextmanager
def bound_socket() -> Iterator[tuple[object, str]]:
    """A listening-ready TCP socket on 127.0.0.1 at a free port, and the http:// base URL it will serve."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@contextmanager
def serve_http(app: object, sock: object) -> Iterator[None]:
    """Serve an ASGI app with uvicorn in a background thread on an already bound socket."""
    import socket
    import threading
    import time

    import uvicorn

    assert isinstance(sock, socket.socket)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
