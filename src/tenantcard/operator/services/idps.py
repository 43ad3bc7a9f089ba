"""Identity providers: a credential role narrower than staff. An identity provider may resolve a device handle
(device id or pointer) to the device's address and status, and register a pointer for a device it has just
authenticated. It reaches nothing of providers, holders or staff."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tenantcard.crypto.identity import (
    LOGIN_CHALLENGE_LENGTH,
    IdentityError,
    is_device_id_hex,
    login_challenge_time,
    verify_device_auth,
)
from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import CredentialKind, Device, DevicePointer, DeviceStatus, IdentityProvider
from tenantcard.operator.services.core import Env, new_id
from tenantcard.operator.services.credentials import Credentials
from tenantcard.operator.services.errors import Conflict, NotFound
from tenantcard.operator.services.registry import add_named, check_name

CaSource = Callable[[], x509.Certificate]


Status = Literal["active", "lost", "retired"]


@dataclass(frozen=True)
class ResolvedDevice:
    device_id: str
    address: str | None
    status: Status


@dataclass(frozen=True)
class DeviceProof:
    """What the identity provider saw at login: its challenge and the device's INTERNAL AUTHENTICATE answer."""

    challenge: bytes
    signature: bytes


class IdentityProviders:
    def __init__(self, env: Env, credentials: Credentials, ca_certificate: CaSource) -> None:
        self._env = env
        self._credentials = credentials
        self._ca = ca_certificate

    # --- staff ----------------------------------------------------------------------------------------------
    def register(self, name: str) -> tuple[IdentityProvider, str]:
        """A new identity provider and its credential (shown this once, stored hashed)."""
        env = self._env
        check_name(name)
        idp = IdentityProvider(id=new_id("idp", env.random), name=name, created_at=env.now())
        add_named(
            env,
            idp,
            taken=lambda s: (
                s.execute(select(IdentityProvider).where(IdentityProvider.name == name)).first() is not None
            ),
            action="idp.registered",
            conflict=("an identity provider of that name exists", "idp_exists"),
        )
        return idp, self._credentials.issue(CredentialKind.IDP, idp.id)

    def new_credential(self, idp_id: str) -> tuple[IdentityProvider, str]:
        """Replace every credential of the identity provider by a new one (shown once)."""
        return self._credentials.rotate(CredentialKind.IDP, IdentityProvider, idp_id, "no such identity provider")

    def all(self) -> Sequence[IdentityProvider]:
        with self._env.db.transaction() as s:
            return s.execute(select(IdentityProvider).order_by(IdentityProvider.created_at)).scalars().all()

    # --- the identity provider ------------------------------------------------------------------------------
    def resolve(self, idp_id: str, handle: str) -> ResolvedDevice:
        """The device a handle names: a device id, or a pointer this identity provider (or staff) registered.
        Another identity provider's pointers are unknown here, like handles nobody registered."""
        env = self._env
        with env.db.transaction() as s:
            device: Device | None
            if is_device_id_hex(handle):
                device, by = repo.device(s, handle.lower()), "device_id"
            else:
                row = s.get(DevicePointer, handle)
                visible = row is not None and row.idp_id in (None, idp_id)
                device, by = (repo.device(s, row.device_id) if row is not None and visible else None), "pointer"
            if device is None:
                raise NotFound("no device is known by that handle")
            env.audit.append(s, f"idp:{idp_id}", "device.resolved", device.id, {"by": by})
            return ResolvedDevice(device.id, device.address, cast(Status, device.status))

    def register_pointer(self, idp_id: str, device_id: str, pointer: str, proof: DeviceProof) -> None:
        """Let ``pointer`` name the device, on the identity provider's proof that it authenticated the device
        moments ago: the device's signature over the provider's challenge (which carries its own time)."""
        env = self._env
        actor = f"idp:{idp_id}"
        with env.db.transaction() as s:
            device = repo.device(s, device_id)
            if device is None:
                raise NotFound("no such device")
            if device.status != DeviceStatus.ACTIVE:
                raise Conflict("the device is not active", code="device_not_active")
            certificate = x509.load_pem_x509_certificate(device.certificate_pem.encode())
        refusal = self._check_proof(device_id, certificate, proof)
        if refusal is not None:
            code, message = refusal
            with env.db.transaction() as s:
                env.audit.append(s, actor, "device.pointer_refused", device_id, {"reason": code})
            raise Conflict(message, code=code)
        try:
            with env.db.transaction() as s:
                existing = s.get(DevicePointer, pointer)
                if existing is not None:
                    if existing.device_id != device_id or existing.idp_id != idp_id:
                        raise Conflict("that pointer is taken", code="pointer_taken")
                    return
                s.add(DevicePointer(pointer=pointer, device_id=device_id, idp_id=idp_id))
                env.audit.append(s, actor, "device.pointer_added", device_id)
        except IntegrityError as exc:
            raise Conflict("that pointer is taken", code="pointer_taken") from exc

    def _check_proof(self, device_id: str, certificate: x509.Certificate, proof: DeviceProof) -> tuple[str, str] | None:
        env = self._env
        issued = login_challenge_time(proof.challenge)
        if issued is None:
            return "identity_failed", f"the proof's challenge is not {LOGIN_CHALLENGE_LENGTH} bytes"
        if abs(env.clock() - issued) > env.settings.idp_proof_window_seconds:
            return "stale_proof", "the proof's challenge is too old (or from the future)"
        try:
            verify_device_auth(
                [certificate],
                self._ca(),
                bytes.fromhex(device_id),
                proof.challenge,
                proof.signature,
                now=datetime.datetime.fromtimestamp(env.clock(), datetime.UTC),
            )
        except IdentityError:
            return "identity_failed", "the proof does not show this device answering the challenge"
        return None
