"""The SDK's own checks: authorization bundles (parse, save 0600, refuse tampered / spent / expired ones
before touching the device) and the operator client's error mapping."""

from __future__ import annotations

import json
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.provider.errors import BundleError, OperatorApiError, OwnershipError
from tenantcard.provider.keystore import FileKeystore
from tenantcard.provider.sdk import AuthorizationBundle, AuthorizationStatus, OperatorClient, Provider
from tests.support.provider_rig import Rig


def bundle_json(**overrides: Any) -> dict[str, Any]:
    keys = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x01)
    kcvs = keys.kcvs()
    data: dict[str, Any] = {
        "device_id": "0A0B0C0D0E0F10111213",
        "device_address": "127.0.0.1:1",
        "container_id": "c-1",
        "container_aid": "F07463000000",
        "kvn": 1,
        "keys": {"enc": keys.enc.hex(), "mac": keys.mac.hex(), "dek": keys.dek.hex()},
        "kcvs": {"enc": kcvs[0].hex(), "mac": kcvs[1].hex(), "dek": kcvs[2].hex()},
        "expires_at": int(time.time()) + 600,
    }
    data.update(overrides)
    return data


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, "inprocess", containers=1)
    yield r
    r.close()


def test_bundle_roundtrip_and_file_mode(tmp_path: Path) -> None:
    bundle = AuthorizationBundle.from_json("auth-1", bundle_json())
    assert bundle.initial_keys is not None and bundle.container_aid == bytes.fromhex("F07463000000")
    assert bundle.initial_keys.enc.hex() not in repr(bundle)
    path = tmp_path / "b.json"
    bundle.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = AuthorizationBundle.load(path)
    assert again.to_json() == bundle.to_json() and again.authorization_id == "auth-1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"kvn": "x"},
        {"container_aid": "not hex"},
        {"keys": {"enc": "00", "mac": "00", "dek": "00"}},
        {"kcvs": None},
        {"expires_at": None},
        {"device_id": None, "kcvs": {}},
    ],
)
def test_malformed_bundles(overrides: dict[str, Any]) -> None:
    data = bundle_json(**overrides)
    with pytest.raises(BundleError):
        AuthorizationBundle.from_json("a", data)


def test_bundle_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleError):
        AuthorizationBundle.load(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text(json.dumps({"no": "id"}))
    with pytest.raises(BundleError):
        AuthorizationBundle.load(tmp_path / "x.json")


def test_spent_expired_and_tampered_bundles_fail_before_the_device(rig: Rig, tmp_path: Path) -> None:
    provider = Provider(FileKeystore.create(tmp_path / "ks", "pw", n=2**10), connect=rig.connect)
    good = rig.authorize(0, "p")
    spent = AuthorizationBundle.from_json("a", {**good.to_json(), "keys": None})
    with pytest.raises(OwnershipError, match="already used"):
        provider.take_ownership(spent)
    expired = AuthorizationBundle.from_json("a", {**good.to_json(), "expires_at": int(time.time()) - 1})
    with pytest.raises(OwnershipError, match="expired"):
        provider.take_ownership(expired)
    tampered = AuthorizationBundle.from_json("a", {**good.to_json(), "kcvs": {"enc": "000000", "mac": "", "dek": ""}})
    with pytest.raises(OwnershipError, match="key check values"):
        provider.take_ownership(tampered)
    with pytest.raises(OwnershipError, match="AES-128"):
        provider.take_ownership(good, key_length=24)
    assert provider.keystore.names() == []
    record = provider.take_ownership(good)  # the bundle itself was never used by the refusals above
    assert provider.keystore.names() == [record.name]


def test_unreachable_device_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = Provider(FileKeystore.create(tmp_path / "ks", "pw", n=2**10))
    bundle = AuthorizationBundle.from_json("a", bundle_json(device_address=f"127.0.0.1:{port}"))
    with pytest.raises(OwnershipError, match="cannot reach the device"):
        provider.take_ownership(bundle)
    assert provider.keystore.names() == []


def test_operator_client_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/containers"):
            return httpx.Response(403, json={"error": {"code": "forbidden", "message": "not yours"}})
        if request.url.path.endswith("/authorizations/x"):
            return httpx.Response(200, text="not json")
        return httpx.Response(502, text="bad gateway")

    client = OperatorClient("http://operator.test", "cred", transport=httpx.MockTransport(handler))
    with pytest.raises(OperatorApiError) as forbidden:
        client.containers()
    assert forbidden.value.status == 403 and forbidden.value.code == "forbidden" and "not yours" in str(forbidden.value)
    with pytest.raises(OperatorApiError, match="not JSON"):
        client.authorization("x")
    with pytest.raises(OperatorApiError) as gateway:
        client.revoke("c")
    assert gateway.value.status == 502 and "cred" not in str(gateway.value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = OperatorClient(f"http://127.0.0.1:{port}", "secret-credential", timeout=2)
    with down, pytest.raises(OperatorApiError) as unreachable:
        down.containers()
    assert unreachable.value.status == 0 and "secret-credential" not in str(unreachable.value)


def test_authorization_status_parsing() -> None:
    status = AuthorizationStatus.from_json(
        {"id": "a", "status": "placed", "contract_id": "c", "device_id": "d", "bundle": bundle_json()}
    )
    assert status.bundle is not None and status.bundle.authorization_id == "a"
    with pytest.raises(OperatorApiError):
        AuthorizationStatus.from_json({"status": "placed"})
