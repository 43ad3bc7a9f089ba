"""The issuer security domain: the operator's domain (GP 2.3.1 §7, §11; docs/protocol.md "ISD").

Identity and recognition data answer anyone; every content-management command needs an SCP03 session with
the operator key set at security level 01 or more (GP 2.3.1 §10.6).
"""

from __future__ import annotations

import logging
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.crypto.errors import KeyDataError
from tenantcard.crypto.identity import MAX_CHALLENGE, MIN_CHALLENGE, sign_challenge
from tenantcard.crypto.scp03 import PutKeyCommand, put_key_response
from tenantcard.device.domain import (
    LEVEL_CMAC,
    MAX_AUTH_TRIES,
    DeviceContext,
    SecurityDomainApp,
    StoreDataBlocks,
    decode_keys,
    encode_keys,
)
from tenantcard.device.functions.base import FunctionContext, Rights
from tenantcard.device.store import ISD_OWNER, ContainerState, KeyRole, KeySetRow
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import (
    CONTAINER_AID_PREFIX,
    ISD_AID,
    DataTag,
    GetStatusP1,
    Ins,
    InstallP1,
    LifeCycle,
    container_aid,
    container_index,
)
from tenantcard.wire.sw import SW, ApduError
from tenantcard.wire.tenant import Authorization, ContainerInfo, encode_entries
from tenantcard.wire.tlv import Tlv, as_dict, find

log = logging.getLogger(__name__)

# GP 2.3.1 §7.4.1.3 / Annex H: card recognition data OIDs (1.2.840.114283.x)
_OID_CARD_RECOGNITION = bytes.fromhex("2A864886FC6B01")
_OID_GP_VERSION = bytes.fromhex("2A864886FC6B02020301")  # GP 2.3.1
_OID_CARD_ID_SCHEME = bytes.fromhex("2A864886FC6B03")
_OID_SCP03 = bytes.fromhex("2A864886FC6B04")
_SCP03_I = 0x70  # i parameter announced in card recognition data
MAX_CONTAINERS = 0x100
COOLDOWN_META = "isd.auth_cooldown"  # (until: UNIX time, rounds: consecutive blocks) of the operator key set
COOLDOWN_BASE = 1.0
COOLDOWN_MAX = 300.0
MAX_STORE_DATA = 4096

# GP 2.3.1 §11.9.3.1: FCI template with the AID and proprietary data (max command data length).
_ISD_FCI = Tlv.of(0x6F, Tlv(0x84, ISD_AID), Tlv.of(0xA5, Tlv(0x9F65, b"\xff"))).to_bytes()

STATE_TO_LIFECYCLE = {
    ContainerState.AVAILABLE: LifeCycle.SELECTABLE,
    ContainerState.AUTHORIZED: LifeCycle.AUTHORIZED,
    ContainerState.OWNED: LifeCycle.PERSONALIZED,
    ContainerState.LOCKED: LifeCycle.LOCKED,
}


def card_recognition_data() -> bytes:
    """Template 66 { 73 { 06 OID, 60 {06 GP version}, 63 {06 scheme}, 64 {06 SCP03 i=70} } } (§7.4.1.3)."""
    inner = Tlv.of(
        0x73,
        Tlv(0x06, _OID_CARD_RECOGNITION),
        Tlv.of(0x60, Tlv(0x06, _OID_GP_VERSION)),
        Tlv.of(0x63, Tlv(0x06, _OID_CARD_ID_SCHEME)),
        Tlv.of(0x64, Tlv(0x06, _OID_SCP03 + bytes([0x03, _SCP03_I]))),
    )
    return Tlv.of(0x66, inner).to_bytes()


def key_information(keyset: KeySetRow) -> bytes:
    """Template E0 with one C0 per key: key id, KVN, type 88 (AES), length (GP 2.3.1 §11.3.3.1.1)."""
    n = decode_keys(keyset.secret).length
    return Tlv.of(0xE0, *(Tlv(0xC0, bytes([key_id, keyset.kvn, 0x88, n])) for key_id in (1, 2, 3))).to_bytes()


def _lv_fields(data: bytes, count: int) -> list[bytes]:
    """GP 2.3.1 §11.5.2.3 INSTALL data: ``count`` length-prefixed fields (lengths 1 byte, or 81 xx)."""
    out: list[bytes] = []
    pos = 0
    for _ in range(count):
        if pos >= len(data):
            raise ApduError(SW.INCORRECT_DATA, "INSTALL data truncated")
        n = data[pos]
        pos += 1
        if n == 0x81:
            if pos >= len(data):
                raise ApduError(SW.INCORRECT_DATA, "INSTALL data truncated")
            n = data[pos]
            pos += 1
        elif n > 0x7F:
            raise ApduError(SW.INCORRECT_DATA, "INSTALL field length")
        if pos + n > len(data):
            raise ApduError(SW.INCORRECT_DATA, "INSTALL data truncated")
        out.append(data[pos : pos + n])
        pos += n
    if pos != len(data):
        raise ApduError(SW.INCORRECT_DATA, "INSTALL data has trailing bytes")
    return out


