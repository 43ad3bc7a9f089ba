"""Phase 1: placing an authorization of communication in a container (DESIGN.md "Initialization").

request -> (pending_consent -> approved | refused) -> placed -> owned; or expired / revoked / failed.
The initial key set lives wrapped in the registry only while the provider may still need it: it is erased
when the provider has taken the container over (reported, or seen in GET STATUS) or the authorization expires.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import (
    Authorization,
    AuthorizationStatus,
    Container,
    ContainerState,
    Contract,
    ContractOption,
    ContractStatus,
    Device,
    DeviceStatus,
)
from tenantcard.operator.services.core import Env, new_id
from tenantcard.operator.services.device_ops import DeviceContext, DeviceOps
from tenantcard.operator.services.errors import Conflict, DeviceUnavailable, InvalidRequest, NotFound
from tenantcard.operator.services.gateway import DeviceState
from tenantcard.wire.gp import container_aid

INITIAL_KVN = 0x01
MAX_INDEX = 0xFFFF
_CODE_DIGITS = 8


@dataclass(frozen=True)
class DeviceRef:
    """How a provider names a device: exactly one of the three."""

    serial: str | None = None
    device_id: str | None = None
    idp_pointer: str | None = None

    def describe(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("serial", self.serial), ("device_id", self.device_id), ("idp_pointer", self.idp_pointer))
            if v
        }


@dataclass(frozen=True)
class Bundle:
    """What the provider needs to take the container over (DESIGN.md phase 1 step 4)."""

    device_id: str
    device_address: str
    container_id: str
    container_aid: str
    kvn: int
    keys: StaticKeys | None  # None once ownership is reported
    kcvs: tuple[str, str, str]
    expires_at: int


@dataclass(frozen=True)
class Outcome:
    authorization: Authorization
    bundle: Bundle | None
    consent_code: str | None = None  # only in the answer to the request that created it


def _request_hash(contract_id: str, ref: DeviceRef) -> str:
    body = json.dumps({"contract": contract_id, "device": ref.describe()}, sort_keys=True).encode()
    return hashlib.sha256(body).hexdigest()


def consent_code_hash(authorization_id: str, code: str) -> bytes:
    return hashlib.sha256(f"{authorization_id}:{code}".encode()).digest()


def keys_purpose(authorization_id: str) -> str:
    return f"initial:{authorization_id}"


class Placement:
    def __init__(self, env: Env, ops: DeviceOps) -> None:
        self._env = env
        self._ops = ops

    # --- the provider's request ---------------------------------------------------------------------------
    def request(self, provider_id: str, contract_id: str, ref: DeviceRef, idempotency_key: str) -> Outcome:
        env = self._env
        if len([v for v in ref.describe().values() if v]) != 1:
            raise InvalidRequest("name the device by exactly one of serial, device_id, idp_pointer")
        if not 1 <= len(idempotency_key) <= 200:
            raise InvalidRequest("idempotency key must be 1 to 200 characters")
        digest = _request_hash(contract_id, ref)
        code: str | None = None
        try:
            with env.db.transaction() as s:
                existing = repo.authorization_by_key(s, provider_id, idempotency_key)
                if existing is not None:
                    if not hmac.compare_digest(existing.request_hash, digest):
                        raise Conflict("idempotency key reused for another request", code="idempotency_mismatch")
                    auth_id, status = existing.id, existing.status
                else:
                    contract = repo.contract(s, contract_id)
                    if contract is None or contract.provider_id != provider_id:
                        raise NotFound("no such contract")
                    if contract.status != ContractStatus.ACTIVE:
                        raise Conflict("the contract has ended", code="contract_ended")
                    device = self._resolve(s, ref)
                    if device.status == DeviceStatus.LOST:
                        raise Conflict("the device is reported lost", code="device_lost")
                    auth, code = self._new(s, provider_id, contract, device, idempotency_key, digest)
                    auth_id, status = auth.id, auth.status
        except IntegrityError:  # a concurrent request with the same key won
            with env.db.transaction() as s:
                existing = repo.authorization_by_key(s, provider_id, idempotency_key)
            if existing is None or existing.request_hash != digest:
                raise Conflict("idempotency key reused for another request", code="idempotency_mismatch") from None
            auth_id, code, status = existing.id, None, existing.status
        return self.progress(auth_id, code, status=status)

    def _resolve(self, s: Session, ref: DeviceRef) -> Device:
        device: Device | None
        if ref.serial is not None:
            device = repo.device_by_serial(s, ref.serial)
        elif ref.device_id is not None:
            device = repo.device(s, ref.device_id.lower())
        else:
            device = repo.device_by_pointer(s, ref.idp_pointer or "")
        if device is None:
            raise NotFound("no such device")
        return device

    def _new(
        self, s: Session, provider_id: str, contract: Contract, device: Device, key: str, digest: str
    ) -> tuple[Authorization, str | None]:
        env = self._env
        now = env.now()
        auth = Authorization(
            id=new_id("aut", env.random),
            provider_id=provider_id,
            contract_id=contract.id,
            device_id=device.id,
            idempotency_key=key,
            request_hash=digest,
            status=AuthorizationStatus.APPROVED,
            consent_attempts=0,
            expires_at=now + env.settings.authorization_ttl_seconds,
            created_at=now,
            updated_at=now,
        )
        code = None
        if contract.consent_required:
            if device.holder_id is None:
                raise Conflict("the contract needs holder consent but the device has no holder", code="no_holder")
            code = f"{int.from_bytes(env.random(8), 'big') % 10**_CODE_DIGITS:0{_CODE_DIGITS}d}"
            auth.status = AuthorizationStatus.PENDING_CONSENT
            auth.consent_code_hash = consent_code_hash(auth.id, code)
        s.add(auth)
        s.flush()
        env.audit.append(
            s,
            f"provider:{provider_id}",
            "authorization.requested",
            auth.id,
            {"contract": contract.id, "device": device.id, "consent": contract.consent_required},
        )
        return auth, code

    def progress(self, auth_id: str, code: str | None, *, status: str | None = None) -> Outcome:
        """Place it if it is approved (a device that does not answer leaves it approved); answer its state.
        ``status``: the caller's fresh knowledge of the status, saving a read."""
        if status is None:
            with self._env.db.transaction() as s:
                auth = repo.authorization(s, auth_id)
                assert auth is not None
                status = auth.status
        if status == AuthorizationStatus.APPROVED:
            try:
                self.place(auth_id)
            except DeviceUnavailable as exc:
                self._note(auth_id, exc.code)
        return self.outcome(auth_id, code=code)

    def _note(self, auth_id: str, error: str) -> None:
        with self._env.db.transaction() as s:
            auth = repo.authorization(s, auth_id)
            if auth is not None:
                auth.error = error

    def get(self, provider_id: str, auth_id: str) -> Outcome:
        with self._env.db.transaction() as s:
            auth = repo.authorization(s, auth_id)
        if auth is None or auth.provider_id != provider_id:
            raise NotFound("no such authorization")
        return self.progress(auth_id, None)

    def of_provider(self, provider_id: str) -> Sequence[Authorization]:
        with self._env.db.transaction() as s:
            return repo.authorizations_of_provider(s, provider_id)

    def outcome(self, auth_id: str, *, code: str | None = None) -> Outcome:
        env = self._env
        with env.db.transaction() as s:
            auth = repo.authorization(s, auth_id)
            assert auth is not None
            bundle = None
            if auth.status in (AuthorizationStatus.PLACED, AuthorizationStatus.OWNED) and auth.container_id:
                row = repo.container(s, auth.container_id)
                device = repo.device(s, auth.device_id)
                assert row is not None and device is not None
                keys = None
                if auth.initial_keys_wrapped is not None:
                    keys = env.custody.unwrap_keys(keys_purpose(auth.id), auth.initial_keys_wrapped)
                kcvs = tuple((auth.kcvs or "::").split(":"))
                bundle = Bundle(
                    device_id=device.id,
                    device_address=device.address or "",
                    container_id=row.id,
                    container_aid=container_aid(row.index).hex().upper(),
                    kvn=auth.kvn or INITIAL_KVN,
                    keys=keys,
                    kcvs=(kcvs[0], kcvs[1], kcvs[2]),
                    expires_at=auth.expires_at or 0,
                )
        return Outcome(auth, bundle, code)

    # --- on the device ------------------------------------------------------------------------------------
    def place(self, auth_id: str) -> None:
        """Place an approved authorization on its device. A device that refuses (container in use, no memory)
        fails it for good; an unreachable or busy device leaves it approved for a later attempt."""
        try:
            self._place(auth_id)
        except Conflict as exc:
            env = self._env
            with env.db.transaction() as s:
                auth = repo.authorization(s, auth_id)
                if auth is not None and auth.status == AuthorizationStatus.APPROVED:
                    auth.status, auth.error, auth.updated_at = AuthorizationStatus.FAILED, exc.code, env.now()
                    env.audit.append(s, "operator", "authorization.failed", auth_id, {"reason": exc.code})
            raise

    def _place(self, auth_id: str) -> None:
        env = self._env
        with env.db.transaction() as s:
            auth = repo.authorization(s, auth_id)
            assert auth is not None
            contract = repo.contract(s, auth.contract_id)
            assert contract is not None
            device_id = auth.device_id
        with self._ops.session(device_id) as ctx:
            with env.db.transaction() as s:  # re-read under the device lock
                auth = repo.authorization(s, auth_id)
                assert auth is not None
                contract = repo.contract(s, auth.contract_id)
                assert contract is not None
                if auth.status != AuthorizationStatus.APPROVED:
                    return
                if contract.status != ContractStatus.ACTIVE or ctx.device.status == DeviceStatus.LOST:
                    auth.status = AuthorizationStatus.FAILED
                    auth.error = "contract_ended" if contract.status != ContractStatus.ACTIVE else "device_lost"
                    return
                if auth.expires_at is not None and auth.expires_at <= env.now():
                    auth.status = AuthorizationStatus.EXPIRED
                    return
                reserved = self._reserved_indexes(s)
            index = self._choose(ctx, contract, reserved)
            keys = StaticKeys.generate(INITIAL_KVN, 16, random=env.random)
            expires_at = env.now() + env.settings.authorization_ttl_seconds
            ctx.isd.place_authorization(index, auth.provider_id, keys, expires_at)
            with env.db.transaction() as s:
                auth = repo.authorization(s, auth_id)
                assert auth is not None
                row = repo.container_at(s, device_id, index)
                if row is None:
                    row = Container(id=new_id("cnt", env.random), device_id=device_id, index=index, updated_at=0)
                    s.add(row)
                row.state = ContainerState.AUTHORIZED
                row.provider_id = auth.provider_id
                row.contract_id = contract.id
                row.authorization_id = auth.id
                row.quota = contract.quota
                row.updated_at = env.now()
                s.flush()
                auth.status = AuthorizationStatus.PLACED
                auth.container_id = row.id
                auth.kvn = keys.kvn
                auth.initial_keys_wrapped = env.custody.wrap_keys(keys_purpose(auth.id), keys)
                auth.kcvs = ":".join(k.hex().upper() for k in keys.kcvs())
                auth.expires_at = expires_at
                auth.error = None
                auth.updated_at = env.now()
                env.audit.append(
                    s,
                    "operator",
                    "authorization.placed",
                    auth.id,
                    {"device": device_id, "container": row.id, "index": index, "provider": auth.provider_id},
                )

    def _reserved_indexes(self, s: Session) -> set[int]:
        rows = s.execute(
            select(Contract.container_index).where(
                Contract.status == ContractStatus.ACTIVE, Contract.option == ContractOption.FIXED_INDEX
            )
        ).scalars()
        return {i for i in rows if i is not None}

    def _choose(self, ctx: DeviceContext, contract: Contract, reserved: set[int]) -> int:
        if contract.option == ContractOption.FIXED_INDEX:
            index = contract.container_index
            assert index is not None
            info = ctx.status.get(index)
            if info is None:
                return ctx.isd.create_container(index, contract.quota, contract.reserved)
            if info.state != DeviceState.AVAILABLE:
                raise Conflict("the contract's container is in use on this device", code="container_unavailable")
            return index
        free = sorted(i for i, c in ctx.status.items() if c.state == DeviceState.AVAILABLE and i not in reserved)
        if free:
            return free[0]
        # create one at the lowest index that is neither on the device nor kept for an option-B contract
        index = next(i for i in range(MAX_INDEX + 1) if i not in ctx.status and i not in reserved)
        return ctx.isd.create_container(index, contract.quota, contract.reserved)

    # --- ownership and expiry -----------------------------------------------------------------------------
    def report_owned(self, provider_id: str, auth_id: str) -> Outcome:
        """The provider says it has replaced the initial keys; the device's GET STATUS confirms it."""
        env = self._env
        with env.db.transaction() as s:
            auth = repo.authorization(s, auth_id)
        if auth is None or auth.provider_id != provider_id:
            raise NotFound("no such authorization")
        if auth.status == AuthorizationStatus.PLACED:
            with self._ops.session(auth.device_id):
                pass  # reconciliation with GET STATUS marks it owned and erases the initial keys
            with env.db.transaction() as s:
                auth = repo.authorization(s, auth_id)
                assert auth is not None
                if auth.status == AuthorizationStatus.PLACED:
                    raise Conflict("the device does not show the container owned yet", code="not_owned")
                env.audit.append(s, f"provider:{provider_id}", "authorization.ownership_reported", auth_id)
        elif auth.status != AuthorizationStatus.OWNED:
            raise Conflict(f"the authorization is {auth.status}", code="authorization_closed")
        return self.outcome(auth_id)

    def sweep_expired(self) -> int:
        """Revoke authorizations not taken up before they expired. Returns how many were closed."""
        env = self._env
        closed = 0
        with env.db.transaction() as s:
            due = [(a.id, a.device_id, a.status) for a in repo.expired_authorizations(s, env.now())]
        for auth_id, device_id, status in due:
            if status != AuthorizationStatus.PLACED:
                with env.db.transaction() as s:
                    auth = repo.authorization(s, auth_id)
                    if auth is not None and auth.status == status:
                        auth.status = AuthorizationStatus.EXPIRED
                        auth.consent_code_hash = None
                        env.audit.append(s, "operator", "authorization.expired", auth_id)
                        closed += 1
                continue
            try:
                with self._ops.session(device_id) as ctx, env.db.transaction() as s:
                    auth = repo.authorization(s, auth_id)
                    if auth is None or auth.status != AuthorizationStatus.PLACED or not auth.container_id:
                        continue
                    row = repo.container(s, auth.container_id)
                    if row is None:
                        continue
                    info = ctx.status.get(row.index)
                    if info is not None and info.state == DeviceState.AUTHORIZED:
                        ctx.isd.revoke(row.index)
                        self._ops.release(s, row, "expired")
                        env.audit.append(s, "operator", "authorization.expired", auth_id, {"container": row.id})
                        closed += 1
            except (DeviceUnavailable, Conflict):
                continue  # stays placed; the next sweep tries again
        return closed
