"""The provider's SDK: the operator's REST API (request a container, report ownership, revoke) and the
ownership of containers (DESIGN.md phase 1 steps 4-7, phase 3).

``OperatorClient`` speaks to the operator over HTTPS with the provider's bearer credential. ``Provider`` takes
a container over from the operator's authorization bundle, keeps its keys in a ``Keystore``, opens sessions
to its containers and rotates their keys. It talks to devices through any ``connect(address) -> Connection``
(TCP by default).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from tenantcard.client.container import ContainerSession
from tenantcard.client.errors import ClientError, StatusError
from tenantcard.crypto.errors import CryptoError, KeyDataError
from tenantcard.crypto.scp03.keys import StaticKeys, kcv
from tenantcard.provider.errors import BundleError, OperatorApiError, OwnershipError, UnknownContainerError
from tenantcard.provider.keystore import ContainerRecord, Keystore
from tenantcard.transport.base import Connection, TransportError
from tenantcard.wire.sw import SW

SECURITY_LEVEL = 0x33  # GP Amd D §5.1: C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION
PROVIDER_KEY_LENGTHS = (16, 32)  # AES-128 or AES-256


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"bundle field {what} missing")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise BundleError(f"bundle field {what} is not hex") from exc


@dataclass(frozen=True, eq=False)
class AuthorizationBundle:
    """What the operator hands the provider (DESIGN.md phase 1 step 4). ``initial_keys`` is None once
    ownership was reported (the operator erased them). ``repr`` shows no key."""

    authorization_id: str
    device_id: str
    device_address: str
    container_id: str
    container_aid: bytes
    kvn: int
    initial_keys: StaticKeys | None
    kcvs: tuple[bytes, bytes, bytes]
    expires_at: int

    def __repr__(self) -> str:
        return (
            f"AuthorizationBundle(id={self.authorization_id!r}, device={self.device_id}, "
            f"aid={self.container_aid.hex().upper()}, kvn=0x{self.kvn:02X}, expires_at={self.expires_at})"
        )

    @property
    def record_name(self) -> str:
        return ContainerRecord.default_name(self.device_id, self.container_aid)

    @classmethod
    def from_json(cls, authorization_id: str, data: dict[str, Any]) -> AuthorizationBundle:
        """From the operator's ``bundle`` object (operator API ``BundleOut``)."""
        try:
            kvn = int(data["kvn"])
            keys_json = data.get("keys")
            kcvs_json = data["kcvs"]
            kcvs = (
                _hex(kcvs_json["enc"], "kcvs.enc"),
                _hex(kcvs_json["mac"], "kcvs.mac"),
                _hex(kcvs_json["dek"], "kcvs.dek"),
            )
            keys = None
            if keys_json is not None:
                keys = StaticKeys(
                    _hex(keys_json.get("enc"), "keys.enc"),
                    _hex(keys_json.get("mac"), "keys.mac"),
                    _hex(keys_json.get("dek"), "keys.dek"),
                    kvn,
                )
            return cls(
                authorization_id,
                str(data["device_id"]),
                str(data["device_address"]),
                str(data["container_id"]),
                _hex(data["container_aid"], "container_aid"),
                kvn,
                keys,
                kcvs,
                int(data["expires_at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError, KeyDataError) as exc:
            raise BundleError("the authorization bundle is malformed") from exc

    def to_json(self) -> dict[str, Any]:
        """The operator's format plus the authorization id (what ``tenantcard provider request`` saves)."""
        keys = self.initial_keys
        return {
            "authorization_id": self.authorization_id,
            "device_id": self.device_id,
            "device_address": self.device_address,
            "container_id": self.container_id,
            "container_aid": self.container_aid.hex().upper(),
            "kvn": self.kvn,
            "keys": None if keys is None else {"enc": keys.enc.hex(), "mac": keys.mac.hex(), "dek": keys.dek.hex()},
            "kcvs": {"enc": self.kcvs[0].hex(), "mac": self.kcvs[1].hex(), "dek": self.kcvs[2].hex()},
            "expires_at": self.expires_at,
        }

    @classmethod
    def load(cls, path: Path | str) -> AuthorizationBundle:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise BundleError(f"cannot read the bundle file {path}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("authorization_id"), str):
            raise BundleError("the bundle file lacks its authorization id")
        return cls.from_json(data["authorization_id"], data)

    def save(self, path: Path | str) -> None:
        """Write as JSON, mode 0600 (it holds the one-time initial keys until they are used)."""
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f, indent=2)


@dataclass(frozen=True)
class AuthorizationStatus:
    """An authorization request's state at the operator, with the bundle once the container is placed."""

    id: str
    status: str
    contract_id: str
    device_id: str
    consent_code: str | None
    error: str | None
    bundle: AuthorizationBundle | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuthorizationStatus:
        try:
            bundle_json = data.get("bundle")
            auth_id = str(data["id"])
            return cls(
                auth_id,
                str(data["status"]),
                str(data["contract_id"]),
                str(data["device_id"]),
                data.get("consent_code"),
                data.get("error"),
                None if bundle_json is None else AuthorizationBundle.from_json(auth_id, bundle_json),
            )
        except (KeyError, TypeError) as exc:
            raise OperatorApiError(0, "bad_response", "unexpected answer from the operator") from exc


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the operator lists it for its provider."""

    id: str
    device_id: str
    index: int
    aid: str
    state: str
    authorization_id: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerInfo:
        try:
            return cls(
                str(data["id"]),
                str(data["device_id"]),
                int(data["index"]),
                str(data["aid"]),
                str(data["state"]),
                data.get("authorization_id"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OperatorApiError(0, "bad_response", "unexpected answer from the operator") from exc


class OperatorApi:
    """JSON calls to the operator's REST API (``/v1``) with a bearer credential (a provider's, a holder's); every
    failure is an OperatorApiError that carries the operator's stable error code. ``transport`` lets tests and
    embedders pass an ``httpx`` transport (e.g. ``httpx.ASGITransport`` / ``WSGITransport`` over the app)."""

    def __init__(
        self,
        base_url: str,
        credential: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/v1",
            headers={"Authorization": f"Bearer {credential}"},
            transport=transport,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._client.base_url)!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer to ``method path`` (relative to ``/v1``), None for 204 No Content."""
        try:
            resp = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            where = self._client.base_url
            raise OperatorApiError(
                0, "unreachable", f"cannot reach the operator at {where} ({type(exc).__name__})"
            ) from None
        if resp.status_code >= 400:
            code, message = "http_error", resp.reason_phrase or "error"
            with contextlib.suppress(ValueError, KeyError, TypeError):
                err = resp.json()["error"]
                code, message = str(err["code"]), str(err["message"])
            raise OperatorApiError(resp.status_code, code, message)
        if resp.status_code == 204:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise OperatorApiError(resp.status_code, "bad_response", "the operator's answer is not JSON") from exc


class OperatorClient(OperatorApi):
    """The operator's REST API as a provider: one method per provider endpoint."""

    def request_container(
        self,
        contract_id: str,
        *,
        serial: str | None = None,
        device_id: str | None = None,
        idp_pointer: str | None = None,
        idempotency_key: str | None = None,
    ) -> AuthorizationStatus:
        """Ask for a container on the device named by exactly one of serial, device id, IdP pointer."""
        device = {k: v for k, v in (("serial", serial), ("device_id", device_id), ("idp_pointer", idp_pointer)) if v}
        body = {"contract_id": contract_id, "device": device, "idempotency_key": idempotency_key or uuid.uuid4().hex}
        return AuthorizationStatus.from_json(self.call("POST", "/authorizations", body))

    def authorization(self, authorization_id: str) -> AuthorizationStatus:
        return AuthorizationStatus.from_json(self.call("GET", f"/authorizations/{authorization_id}"))

    def wait_for_bundle(
        self, authorization_id: str, *, timeout: float = 60.0, interval: float = 0.5
    ) -> AuthorizationStatus:
        """Poll until the request has its bundle (after consent, or once the device was reached)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.authorization(authorization_id)
            if status.bundle is not None or status.status in ("refused", "failed", "expired", "revoked"):
                return status
            if time.monotonic() >= deadline:
                return status
            time.sleep(interval)

    def report_ownership(self, authorization_id: str) -> AuthorizationStatus:
        return AuthorizationStatus.from_json(self.call("POST", f"/authorizations/{authorization_id}/ownership"))

    def containers(self) -> list[ContainerInfo]:
        return [ContainerInfo.from_json(c) for c in self.call("GET", "/containers")]

    def container(self, container_id: str) -> ContainerInfo:
        return ContainerInfo.from_json(self.call("GET", f"/containers/{container_id}"))

    def revoke(self, container_id: str) -> ContainerInfo:
        """Phase 3: the operator revokes the provider's keys in the container (without knowing them)."""
        return ContainerInfo.from_json(self.call("POST", f"/containers/{container_id}/revoke"))

    def lock(self, container_id: str) -> ContainerInfo:
        return ContainerInfo.from_json(self.call("POST", f"/containers/{container_id}/lock"))

    def unlock(self, container_id: str) -> ContainerInfo:
        return ContainerInfo.from_json(self.call("POST", f"/containers/{container_id}/unlock"))


def tcp_connect(address: str) -> Connection:
    from tenantcard.transport.tcp_client import connect

    return connect(address)


def _next_kvn(kvn: int) -> int:
    """A KVN 01-7F (GP 2.3.1 §11.1.8) different from ``kvn``."""
    return kvn % 0x7F + 1


class Provider:
    """A service provider's view of its containers: take ownership, open sessions, rotate keys."""

    def __init__(
        self,
        keystore: Keystore,
        operator: OperatorClient | None = None,
        *,
        connect: Callable[[str], Connection] = tcp_connect,
        random: Callable[[int], bytes] = os.urandom,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keystore = keystore
        self.operator = operator
        self._connect = connect
        self._random = random
        self._clock = clock

    def _session(self, address: str, aid: bytes) -> tuple[Connection, ContainerSession]:
        try:
            conn = self._connect(address)
        except TransportError as exc:
            raise OwnershipError(f"cannot reach the device at {address}: {exc}") from exc
        return conn, ContainerSession(conn, aid)

    def take_ownership(
        self, bundle: AuthorizationBundle, *, key_length: int = 16, name: str | None = None
    ) -> ContainerRecord:
        """Phase 1 steps 5-6: SCP03 with the initial keys (the device's check of the authorization), PUT KEY
        of a fresh provider key set at level 33, KCVs checked, keys stored, ownership reported.

        A bundle used before (keys erased by the operator, or refused by the device), expired or tampered
        with raises OwnershipError and changes nothing.
        """
        if key_length not in PROVIDER_KEY_LENGTHS:
            raise OwnershipError("provider keys are AES-128 (16) or AES-256 (32)")
        initial = bundle.initial_keys
        if initial is None:
            raise OwnershipError("this authorization was already used: the operator no longer holds its keys")
        if int(self._clock()) >= bundle.expires_at:
            raise OwnershipError("this authorization has expired; ask the operator for a new one")
        if tuple(kcv(k) for k in (initial.enc, initial.mac, initial.dek)) != bundle.kcvs:
            raise OwnershipError("the bundle's key check values do not match its keys")
        record_name = name or bundle.record_name
        new = StaticKeys.generate(_next_kvn(bundle.kvn), key_length, self._random)
        record = ContainerRecord(record_name, bundle.device_id, bundle.device_address, bundle.container_aid, new)
        conn, session = self._session(bundle.device_address, bundle.container_aid)
        previous: ContainerRecord | None = None
        with contextlib.suppress(UnknownContainerError):
            previous = self.keystore.load(record_name)
        try:
            try:
                session.select()
                session.authenticate(initial, SECURITY_LEVEL)
            except (StatusError, CryptoError) as exc:
                raise OwnershipError(
                    "the device refused the initial keys: the authorization was already used, revoked or is not "
                    "for this container"
                ) from exc
            # Keys first into the keystore: a crash after PUT KEY must not lose the only copy.
            self.keystore.save(record)
            try:
                session.take_ownership(initial, new)  # checks the KCVs the device answers (GP 2.3.1 §11.8.3.1)
            except StatusError as exc:  # a refusal: the device kept the initial keys
                self._restore(record_name, previous)
                raise OwnershipError(f"the device refused the new key set ({_sw_text(exc)})") from exc
        except (ClientError, CryptoError, TransportError) as exc:
            # The outcome is unknown: the new keys stay in the keystore, the bundle's keys still work if the
            # device did not apply PUT KEY.
            raise OwnershipError(f"taking ownership did not complete ({_sw_text(exc)}); retry with the bundle") from exc
        finally:
            conn.close()
        self.check(record)
        if self.operator is not None:
            self.operator.report_ownership(bundle.authorization_id)
        return record

    def _restore(self, name: str, previous: ContainerRecord | None) -> None:
        with contextlib.suppress(UnknownContainerError):
            if previous is None:
                self.keystore.delete(name)
            else:
                self.keystore.save(previous)

    def check(self, record: ContainerRecord) -> None:
        """Open a session with the stored keys (the ownership proof); raises OwnershipError."""
        with self.open(record.name):
            pass

    @contextlib.contextmanager
    def open(self, name: str, *, level: int = SECURITY_LEVEL) -> Iterator[ContainerSession]:
        """A session to the container ``name`` with the provider's channel open at ``level``."""
        record = self.keystore.load(name)
        conn, session = self._session(record.device_address, record.aid)
        try:
            try:
                session.select()
                session.authenticate(record.keys, level)
            except (StatusError, CryptoError) as exc:
                raise OwnershipError(f"the container refused the provider's keys ({_sw_text(exc)})") from exc
            except (ClientError, TransportError) as exc:
                raise OwnershipError(f"cannot open the container: {exc}") from exc
            yield session
        finally:
            conn.close()

    @contextlib.contextmanager
    def holder(self, name: str) -> Iterator[ContainerSession]:
        """A session to the container ``name`` without the provider's channel: what the holder's side of an
        application uses (``verify_pin``, then the functions the holder may use)."""
        record = self.keystore.load(name)
        conn, session = self._session(record.device_address, record.aid)
        try:
            try:
                session.select()
            except (ClientError, TransportError) as exc:
                raise OwnershipError(f"cannot select the container: {exc}") from exc
            yield session
        finally:
            conn.close()

    def rotate(self, name: str, *, key_length: int | None = None) -> ContainerRecord:
        """Replace the provider's key set with a fresh one (PUT KEY over the current channel)."""
        record = self.keystore.load(name)
        length = key_length or record.keys.length
        if length not in PROVIDER_KEY_LENGTHS:
            raise OwnershipError("provider keys are AES-128 (16) or AES-256 (32)")
        new = StaticKeys.generate(_next_kvn(record.keys.kvn), length, self._random)
        rotated = ContainerRecord(
            record.name, record.device_id, record.device_address, record.aid, new, record.provider_id
        )
        with self.open(name) as session:
            self.keystore.save(rotated)
            try:
                session.rotate_keys(new)
            except StatusError as exc:  # a refusal: the container kept the current keys
                self.keystore.save(record)
                raise OwnershipError(f"the container refused the new key set ({_sw_text(exc)})") from exc
            except (ClientError, CryptoError, TransportError) as exc:
                # Unknown outcome: keep both key sets, the current one under a second name.
                backup = ContainerRecord(
                    f"{name}~previous",
                    record.device_id,
                    record.device_address,
                    record.aid,
                    record.keys,
                    record.provider_id,
                )
                self.keystore.save(backup)
                raise OwnershipError(
                    f"key rotation did not complete ({_sw_text(exc)}); the previous keys are kept as {backup.name!r}"
                ) from exc
        self.check(rotated)
        return rotated

    def revoke(self, name: str, container_id: str) -> ContainerInfo:
        """Ask the operator to revoke the container (phase 3); the keys are then dropped from the keystore."""
        if self.operator is None:
            raise OwnershipError("revocation goes through the operator: no operator client configured")
        info = self.operator.revoke(container_id)
        with contextlib.suppress(UnknownContainerError):
            self.keystore.delete(name)
        return info


def _sw_text(exc: Exception) -> str:
    if isinstance(exc, StatusError):
        return f"{SW(exc.sw).value:04X}"
    return type(exc).__name__
