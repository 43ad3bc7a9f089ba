"""A secure container: the provider's domain (DESIGN.md "Protocol choices"; docs/protocol.md "Containers").

Lifecycle AVAILABLE -> AUTHORIZED -> OWNED <-> LOCKED, revoke -> AVAILABLE. AUTHORIZED admits only SCP03 with
the initial key set and PUT KEY at level 33; OWNED admits the provider's key set, data objects with access
rules, the holder PIN and the container functions. Its secure channel is bound to it and dies with the
selection.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from tenantcard.crypto.errors import KeyDataError
from tenantcard.crypto.scp03 import PutKeyCommand, put_key_response
from tenantcard.device.domain import (
    LEVEL_CMAC,
    LEVEL_FULL,
    MAX_AUTH_TRIES,
    Application,
    DeviceContext,
    SecurityDomainApp,
    StoreDataBlocks,
    encode_keys,
)
from tenantcard.device.functions.base import ContainerFunction, FunctionContext, Rights
from tenantcard.device.isd import STATE_TO_LIFECYCLE
from tenantcard.device.pin import MAX_PIN, PAD, HolderPin, unpad_pin
from tenantcard.device.store import ContainerObjects, ContainerRow, ContainerState, KeyRole, KeySetRow
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import GetStatusP1, Ins, container_aid
from tenantcard.wire.sw import SW, ApduError
from tenantcard.wire.tenant import (
    MAX_OBJECT_NAME,
    Access,
    ContainerStatus,
    DataObject,
    parse_object_name_query,
)
from tenantcard.wire.tlv import Tlv, encode_all

OBJECT_KIND = "obj"  # data objects of STORE DATA (counted against the quota, unlike "core." kinds)
MAX_OBJECT_DATA = 0xFFFF
CORE_INS = frozenset(
    {
        Ins.PUT_KEY,
        Ins.STORE_DATA,
        Ins.GET_DATA,
        Ins.GET_DATA_ODD,
        Ins.DELETE,
        Ins.GET_STATUS,
        Ins.VERIFY,
        Ins.CHANGE_REFERENCE_DATA,
        Ins.RESET_RETRY_COUNTER,
    }
)


_FCI: dict[bytes, bytes] = {}  # SELECT answer per container AID (GP 2.3.1 §11.9.3.1), built once
_RIGHTS: dict[tuple[bool, bool, int], Rights] = {}  # the few distinct (immutable) Rights, built once each


class DataObjects:
    """STORE DATA objects: value stored as access byte || value; counted against the quota."""

    def __init__(self, objects: ContainerObjects) -> None:
        self._objects = objects

    def put(self, obj: DataObject) -> None:
        self._objects.put(OBJECT_KIND, obj.name, bytes([obj.access]) + obj.value)

    def get(self, name: bytes) -> DataObject | None:
        raw = self._objects.get(OBJECT_KIND, name)
        return None if raw is None else DataObject(name, Access(raw[0]), raw[1:])

    def delete(self, name: bytes) -> bool:
        return self._objects.delete(OBJECT_KIND, name)

    def all(self) -> list[DataObject]:
        out = []
        for name in self._objects.names(OBJECT_KIND):
            obj = self.get(name)
            if obj is not None:
                out.append(obj)
        return out


class ContainerApp(SecurityDomainApp):
    """One container selected on one connection."""

    def __init__(self, ctx: DeviceContext, index: int) -> None:
        super().__init__(ctx, container_aid(index), index)
        self.index = index
        self.holder_verified = False
        self.function_sessions: dict[str, MutableMapping[str, object]] = {}
        self._blocks = StoreDataBlocks(MAX_OBJECT_DATA)
        self._objects = ctx.store.objects(index)

    # ---------------------------------------------------------------- state

    def row(self) -> ContainerRow:
        row = self.ctx.store.container(self.index)
        if row is None:
            raise ApduError(SW.NOT_FOUND, "container no longer exists")
        return row

    def state_refusal(self) -> SW | None:
        # GP 2.3.1 §11.1.1: a LOCKED application answers nothing but SELECT.
        return SW.SELECTED_FILE_INVALIDATED if self.row().state == ContainerState.LOCKED else None

    def close_session(self) -> None:
        super().close_session()
        self._blocks.reset()

    def deselect(self) -> None:
        super().deselect()
        self.holder_verified = False
        self.function_sessions.clear()

    def select_response(self) -> ResponseApdu:
        fci = _FCI.get(self.aid)
        if fci is None:
            fci = _FCI[self.aid] = Tlv.of(0x6F, Tlv(0x84, self.aid), Tlv.of(0xA5, Tlv(0x9F65, b"\xff"))).to_bytes()
        return ResponseApdu(fci, SW.OK)

    def _expired(self, row: ContainerRow) -> bool:
        return row.expires_at is not None and int(self.ctx.clock()) >= row.expires_at

    def keyset_for_session(self) -> KeySetRow:
        row = self.row()
        if row.state == ContainerState.AUTHORIZED:
            if self._expired(row):
                raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "authorization expired")
            role = KeyRole.INITIAL
        elif row.state == ContainerState.OWNED:
            role = KeyRole.PROVIDER
        else:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "container not authorized")
        keyset = self.ctx.store.keyset(self.index)
        if keyset is None or keyset.role != role:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no key set")
        return keyset

    @property
    def rights(self) -> Rights:
        key = (self.authenticated and self.session_role == KeyRole.PROVIDER, self.holder_verified, self.level)
        rights = _RIGHTS.get(key)
        if rights is None:
            rights = _RIGHTS[key] = Rights(provider=key[0], holder=key[1], security_level=key[2])
        return rights

    def objects(self) -> ContainerObjects:
        return self._objects

    def function_context(self, function: ContainerFunction) -> FunctionContext:
        session = self.function_sessions.setdefault(function.name, {})
        return FunctionContext(self.index, self.rights, self.objects(), self.ctx.random, self.ctx.clock, session)

    # ---------------------------------------------------------------- dispatch

    def handle(self, cmd: CommandApdu) -> ResponseApdu:
        row = self.row()
        if row.state == ContainerState.AUTHORIZED:
            if cmd.ins == Ins.PUT_KEY:
                return self._take_ownership(cmd, row)
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "container accepts only PUT KEY until owned")
        if row.state != ContainerState.OWNED:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "container not owned")
        ins = cmd.ins
        if ins in CORE_INS:
            return self._core(cmd)
        for function in self.ctx.functions:
            if function.handles(ins):
                return function.process(self.function_context(function), cmd)
        raise ApduError(SW.INS_NOT_SUPPORTED, "instruction not supported by the container")

    def _core(self, cmd: CommandApdu) -> ResponseApdu:
        ins = cmd.ins
        if ins == Ins.PUT_KEY:
            return self._rotate(cmd)
        if ins == Ins.STORE_DATA:
            return self._store_object(cmd)
        if ins in (Ins.GET_DATA, Ins.GET_DATA_ODD):
            return self._get_object(cmd)
        if ins == Ins.DELETE:
            return self._delete_object(cmd)
        if ins == Ins.GET_STATUS:
            return self._get_status(cmd)
        if ins == Ins.VERIFY:
            return self._verify(cmd)
        if ins == Ins.CHANGE_REFERENCE_DATA:
            return self._change_pin(cmd)
        return self._reset_retry_counter(cmd)

    # ---------------------------------------------------------------- keys

    def _new_keys(self, cmd: CommandApdu, current: KeySetRow) -> ResponseApdu:
        if cmd.p1 not in (0x00, current.kvn):
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no key set with this version")
        try:
            new = PutKeyCommand.parse(cmd.p1, cmd.p2, cmd.data).decrypt(self.dek)
        except KeyDataError as exc:
            raise ApduError(SW.INCORRECT_DATA, "malformed key data") from exc
        if cmd.p2 != 0x81:
            raise ApduError(SW.INCORRECT_P1P2, "PUT KEY expects key identifier 1 (P2 81)")
        store = self.ctx.store
        # One transaction: the initial (or previous) keys are replaced by the new set before 9000 goes out.
        store.put_keyset(self.index, KeyRole.PROVIDER, new.kvn, encode_keys(new), MAX_AUTH_TRIES)
        self.rebind_session(KeyRole.PROVIDER, new)
        return ResponseApdu.of(SW.OK, put_key_response(new))

    def _take_ownership(self, cmd: CommandApdu, row: ContainerRow) -> ResponseApdu:
        self.require_level(LEVEL_FULL, KeyRole.INITIAL)
        if self._expired(row):
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "authorization expired")
        current = self.keyset_for_session()
        response = self._new_keys(cmd, current)
        self.ctx.store.clear_expiry(self.index)
        self.ctx.store.set_container_state(self.index, ContainerState.OWNED)
        return response

    def _rotate(self, cmd: CommandApdu) -> ResponseApdu:
        self.require_level(LEVEL_FULL, KeyRole.PROVIDER)
        return self._new_keys(cmd, self.keyset_for_session())

    # ---------------------------------------------------------------- data objects

    def _store_object(self, cmd: CommandApdu) -> ResponseApdu:
        """STORE DATA (GP 2.3.1 §11.11) of one A2 data object; P1 b8 marks the last block."""
        self.require_level(LEVEL_CMAC, KeyRole.PROVIDER)
        data = self._blocks.add(cmd, "data object too long")
        if data is None:
            return ResponseApdu.of(SW.OK)
        try:
            obj = DataObject.parse(data)
        except WireError as exc:
            raise ApduError(SW.INCORRECT_DATA, "malformed data object") from exc
        if obj.size is not None:
            raise ApduError(SW.INCORRECT_DATA, "data object carries a size instead of a value")
        DataObjects(self.objects()).put(obj)
        return ResponseApdu.of(SW.OK)

    def _object_name(self, cmd: CommandApdu) -> bytes:
        data = cmd.data
        if 3 <= len(data) <= 2 + MAX_OBJECT_NAME and data[0] == 0x80 and data[1] == len(data) - 2:
            return data[2:]  # 80 L name, short length: what parse_object_name_query accepts, without the parser
        try:
            return parse_object_name_query(data)
        except WireError as exc:
            raise ApduError(SW.INCORRECT_DATA, "expected 80 <object name>") from exc

    def _get_object(self, cmd: CommandApdu) -> ResponseApdu:
        if (cmd.p1, cmd.p2) != (0x00, 0x00):
            raise ApduError(SW.INCORRECT_P1P2, "GET DATA of an object uses P1 P2 = 00 00")
        obj = DataObjects(self.objects()).get(self._object_name(cmd))
        if obj is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such object")
        if not self.rights.allows(obj.access):
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "access rule not satisfied")
        return ResponseApdu.of(SW.OK, obj.value)

    def _delete_object(self, cmd: CommandApdu) -> ResponseApdu:
        self.require_level(LEVEL_CMAC, KeyRole.PROVIDER)
        if (cmd.p1, cmd.p2) not in ((0x00, 0x00), (0x00, 0x80)):
            raise ApduError(SW.INCORRECT_P1P2, "DELETE P1/P2")
        if not DataObjects(self.objects()).delete(self._object_name(cmd)):
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such object")
        return ResponseApdu.of(SW.OK, b"\x00")

    def _get_status(self, cmd: CommandApdu) -> ResponseApdu:
        """P1 80: this container's status; P1 40: its data objects the caller may read (names, access,
        sizes; never values). P2 b2 (TLV format) required."""
        if not cmd.p2 & 0x02 or cmd.p2 & 0x01:
            raise ApduError(SW.INCORRECT_P1P2, "GET STATUS P2")
        if cmd.p1 == GetStatusP1.ISD:
            row = self.row()
            pin = HolderPin(self.objects()).record()
            status = ContainerStatus(
                self.aid,
                STATE_TO_LIFECYCLE[row.state],
                row.quota,
                row.used,
                pin is not None,
                0 if pin is None else pin.tries_left,
                0 if pin is None else pin.max_tries,
            )
            return ResponseApdu.of(SW.OK, status.to_bytes())
        if cmd.p1 == GetStatusP1.APPLICATIONS:
            rights = self.rights
            listed = [
                DataObject(obj.name, obj.access, size=len(obj.value))
                for obj in DataObjects(self.objects()).all()
                if rights.allows(obj.access)
            ]
            return ResponseApdu.of(SW.OK, encode_all(Tlv.parse(o.to_bytes()) for o in listed))
        raise ApduError(SW.INCORRECT_P1P2, "GET STATUS P1")

    # ---------------------------------------------------------------- holder PIN

    def _verify(self, cmd: CommandApdu) -> ResponseApdu:
        if (cmd.p1, cmd.p2) != (0x00, 0x80):
            raise ApduError(SW.INCORRECT_P1P2, "VERIFY P1 P2 = 00 80")
        pin = HolderPin(self.objects())
        if not cmd.data:
            if self.holder_verified:
                return ResponseApdu.of(SW.OK)
            return ResponseApdu.of(pin.status())
        sw = pin.verify(cmd.data)
        self.holder_verified = sw == SW.OK
        return ResponseApdu.of(sw)

    def _change_pin(self, cmd: CommandApdu) -> ResponseApdu:
        """P1 00: holder, data = old || new, each FF-padded to 16 bytes. P1 01: provider sets the PIN,
        data = retry limit (1 byte) || PIN."""
        if cmd.p2 != 0x80:
            raise ApduError(SW.INCORRECT_P1P2, "CHANGE REFERENCE DATA P2 = 80")
        pin = HolderPin(self.objects())
        if cmd.p1 == 0x01:
            self.require_level(LEVEL_CMAC, KeyRole.PROVIDER)
            if len(cmd.data) < 2:
                raise ApduError(SW.WRONG_LENGTH, "retry limit and PIN expected")
            pin.set(cmd.data[1:], cmd.data[0])
            self.holder_verified = False
            return ResponseApdu.of(SW.OK)
        if cmd.p1 != 0x00:
            raise ApduError(SW.INCORRECT_P1P2, "CHANGE REFERENCE DATA P1")
        if len(cmd.data) != 2 * MAX_PIN:
            raise ApduError(SW.WRONG_LENGTH, "two FF-padded 16-byte PINs expected")
        old, new = cmd.data[:MAX_PIN], cmd.data[MAX_PIN:]
        if old.rstrip(bytes([PAD])) == b"" or new.rstrip(bytes([PAD])) == b"":
            raise ApduError(SW.INCORRECT_DATA, "empty PIN")
        sw = pin.change(unpad_pin(old), unpad_pin(new))
        self.holder_verified = sw == SW.OK
        return ResponseApdu.of(sw)

    def _reset_retry_counter(self, cmd: CommandApdu) -> ResponseApdu:
        """ISO 7816-4 §7.5.10 P1 02 (new reference data only), by the provider."""
        if (cmd.p1, cmd.p2) != (0x02, 0x80):
            raise ApduError(SW.INCORRECT_P1P2, "RESET RETRY COUNTER P1 P2 = 02 80")
        self.require_level(LEVEL_CMAC, KeyRole.PROVIDER)
        HolderPin(self.objects()).unblock(cmd.data)
        self.holder_verified = False
        return ResponseApdu.of(SW.OK)


class FunctionApplet(Application):
    """A function's own application (e.g. a PIV personality) selected by one of its ``aids`` inside a
    container-scoped session: every command, SELECT included, goes to the function with the container's
    context. The container must be OWNED; a LOCKED container answers 6283."""

    def __init__(self, container: ContainerApp, function: ContainerFunction, aid: bytes) -> None:
        self.container = container
        self.function = function
        self.aid = aid

    def _check(self) -> None:
        state = self.container.row().state
        if state == ContainerState.LOCKED:
            raise ApduError(SW.SELECTED_FILE_INVALIDATED, "container locked")
        if state != ContainerState.OWNED:
            raise ApduError(SW.NOT_FOUND, "application not available")

    def on_select(self, cmd: CommandApdu) -> ResponseApdu:
        self._check()
        return self.function.process(self.container.function_context(self.function), cmd)

    def process(self, cmd: CommandApdu) -> ResponseApdu:
        self._check()
        return self.function.process(self.container.function_context(self.function), cmd)

    def deselect(self) -> None:
        self.container.deselect()
