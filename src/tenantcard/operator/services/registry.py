"""Providers, contracts, holders, device pointers and the device address registry (check-in)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantcard.crypto.identity import IdentityError, verify_device_auth
from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import (
    Container,
    Contract,
    ContractOption,
    ContractStatus,
    CredentialKind,
    Device,
    DevicePointer,
    DeviceStatus,
    Holder,
    IdentityProvider,
    Provider,
)
from tenantcard.operator.services.core import Env, new_id
from tenantcard.operator.services.credentials import Credentials
from tenantcard.operator.services.errors import Conflict, DeviceUnavailable, InvalidRequest, NotFound
from tenantcard.operator.services.gateway import GatewayError
from tenantcard.transport.tcp_client import AddressError, parse_address

CaSource = Callable[[], x509.Certificate]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
MAX_CONTAINER_INDEX = 0xFFFF


@dataclass(frozen=True)
class IssuedCredential:
    subject_id: str
    credential: str


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest("name must be 1-100 letters, digits, spaces, '.', '_' or '-'")
    return name


def add_named(
    env: Env,
    row: Provider | IdentityProvider,
    *,
    taken: Callable[[Session], bool],
    action: str,
    conflict: tuple[str, str],
) -> None:
    """Store ``row`` (a provider, an identity provider: unique by name) and audit ``action``; Conflict with
    ``conflict`` (message, code) when ``taken`` says, or the database finds, that the name is in use."""
    message, code = conflict
    try:
        with env.db.transaction() as s:
            if taken(s):
                raise Conflict(message, code=code)
            s.add(row)
            s.flush()
            env.audit.append(s, "admin", action, row.id, {"name": row.name})
    except IntegrityError as exc:
        raise Conflict(message, code=code) from exc


class Registry:
    def __init__(self, env: Env, credentials: Credentials, ca_certificate: CaSource) -> None:
        self._env = env
        self._credentials = credentials
        self._ca = ca_certificate

    # --- providers ----------------------------------------------------------------------------------------
    def register_provider(self, name: str) -> tuple[Provider, str]:
        env = self._env
        check_name(name)
        provider = Provider(id=new_id("prv", env.random), name=name, created_at=env.now())
        add_named(
            env,
            provider,
            taken=lambda s: repo.provider_by_name(s, name) is not None,
            action="provider.registered",
            conflict=("a provider of that name exists", "provider_exists"),
        )
        return provider, self._credentials.issue(CredentialKind.PROVIDER, provider.id)

    def new_provider_credential(self, provider_id: str) -> tuple[Provider, str]:
        """Replace every credential of the provider by a new one (shown once)."""
        return self._credentials.rotate(CredentialKind.PROVIDER, Provider, provider_id, "no such provider")

    def providers(self) -> Sequence[Provider]:
        with self._env.db.transaction() as s:
            return repo.providers(s)

    def provider(self, provider_id: str) -> Provider:
        with self._env.db.transaction() as s:
            found = repo.provider(s, provider_id)
        if found is None:
            raise NotFound("no such provider")
        return found

    # --- contracts ----------------------------------------------------------------------------------------
    def create_contract(
        self,
        provider_id: str,
        option: ContractOption,
        quota: int,
        *,
        container_index: int | None = None,
        reserved: int = 0,
        consent_required: bool = False,
    ) -> Contract:
        env = self._env
        if quota <= 0 or quota > 1 << 30:
            raise InvalidRequest("quota must be 1 byte to 1 GiB")
        if reserved < 0 or reserved > quota:
            raise InvalidRequest("reserved memory must be between 0 and the quota")
        if option == ContractOption.FIXED_INDEX:
            if container_index is None or not 0 <= container_index <= MAX_CONTAINER_INDEX:
                raise InvalidRequest("option B needs a container index 0..65535")
        elif container_index is not None:
            raise InvalidRequest("option A assigns containers per request: no container index")
        with env.db.transaction() as s:
            if repo.provider(s, provider_id) is None:
                raise NotFound("no such provider")
            if option == ContractOption.FIXED_INDEX:
                for other in s.query(Contract).filter(
                    Contract.status == ContractStatus.ACTIVE,
                    Contract.option == ContractOption.FIXED_INDEX,
                    Contract.container_index == container_index,
                ):
                    raise Conflict(
                        f"container index {container_index} belongs to contract {other.id}", code="index_taken"
                    )
            contract = Contract(
                id=new_id("ctr", env.random),
                provider_id=provider_id,
                option=option.value,
                container_index=container_index,
                quota=quota,
                reserved=reserved,
                consent_required=consent_required,
                status=ContractStatus.ACTIVE,
                created_at=env.now(),
            )
            s.add(contract)
            s.flush()
            env.audit.append(
                s,
                "admin",
                "contract.created",
                contract.id,
                {"provider": provider_id, "option": option.value, "index": container_index, "quota": quota},
            )
        return contract

    def contract(self, contract_id: str, *, provider_id: str | None = None) -> Contract:
        with self._env.db.transaction() as s:
            found = repo.contract(s, contract_id)
        if found is None or (provider_id is not None and found.provider_id != provider_id):
            raise NotFound("no such contract")
        return found

    def contracts_of(self, provider_id: str) -> Sequence[Contract]:
        with self._env.db.transaction() as s:
            return repo.contracts_of(s, provider_id)

    # --- holders ------------------------------------------------------------------------------------------
    def create_holder(self, name: str) -> tuple[Holder, str]:
        env = self._env
        check_name(name)
        holder = Holder(id=new_id("hld", env.random), name=name, created_at=env.now())
        with env.db.transaction() as s:
            s.add(holder)
            s.flush()
            env.audit.append(s, "admin", "holder.created", holder.id)
        return holder, self._credentials.issue(CredentialKind.HOLDER, holder.id)

    def link_device(self, holder_id: str, device_id: str) -> None:
        env = self._env
        with env.db.transaction() as s:
            if repo.holder(s, holder_id) is None:
                raise NotFound("no such holder")
            device = repo.device(s, device_id)
            if device is None:
                raise NotFound("no such device")
            if device.holder_id not in (None, holder_id):
                raise Conflict("the device belongs to another holder", code="device_has_holder")
            device.holder_id = holder_id
            env.audit.append(s, "admin", "holder.device_linked", device_id, {"holder": holder_id})

    def holder_view(self, holder_id: str) -> list[tuple[Device, list[tuple[Container, str | None]]]]:
        """The holder's devices, each with its containers and the name of the provider holding each."""
        with self._env.db.transaction() as s:
            out = []
            for device in repo.holder_devices(s, holder_id):
                rows = []
                for c in repo.containers_of_device(s, device.id):
                    provider = repo.provider(s, c.provider_id) if c.provider_id else None
                    rows.append((c, provider.name if provider else None))
                out.append((device, rows))
            return out

    # --- devices ------------------------------------------------------------------------------------------
    def device(self, device_id: str) -> Device:
        with self._env.db.transaction() as s:
            found = repo.device(s, device_id)
        if found is None:
            raise NotFound("no such device")
        return found

    def devices(self, *, after: str = "", limit: int = 100) -> Sequence[Device]:
        with self._env.db.transaction() as s:
            return repo.devices(s, after=after, limit=limit)

    def containers(self, device_id: str) -> Sequence[Container]:
        with self._env.db.transaction() as s:
            return repo.containers_of_device(s, device_id)

    def add_pointer(self, device_id: str, pointer: str) -> None:
        env = self._env
        if not 1 <= len(pointer) <= 200:
            raise InvalidRequest("a pointer is 1 to 200 characters")
        try:
            with env.db.transaction() as s:
                if repo.device(s, device_id) is None:
                    raise NotFound("no such device")
                existing = s.get(DevicePointer, pointer)
                if existing is not None:
                    if existing.device_id != device_id:
                        raise Conflict("that pointer names another device", code="pointer_taken")
                    return
                s.add(DevicePointer(pointer=pointer, device_id=device_id))
                env.audit.append(s, "admin", "device.pointer_added", device_id)
        except IntegrityError as exc:
            raise Conflict("that pointer names another device", code="pointer_taken") from exc

    def check_in(self, device_id: str, address: str) -> Device:
        """Record ``address`` for the device after proving the device answers there.

        The operator connects to the claimed address, sends a fresh challenge to the ISD's INTERNAL
        AUTHENTICATE and verifies the signature and the certificate chain against the operator CA and the
        certificate registered at manufacture. A claim nobody at that address can prove changes nothing.
        """
        env = self._env
        try:
            parse_address(address)
        except AddressError as exc:
            raise InvalidRequest("address must be HOST:PORT or tcp://HOST:PORT") from exc
        with env.db.transaction() as s:
            device = repo.device(s, device_id)
            if device is None:
                raise NotFound("no such device")
            registered = x509.load_pem_x509_certificate(device.certificate_pem.encode())
        challenge = env.random(32)
        try:
            answer = env.gateway.identify(address, challenge)
        except GatewayError as exc:
            raise DeviceUnavailable("no device answered at that address") from exc
        try:
            if not answer.chain or answer.chain[0] != registered:
                raise IdentityError("the device presents another certificate")
            verify_device_auth(
                answer.chain,
                self._ca(),
                bytes.fromhex(device_id),
                challenge,
                answer.signature,
                now=datetime.datetime.fromtimestamp(env.clock(), datetime.UTC),
            )
        except IdentityError as exc:
            with env.db.transaction() as s:
                env.audit.append(s, "device:" + device_id, "device.checkin_refused", device_id, {"address": address})
            raise Conflict("the device at that address did not prove its identity", code="identity_failed") from exc
        with env.db.transaction() as s:
            device = repo.device(s, device_id)
            assert device is not None
            device.address = address
            device.address_verified_at = env.now()
            env.audit.append(s, "device:" + device_id, "device.checked_in", device_id, {"address": address})
        return device

    def mark_lost(self, device_id: str, actor: str) -> None:
        env = self._env
        with env.db.transaction() as s:
            device = repo.device(s, device_id)
            if device is None:
                raise NotFound("no such device")
            device.status = DeviceStatus.LOST
            env.audit.append(s, actor, "device.reported_lost", device_id)
