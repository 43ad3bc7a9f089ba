"""What the ISD and every container share: one selected security domain on one connection, its SCP03 session,
per-key-set retry counters and the unwrap/wrap of secure messaging (GP Amd D §6.2, §7.1, §7.2).

An application object lives as long as the selection on its connection: a new SELECT, a reset or a power off
throws it away with its secure channel (the channel is bound to the domain that was selected when it opened).
"""

from __future__ import annotations

import logging
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from tenantcard.crypto.errors import KeyDataError, SecureChannelError
from tenantcard.crypto.scp03 import Scp03Card, StaticKeys
from tenantcard.device.functions.base import ContainerFunction
from tenantcard.device.store import KeyRole, KeySetRow, Store
from tenantcard.wire.apdu import CLA_SECURE_MESSAGING as CLA_SECURE_MESSAGING
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import Ins, SecurityLevel
from tenantcard.wire.sw import SW, ApduError

log = logging.getLogger(__name__)

MAX_AUTH_TRIES = 10  # consecutive failed EXTERNAL AUTHENTICATEs that block a key set (6983)
LEVEL_CMAC = SecurityLevel.C_MAC.value
LEVEL_FULL = 0x33  # C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION


def encode_keys(keys: StaticKeys) -> bytes:
    """Storage form of a key set (sealed by the store): KVN || key length || ENC || MAC || DEK."""
    return struct.pack(">BB", keys.kvn, keys.length) + keys.enc + keys.mac + keys.dek


def decode_keys(blob: bytes) -> StaticKeys:
    kvn, n = blob[0], blob[1]
    if len(blob) != 2 + 3 * n:
        raise KeyDataError("stored key set of wrong length")
    return StaticKeys(blob[2 : 2 + n], blob[2 + n : 2 + 2 * n], blob[2 + 2 * n :], kvn)


@dataclass
class DeviceContext:
    """What every application of one device may use while it handles a command (under the device lock)."""

    store: Store
    device_id: bytes
    random: Callable[[int], bytes]
    clock: Callable[[], float]
    functions: list[ContainerFunction] = field(default_factory=list)


class StoreDataBlocks:
    """STORE DATA blocks (GP 2.3.1 §11.11.2): numbered from 00 in P2, P1 b8 set on the last, joined up to
    ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        self._data = bytearray()
        self._next = 0

    def add(self, cmd: CommandApdu, too_long: str) -> bytes | None:
        """The joined data once the last block has arrived, else None."""
        if cmd.p2 != self._next & 0xFF:
            raise ApduError(SW.INCORRECT_P1P2, "STORE DATA block out of sequence")
        if len(self._data) + len(cmd.data) > self.limit:
            raise ApduError(SW.WRONG_LENGTH, too_long)
        self._data += cmd.data
        self._next += 1
        if not cmd.p1 & 0x80:
            return None
        joined = bytes(self._data)
        self.reset()
        return joined


class Application(ABC):
    """Something SELECT can reach on a connection."""

    aid: bytes

    @abstractmethod
    def process(self, cmd: CommandApdu) -> ResponseApdu:
        """Handle one command (after command chaining). Raise ApduError to answer a status word and roll back
        the command's transaction; return a response to commit it."""

    def select_response(self) -> ResponseApdu:
        return ResponseApdu.of(SW.OK)

    def deselect(self) -> None:  # noqa: B027 - optional hook, most applications keep nothing to drop
        """The selection ends (new SELECT, reset, power off)."""