def _memory_value(raw: bytes) -> int:
    if len(raw) not in (2, 4):
        raise ApduError(SW.INCORRECT_DATA, "memory parameter must be 2 or 4 bytes")
    return int.from_bytes(raw, "big")


class IsdApp(SecurityDomainApp):
    """The ISD selected on one connection."""

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx, ISD_AID, ISD_OWNER)
        self._perso_target: int | None = None
        self._blocks = StoreDataBlocks(MAX_STORE_DATA)

    def select_response(self) -> ResponseApdu:
        return ResponseApdu(_ISD_FCI, SW.OK)

    def keyset_for_session(self) -> KeySetRow:
        keyset = self.ctx.store.keyset(ISD_OWNER)
        if keyset is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no ISD key set")
        return keyset

    # Anyone who can reach the device may send failing handshakes. A permanently blocked operator key set would
    # leave every container unrevocable (DESIGN.md invariant 4), so the ISD's block is a cool-down instead:
    # after MAX_AUTH_TRIES consecutive failures the key set refuses INITIALIZE UPDATE for 2, 4, 8 ... seconds
    # (at most COOLDOWN_MAX), then grants a fresh set of tries. The failures stay rate-limited to
    # MAX_AUTH_TRIES per cool-down, and the operator gets back in once an attacker stops.

    def blocked(self, keyset: KeySetRow) -> bool:
        if keyset.tries_left > 0:
            return False
        until, _ = self._cooldown()
        if self.ctx.clock() < until:
            return True
        self.ctx.store.set_tries(ISD_OWNER, MAX_AUTH_TRIES)
        return False

    def exhausted(self) -> None:
        _, rounds = self._cooldown()
        rounds += 1
        until = self.ctx.clock() + min(COOLDOWN_BASE * 2**rounds, COOLDOWN_MAX)
        self.ctx.store.put_meta(COOLDOWN_META, struct.pack(">dI", until, rounds))

    def authenticated_again(self) -> None:
        if self._cooldown() != (0.0, 0):
            self.ctx.store.put_meta(COOLDOWN_META, struct.pack(">dI", 0.0, 0))

    def _cooldown(self) -> tuple[float, int]:
        raw = self.ctx.store.get_meta(COOLDOWN_META)
        if raw is None or len(raw) != 12:
            return 0.0, 0
        until, rounds = struct.unpack(">dI", raw)
        return float(until), int(rounds)

    def close_session(self) -> None:
        super().close_session()
        self._perso_target = None
        self._blocks.reset()

    def _operator(self) -> None:
        self.require_level(LEVEL_CMAC, KeyRole.OPERATOR)

    def handle(self, cmd: CommandApdu) -> ResponseApdu:
        ins = cmd.ins
        if ins == Ins.GET_DATA:
            return self._get_data(cmd)
        if ins == Ins.INTERNAL_AUTHENTICATE:
            return self._internal_authenticate(cmd)
        if ins == Ins.GET_STATUS:
            self._operator()
            return self._get_status(cmd)
        if ins == Ins.INSTALL:
            self._operator()
            return self._install(cmd)
        if ins == Ins.STORE_DATA:
            self._operator()
            return self._store_authorization(cmd)
        if ins == Ins.SET_STATUS:
            self._operator()
            return self._set_status(cmd)
        if ins == Ins.DELETE:
            self._operator()
            return self._delete(cmd)
        if ins == Ins.PUT_KEY:
            self._operator()
            return self._put_key(cmd)
        raise ApduError(SW.INS_NOT_SUPPORTED, "instruction not supported by the ISD")

    # ---------------------------------------------------------------- open to anyone

    def _get_data(self, cmd: CommandApdu) -> ResponseApdu:
        tag = (cmd.p1 << 8) | cmd.p2
        store = self.ctx.store
        if tag == DataTag.CARD_DATA:
            return ResponseApdu.of(SW.OK, card_recognition_data())
        if tag == DataTag.KEY_INFORMATION:
            return ResponseApdu.of(SW.OK, key_information(self.keyset_for_session()))
        if tag == DataTag.KEY_DIVERSIFICATION:
            return ResponseApdu.of(SW.OK, Tlv(0xCF, self.ctx.device_id).to_bytes())
        if tag == DataTag.CERTIFICATE_STORE:
            chain = store.get_meta("certificate_chain") or b""
            return ResponseApdu.of(SW.OK, Tlv(DataTag.CERTIFICATE_STORE, chain).to_bytes())
        if tag == DataTag.ISSUER_ID:
            serial = store.get_meta("serial") or b""
            return ResponseApdu.of(SW.OK, Tlv(0x42, serial).to_bytes())
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such data object")

    def _internal_authenticate(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.p1 != 0 or cmd.p2 != 0:
            raise ApduError(SW.INCORRECT_P1P2, "INTERNAL AUTHENTICATE P1/P2 must be 00")
        if not MIN_CHALLENGE <= len(cmd.data) <= MAX_CHALLENGE:
            raise ApduError(SW.WRONG_LENGTH, "challenge must be 16..64 bytes")
        key = serialization.load_der_private_key(self.ctx.store.get_secret("identity_key"), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ApduError(SW.UNKNOWN, "identity key is not EC")
        return ResponseApdu.of(SW.OK, sign_challenge(key, self.ctx.device_id, cmd.data))

    # ---------------------------------------------------------------- content management

    def _get_status(self, cmd: CommandApdu) -> ResponseApdu:
        if not cmd.p2 & 0x02:
            raise ApduError(SW.INCORRECT_P1P2, "only the TLV response format (P2 b2) is supported")
        if cmd.p2 & 0x01:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no more entries")
        try:
            criteria = find(cmd.data, 0x4F) if cmd.data else None
        except WireError as exc:
            raise ApduError(SW.INCORRECT_DATA, "search criteria") from exc
        prefix = b"" if criteria is None else criteria.value
        entries: list[ContainerInfo] = []
        if cmd.p1 == GetStatusP1.ISD:
            entries.append(ContainerInfo(ISD_AID, LifeCycle.PERSONALIZED))
        elif cmd.p1 == GetStatusP1.APPLICATIONS:
            for row in self.ctx.store.containers():
                aid = container_aid(row.index)
                if aid.startswith(prefix):
                    entries.append(
                        ContainerInfo(
                            aid, STATE_TO_LIFECYCLE[row.state], row.provider_id, row.quota, row.reserved, row.used
                        )
                    )
        elif cmd.p1 in (GetStatusP1.LOAD_FILES, GetStatusP1.LOAD_FILES_AND_MODULES):
            entries = []
        else:
            raise ApduError(SW.INCORRECT_P1P2, "GET STATUS P1")
        if not entries:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no matching entry")
        return ResponseApdu.of(SW.OK, encode_entries(entries))

    def _install(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.p2 != 0:
            raise ApduError(SW.INCORRECT_P1P2, "INSTALL P2")
        if cmd.p1 in (InstallP1.FOR_INSTALL, InstallP1.FOR_INSTALL | InstallP1.FOR_MAKE_SELECTABLE):
            return self._install_container(cmd.data)
        if cmd.p1 == InstallP1.FOR_PERSONALIZATION:
            _, _, aid, _, _, _ = _lv_fields(cmd.data, 6)
            index = container_index(aid)
            if index is None or self.ctx.store.container(index) is None:
                raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such container")
            self._perso_target = index
            self._blocks.reset()
            return ResponseApdu.of(SW.OK, b"\x00")
        raise ApduError(SW.INCORRECT_P1P2, "only INSTALL [for install] and [for personalization]")

    def _install_container(self, data: bytes) -> ResponseApdu:
        """GP 2.3.1 §11.5.2.3.2: load file AID, module AID, application AID, privileges, parameters, token.
        Install parameters EF { C8 quota, D8 reserved } (GP §9.7, table 11-49)."""
        _, _, aid, _, params, _ = _lv_fields(data, 6)
        store = self.ctx.store
        if aid == CONTAINER_AID_PREFIX:
            taken = {row.index for row in store.containers()}
            free = [i for i in range(MAX_CONTAINERS) if i not in taken]
            if not free:
                raise ApduError(SW.NOT_ENOUGH_MEMORY, "no free container index")
            index = free[0]
        else:
            found = container_index(aid)
            if found is None or found >= MAX_CONTAINERS:
                raise ApduError(SW.INCORRECT_DATA, "application AID is not a container AID")
            index = found
        try:
            system = find(params, 0xEF)
            fields = as_dict(system.value) if system is not None else {}
        except WireError as exc:
            raise ApduError(SW.INCORRECT_DATA, "install parameters") from exc
        if 0xC8 not in fields:
            raise ApduError(SW.INCORRECT_DATA, "install parameters lack the C8 quota")
        quota = _memory_value(fields[0xC8])
        reserved = _memory_value(fields[0xD8]) if 0xD8 in fields else 0
        if reserved > quota or quota == 0:
            raise ApduError(SW.INCORRECT_DATA, "reserved memory above quota")
        if store.committed_total() + reserved > store.capacity or quota > store.capacity:
            raise ApduError(SW.NOT_ENOUGH_MEMORY, "device cannot reserve that much memory")
        store.add_container(index, quota, reserved)
        return ResponseApdu.of(SW.OK, container_aid(index))

    def _store_authorization(self, cmd: CommandApdu) -> ResponseApdu:
        """STORE DATA after INSTALL [for personalization] (GP 2.3.1 §11.11): the authorization template."""
        target = self._perso_target
        if target is None:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no INSTALL [for personalization] before STORE DATA")
        data = self._blocks.add(cmd, "authorization too long")
        if data is None:
            return ResponseApdu.of(SW.OK)
        try:
            auth = Authorization.parse(data)
            command = PutKeyCommand.parse(0x00, 0x81, auth.key_data)
            initial = command.decrypt(self.dek)
        except (WireError, KeyDataError) as exc:
            raise ApduError(SW.INCORRECT_DATA, "malformed authorization") from exc
        if auth.expires_at <= int(self.ctx.clock()):
            raise ApduError(SW.INCORRECT_DATA, "authorization already expired")
        store = self.ctx.store
        row = store.container(target)
        if row is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such container")
        if row.state not in (ContainerState.AVAILABLE, ContainerState.AUTHORIZED):
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "container is not available")
        store.authorize_container(target, auth.provider_id, auth.expires_at)
        store.put_keyset(target, KeyRole.INITIAL, initial.kvn, encode_keys(initial), MAX_AUTH_TRIES)
        return ResponseApdu.of(SW.OK)

    def _target(self, data: bytes) -> int:
        try:
            tlv = Tlv.parse(data)
        except WireError as exc:
            raise ApduError(SW.INCORRECT_DATA, "expected 4F <AID>") from exc
        if tlv.tag != 0x4F:
            raise ApduError(SW.INCORRECT_DATA, "expected 4F <AID>")
        index = container_index(tlv.value)
        if index is None or self.ctx.store.container(index) is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such container")
        return index

    def _set_status(self, cmd: CommandApdu) -> ResponseApdu:
        """GP 2.3.1 §11.10: P1 40 (application), P2 80 lock / 00 unlock; data = the container AID."""
        if cmd.p1 != 0x40 or cmd.p2 not in (0x00, 0x80, 0x83, 0x0F):
            raise ApduError(SW.INCORRECT_P1P2, "SET STATUS P1/P2")
        index = container_index(cmd.data)
        row = None if index is None else self.ctx.store.container(index)
        if index is None or row is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such container")
        lock = bool(cmd.p2 & 0x80)
        if lock and row.state == ContainerState.OWNED:
            self.ctx.store.set_container_state(index, ContainerState.LOCKED)
        elif not lock and row.state == ContainerState.LOCKED:
            self.ctx.store.set_container_state(index, ContainerState.OWNED)
        else:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "transition not allowed from this state")
        return ResponseApdu.of(SW.OK)

    def _delete(self, cmd: CommandApdu) -> ResponseApdu:
        """GP 2.3.1 §11.2: DELETE 4F <container AID> revokes: provider key set and all content destroyed."""
        if cmd.p1 != 0 or cmd.p2 not in (0x00, 0x80):
            raise ApduError(SW.INCORRECT_P1P2, "DELETE P1/P2")
        index = self._target(cmd.data)
        store = self.ctx.store
        row = store.container(index)
        if row is not None and row.state in (ContainerState.OWNED, ContainerState.LOCKED):
            objects = store.objects(index)
            rights = Rights(provider=False, holder=False, security_level=0)
            for function in self.ctx.functions:
                try:
                    function.destroy(FunctionContext(index, rights, objects, self.ctx.random, self.ctx.clock))
                except Exception:  # revocation must always work (invariant 4); the wipe below removes the rest
                    log.exception("function %s failed to release container %d", function.name, index)
        store.wipe_container(index)
        return ResponseApdu.of(SW.OK, b"\x00")

    def _put_key(self, cmd: CommandApdu) -> ResponseApdu:
        """GP 2.3.1 §11.8: replace the operator key set (P1 = its KVN or 00, P2 = 81)."""
        current = self.keyset_for_session()
        if cmd.p1 not in (0x00, current.kvn):
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no key set with this version")
        try:
            new = PutKeyCommand.parse(cmd.p1, cmd.p2, cmd.data).decrypt(self.dek)
        except KeyDataError as exc:
            raise ApduError(SW.INCORRECT_DATA, "malformed key data") from exc
        if cmd.p2 != 0x81:
            raise ApduError(SW.INCORRECT_P1P2, "PUT KEY expects key identifier 1 (P2 81)")
        self.ctx.store.put_keyset(ISD_OWNER, KeyRole.OPERATOR, new.kvn, encode_keys(new), MAX_AUTH_TRIES)
        self.rebind_session(KeyRole.OPERATOR, new)
        return ResponseApdu.of(SW.OK, put_key_response(new))
