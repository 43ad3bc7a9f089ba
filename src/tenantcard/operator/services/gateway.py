"""The operator's one way to a device: open SCP03 to its ISD with the operator keys, or ask its identity.

Everything device-facing in the operator goes through ``DeviceGateway``; the services never see APDUs,
sockets or the client sessions. ``TcpDeviceGateway`` is the real one (tenantcard.client.isd over
tenantcard.transport.tcp_client).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cryptography import x509

from tenantcard.crypto.scp03.keys import StaticKeys


class DeviceState(StrEnum):
    """A container as the device's GET STATUS reports it."""

    AVAILABLE = "available"
    AUTHORIZED = "authorized"
    OWNED = "owned"
    LOCKED = "locked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ContainerInfo:
    index: int
    state: DeviceState
    provider_id: str | None


class GatewayError(Exception):
    """The device could not be reached or did not let the operator in (transport, secure channel)."""


class DeviceRefused(Exception):
    """The device answered a command with an error status word (e.g. not enough memory)."""

    def __init__(self, command: str, sw: int) -> None:
        super().__init__(f"device refused {command} ({sw:04X})")
        self.command = command
        self.sw = sw


class IsdChannel(Protocol):
    """An authenticated secure channel to one device's ISD."""

    def containers(self) -> list[ContainerInfo]: ...

    def create_container(self, index: int | None, quota: int, reserved: int) -> int: ...

    def place_authorization(self, index: int, provider_id: str, keys: StaticKeys, expires_at: int) -> None: ...

    def lock(self, index: int) -> None: ...

    def unlock(self, index: int) -> None: ...

    def revoke(self, index: int) -> None: ...

    def rotate_keys(self, new: StaticKeys) -> None: ...


@dataclass(frozen=True)
class Identity:
    device_id: bytes
    signature: bytes
    chain: list[x509.Certificate]


class DeviceGateway(Protocol):
    def open_isd(self, address: str, keys: StaticKeys) -> AbstractContextManager[IsdChannel]: ...

    def identify(self, address: str, challenge: bytes) -> Identity: ...