class SecurityDomainApp(Application):
    """A security domain (the ISD or a container) selected on one connection, with its SCP03 session."""

    def __init__(self, ctx: DeviceContext, aid: bytes, owner: int) -> None:
        self.ctx = ctx
        self.aid = aid
        self.owner = owner
        self.scp = Scp03Card(key_diversification_data=ctx.device_id, sd_aid=aid, random=ctx.random)
        self._pending_version: int | None = None  # key set version between INITIALIZE UPDATE and EXT AUTH
        self._session_version: int | None = None  # key set version the open session authenticated with
        self.session_role: KeyRole | None = None
        self._dek: bytes | None = None

    # ---------------------------------------------------------------- hooks

    @abstractmethod
    def keyset_for_session(self) -> KeySetRow:
        """The key set INITIALIZE UPDATE may use now; ApduError when none may (state, expiry)."""

    @abstractmethod
    def handle(self, cmd: CommandApdu) -> ResponseApdu:
        """A plain (unwrapped) command other than INITIALIZE UPDATE / EXTERNAL AUTHENTICATE."""

    def state_refusal(self) -> SW | None:
        """The status word answering every command in the domain's current state (e.g. LOCKED), or None."""
        return None

    def blocked(self, keyset: KeySetRow) -> bool:
        """True while the key set refuses INITIALIZE UPDATE after ``MAX_AUTH_TRIES`` consecutive failures
        (GP 2.3.1 §10.5 key-set blocking). A container's key set stays blocked until the operator revokes it."""
        return keyset.tries_left <= 0

    def exhausted(self) -> None:
        """The last try was just spent."""

    def authenticated_again(self) -> None:
        """A session opened successfully: failure counters start over."""

    # ---------------------------------------------------------------- session

    @property
    def authenticated(self) -> bool:
        return self.scp.authenticated

    @property
    def level(self) -> int:
        return self.scp.security_level if self.scp.authenticated else 0

    def close_session(self) -> None:
        self.scp.reset()
        self._pending_version = None
        self._session_version = None
        self.session_role = None
        self._dek = None

    def deselect(self) -> None:
        self.close_session()

    def require_level(self, level: int, role: KeyRole | None = None) -> None:
        """GP 2.3.1 §10.6 / Amd D §5.1: the command needs a session at ``level`` (bits) with ``role``'s keys."""
        if not self.scp.authenticated or self.level & level != level:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "secure channel level too low")
        if role is not None and self.session_role != role:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "session opened with another key set")

    def rebind_session(self, role: KeyRole, keys: StaticKeys) -> None:
        """After this session replaced its own key set (PUT KEY): keep it open under the new version; key data
        it sends from now on is encrypted under the new Key-DEK (what the host holds)."""
        self._session_version = self.ctx.store.keyset_version(self.owner)
        self.session_role = role
        self._dek = keys.dek

    @property
    def dek(self) -> bytes:
        """Key-DEK for key data received in this session (GP 2.3.1 §11.8.2.3)."""
        return self._dek if self._dek is not None else self.scp.dek

    def _session_still_valid(self) -> bool:
        if self._session_version is None:
            return True
        return self.ctx.store.keyset_version(self.owner) == self._session_version

    def process(self, cmd: CommandApdu) -> ResponseApdu:
        if (self.scp.authenticated or self._pending_version is not None) and not self._session_still_valid():
            # The key set was replaced or destroyed on another connection (rotation, revocation).
            self.close_session()
        if cmd.ins in (Ins.INITIALIZE_UPDATE, Ins.EXTERNAL_AUTHENTICATE):
            refusal = self.state_refusal()
            if refusal is not None:
                self.close_session()
                raise ApduError(refusal, "domain refuses commands in this state")
            if cmd.ins == Ins.INITIALIZE_UPDATE and not cmd.cla & CLA_SECURE_MESSAGING:
                return self._initialize_update(cmd)
            return self._external_authenticate(cmd)
        self._pending_version = None
        secured = False
        if cmd.cla & CLA_SECURE_MESSAGING:
            if not self.scp.authenticated or self.level == 0:
                self.close_session()
                raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "secure messaging without a session")
            try:
                cmd = self.scp.unwrap(cmd)
            except SecureChannelError:
                self.close_session()
                # Amd D §6.2.4: a C-MAC failure answers 6982 and ends the session.
                return ResponseApdu.of(SW.SECURITY_STATUS_NOT_SATISFIED)
            secured = True
        elif self.scp.authenticated and self.level != 0:
            # A plain command inside a C-MAC session ends that session (GP 2.3.1 §10.2.3 "reset of the
            # Security Level"); the command is then processed without security.
            self.close_session()
        refusal = self.state_refusal()
        # A warning such as 6283 still carries the R-MAC of an open session (Amd D §6.2.5).
        response = ResponseApdu.of(refusal) if refusal is not None else self.handle(cmd)
        return self.scp.wrap(response) if secured and self.scp.authenticated else response

    def _initialize_update(self, cmd: CommandApdu) -> ResponseApdu:
        self.close_session()
        keyset = self.keyset_for_session()
        if self.blocked(keyset):
            raise ApduError(SW.AUTH_METHOD_BLOCKED, "key set blocked")
        if cmd.p1 not in (0, keyset.kvn):
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no key set with this version")
        counter = keyset.counter + 1
        data = self.scp.initialize_update(cmd, decode_keys(keyset.secret), counter)
        # Amd D §6.2.2.1: the counter value is spent whatever happens next; committed with this command.
        self.ctx.store.set_counter(self.owner, counter)
        self._pending_version = keyset.version
        self.session_role = keyset.role
        return ResponseApdu.of(SW.OK, data)

    def _external_authenticate(self, cmd: CommandApdu) -> ResponseApdu:
        pending = self._pending_version
        self._pending_version = None
        if pending is None:
            self.close_session()
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "EXTERNAL AUTHENTICATE without INITIALIZE UPDATE")
        keyset = self.ctx.store.keyset(self.owner)
        if keyset is None or keyset.version != pending:
            self.close_session()
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "key set changed during the handshake")
        try:
            self.scp.external_authenticate(cmd)
        except SecureChannelError:
            self.close_session()
            left = max(keyset.tries_left - 1, 0)
            self.ctx.store.set_tries(self.owner, left)
            if left == 0:
                self.exhausted()
            log.info("failed authentication to domain %s, %d tries left", self.aid.hex(), left)
            # Amd D §7.2.3: authentication of the host cryptogram failed; the counter change is committed.
            return ResponseApdu.of(SW.VERIFY_FAILED)
        if keyset.tries_left != MAX_AUTH_TRIES:
            self.ctx.store.set_tries(self.owner, MAX_AUTH_TRIES)
        self.authenticated_again()
        self._session_version = pending
        self.session_role = keyset.role
        return ResponseApdu.of(SW.OK)
