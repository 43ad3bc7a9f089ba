"""The real device gateway: ``tenantcard.client.isd.IsdSession`` over ``tenantcard.transport.tcp_client``.

Each operation is one TCP connection (one card session): SELECT the ISD, open SCP03 at security level 33
(C-MAC, C-DEC, R-MAC, R-ENC) with the operator keys, run the commands, close.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tenantcard.client.errors import ClientError, StatusError
from tenantcard.client.isd import IsdSession
from tenantcard.crypto.errors import SecureChannelError
from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.operator.services.gateway import ContainerInfo, DeviceRefused, DeviceState, GatewayError, Identity
from tenantcard.transport.base import TransportError
from tenantcard.transport.tcp_client import connect
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import LifeCycle, container_aid, container_index

FULL_SECURITY = 0x33

_LIFECYCLE = {
    LifeCycle.SELECTABLE: DeviceState.AVAILABLE,
    LifeCycle.AUTHORIZED: DeviceState.AUTHORIZED,
    LifeCycle.PERSONALIZED: DeviceState.OWNED,
    LifeCycle.LOCKED: DeviceState.LOCKED,
}


@contextmanager
def _refused(command: str) -> Iterator[None]:
    """A refusal status word of ``command`` becomes ``DeviceRefused``."""
    try:
        yield
    except StatusError as exc:
        raise DeviceRefused(command, int(exc.sw)) from exc


class _Channel:
    """``IsdChannel`` over an authenticated ``IsdSession``; a refusal status word becomes ``DeviceRefused``."""

    def __init__(self, session: IsdSession) -> None:
        self._s = session

    def containers(self) -> list[ContainerInfo]:
        with _refused("GET STATUS"):
            entries = self._s.list_containers()
        out = []
        for entry in entries:
            index = entry.index
            if index is None:
                continue
            state = _LIFECYCLE.get(LifeCycle(entry.lifecycle), DeviceState.UNKNOWN)
            out.append(ContainerInfo(index, state, entry.provider_id or None))
        return out

    def create_container(self, index: int | None, quota: int, reserved: int) -> int:
        with _refused("INSTALL"):
            aid = self._s.create_container(index, quota, reserved)
        created = container_index(aid)
        if created is None:
            raise GatewayError("INSTALL answered no container AID")
        return created

    def place_authorization(self, index: int, provider_id: str, keys: StaticKeys, expires_at: int) -> None:
        with _refused("STORE DATA"):
            self._s.place_authorization(container_aid(index), provider_id, keys, expires_at)

    def lock(self, index: int) -> None:
        with _refused("SET STATUS"):
            self._s.lock(container_aid(index))

    def unlock(self, index: int) -> None:
        with _refused("SET STATUS"):
            self._s.unlock(container_aid(index))

    def revoke(self, index: int) -> None:
        with _refused("DELETE"):
            self._s.revoke(container_aid(index))

    def rotate_keys(self, new: StaticKeys) -> None:
        with _refused("PUT KEY"):
            self._s.rotate_keys(new)


class TcpDeviceGateway:
    def __init__(self, *, timeout: float = 5.0) -> None:
        self._timeout = timeout

    @contextmanager
    def open_isd(self, address: str, keys: StaticKeys) -> Iterator[_Channel]:
        try:
            conn = connect(address, timeout=self._timeout)
        except (TransportError, OSError, ValueError) as exc:
            raise GatewayError("device unreachable") from exc
        try:
            session = IsdSession(conn)
            try:
                session.select()
                session.authenticate(keys, FULL_SECURITY)
            except (StatusError, SecureChannelError) as exc:
                raise GatewayError("the device refused the operator's secure channel") from exc
            yield _Channel(session)
        except (TransportError, SecureChannelError, ClientError, WireError, OSError) as exc:
            raise GatewayError(f"device session failed: {type(exc).__name__}") from exc
        finally:
            conn.close()

    def identify(self, address: str, challenge: bytes) -> Identity:
        try:
            with connect(address, timeout=self._timeout) as conn:
                session = IsdSession(conn)
                session.select()
                signature = session.internal_authenticate(challenge)
                chain = session.get_certificates()
                device_id = session.get_device_id()
        except (TransportError, SecureChannelError, ClientError, WireError, OSError, ValueError) as exc:
            raise GatewayError(f"identity query failed: {type(exc).__name__}") from exc
        return Identity(device_id, signature, chain)
