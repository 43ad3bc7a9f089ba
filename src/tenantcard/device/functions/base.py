"""The plug-in interface between a container and the functions it offers (OTP, PKI, PIV, programs, ...).

A container's core (lifecycle, SCP03, PUT KEY, data objects, holder PIN) lives in ``device/container.py``.
Everything else is a ``ContainerFunction``: it claims proprietary instructions (CLA 80/84) and is handed each
such command, already unwrapped from secure messaging, with a ``FunctionContext`` for that container only.

Instruction ranges (proprietary CLA 80/84, inside an OWNED container; docs/protocol.md lists each command):
    0x10-0x1F  programs (sandboxed WebAssembly)
    0x30-0x3F  OTP (HOTP/TOTP), HMAC challenge-response, OCRA
    0x40-0x4F  PKI (key generation, sign, CSR, certificates)
    0x56-0x5F  PIV personality management
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Protocol

from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.tenant import Access as Access  # re-exported: the access rule of every object


@dataclass(frozen=True, slots=True)
class Rights:
    """What the caller of this command has proven on this connection."""

    provider: bool  # SCP03 secure channel open with the container's (provider's) key set
    holder: bool  # holder PIN verified since the container was selected
    security_level: int  # GP Amd D §5.1 level of the open channel, 0 when none

    def allows(self, rule: Access) -> bool:
        if rule == Access.PUBLIC:
            return True
        if rule == Access.HOLDER:
            return self.holder
        if rule == Access.PROVIDER:
            return self.provider
        return self.holder or self.provider


class ObjectStore(Protocol):
    """One container's sealed objects. Writes join the transaction of the command being processed and are
    committed before its 9000 is sent; any exception rolls them back. ``put`` raises
    ``ApduError(SW.NOT_ENOUGH_MEMORY)`` past the container's quota. ``kind`` namespaces a function's objects
    (e.g. "otp", "pki.key"); names are opaque bytes."""

    def get(self, kind: str, name: bytes) -> bytes | None: ...

    def put(self, kind: str, name: bytes, value: bytes) -> None: ...

    def delete(self, kind: str, name: bytes) -> bool: ...

    def names(self, kind: str) -> list[bytes]: ...

    def used_bytes(self) -> int: ...

    def quota_bytes(self) -> int: ...


@dataclass(slots=True)
class FunctionContext:
    """Everything a function may touch while handling one command of one container."""

    container_index: int
    rights: Rights
    store: ObjectStore
    random: Callable[[int], bytes]
    now: Callable[[], float]
    # Per-connection scratch state of this function in this container (e.g. PIV PIN verified); dropped with
    # the connection or on re-SELECT. Never persisted.
    session: MutableMapping[str, object] = field(default_factory=dict)


class ContainerFunction(Protocol):
    """A function offered inside every container. Stateless itself: state lives in ``ctx.store``."""

    name: str

    def handles(self, ins: int) -> bool:
        """True for the proprietary INS values this function owns."""
        ...

    def process(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """Handle one command. Raise ``ApduError`` for a status word without data; never raise anything
        else for bad input. Check ``ctx.rights`` against each object's access rule."""
        ...

    def destroy(self, ctx: FunctionContext) -> None:
        """Called when the container is revoked (its store is wiped by the container afterwards anyway);
        release anything cached outside the store."""
        ...
