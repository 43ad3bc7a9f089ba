"""Host side of a container: take ownership, rotate keys, data objects, holder PIN (docs/protocol.md
"Containers"). Function clients (OTP, PKI, PIV, programs) send their commands through :meth:`transmit`.
"""

from __future__ import annotations

from tenantcard.client.errors import ResponseError, SessionError, StatusError
from tenantcard.client.session import ChannelSession
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import Cla, GetStatusP1, Ins
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import (
    Access,
    ContainerStatus,
    DataObject,
    object_name_query,
    parse_object_list,
)

__all__ = ["ContainerSession", "PinError", "SessionError"]

PIN_FIELD = 16


class PinError(StatusError):
    """VERIFY / CHANGE REFERENCE DATA refused: ``tries_left`` is None when blocked or without a PIN."""

    def __init__(self, sw: SW | int, context: str) -> None:
        super().__init__(sw, context)
        self.tries_left: int | None = self.sw.sw2 & 0x0F if self.sw.sw1 == 0x63 else None


def _pin_bytes(pin: str | bytes) -> bytes:
    return pin.encode() if isinstance(pin, str) else pin


class ContainerSession(ChannelSession):
    """One container on one connection."""

    owner = "provider"

    def __repr__(self) -> str:
        return f"ContainerSession(aid={self.aid.hex()}, authenticated={self.authenticated})"

    def select(self) -> bytes:
        """SELECT the container; drops any channel and PIN verification (on the card too)."""
        return self._select("SELECT")

    # ---------------------------------------------------------------- keys

    def take_ownership(self, initial: StaticKeys, new: StaticKeys) -> None:
        """Open SCP03 with the initial keys (the device's check of the authorization) and replace them with
        ``new`` (PUT KEY at level 33). The channel stays open under the new keys."""
        if not (
            self.authenticated and self._keys == initial and self._sm is not None and self._sm.security_level == 0x33
        ):
            self.authenticate(initial, 0x33)
        self._put_key(initial, new)

    def rotate_keys(self, new: StaticKeys) -> None:
        self._put_key(self._owner_keys(), new)

    # ---------------------------------------------------------------- data objects

    def put_object(self, name: bytes, value: bytes, access: Access = Access.PROVIDER) -> None:
        self._owner_keys()
        try:
            data = DataObject(name, Access(access), value).to_bytes()
        except WireError as exc:
            raise SessionError(str(exc)) from exc
        self._call(CommandApdu(Cla.GP, Ins.STORE_DATA, 0x90, 0x00, data), "STORE DATA")

    def get_object(self, name: bytes) -> bytes:
        try:
            query = object_name_query(name)
        except WireError as exc:
            raise SessionError(str(exc)) from exc
        return self._call(
            CommandApdu(Cla.GP, Ins.GET_DATA_ODD, 0x00, 0x00, query, le=65536 if self._extended else 256), "GET DATA"
        )

    def delete_object(self, name: bytes) -> None:
        self._owner_keys()
        try:
            query = object_name_query(name)
        except WireError as exc:
            raise SessionError(str(exc)) from exc
        self._call(CommandApdu(Cla.GP, Ins.DELETE, 0x00, 0x00, query, le=256), "DELETE")

    def list_objects(self) -> list[DataObject]:
        """The objects this session may read: names, access rules and sizes (never values)."""
        data = self._call(CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.APPLICATIONS, 0x02, le=256), "GET STATUS")
        try:
            return parse_object_list(data)
        except WireError as exc:
            raise ResponseError("malformed object list") from exc

    def status(self) -> ContainerStatus:
        data = self._call(CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.ISD, 0x02, le=256), "GET STATUS")
        try:
            return ContainerStatus.parse(data)
        except WireError as exc:
            raise ResponseError("malformed container status") from exc

    # ---------------------------------------------------------------- holder PIN

    def _pin_call(self, cmd: CommandApdu, context: str) -> None:
        resp = self.transmit(cmd)
        if resp.sw != SW.OK:
            raise PinError(resp.sw, context)

    def verify_pin(self, pin: str | bytes) -> None:
        """VERIFY (ISO 7816-4 §7.5.6); PinError with ``tries_left`` on a wrong PIN."""
        self._pin_call(CommandApdu(0x00, Ins.VERIFY, 0x00, 0x80, _pin_bytes(pin)), "VERIFY")

    def pin_tries_left(self) -> int | None:
        """VERIFY without data: None when verified on this connection, else the tries left."""
        resp = self.transmit(CommandApdu(0x00, Ins.VERIFY, 0x00, 0x80))
        if resp.sw == SW.OK:
            return None
        if resp.sw1 == 0x63:
            return resp.sw2 & 0x0F
        raise PinError(resp.sw, "VERIFY")

    def change_pin(self, old: str | bytes, new: str | bytes) -> None:
        """CHANGE REFERENCE DATA P1 00: old and new PIN, each FF-padded to 16 bytes."""
        o, n = _pin_bytes(old), _pin_bytes(new)
        if len(o) > PIN_FIELD or len(n) > PIN_FIELD:
            raise SessionError("a PIN has at most 16 bytes")
        data = o.ljust(PIN_FIELD, b"\xff") + n.ljust(PIN_FIELD, b"\xff")
        self._pin_call(CommandApdu(0x00, Ins.CHANGE_REFERENCE_DATA, 0x00, 0x80, data), "CHANGE REFERENCE DATA")

    def set_pin(self, pin: str | bytes, retries: int = 3) -> None:
        """Provider: set the holder PIN and its retry limit (CHANGE REFERENCE DATA P1 01)."""
        self._owner_keys()
        if not 1 <= retries <= 15:
            raise SessionError("retry limit must be 1..15")
        data = bytes([retries]) + _pin_bytes(pin)
        self._call(CommandApdu(0x00, Ins.CHANGE_REFERENCE_DATA, 0x01, 0x80, data), "CHANGE REFERENCE DATA")

    def unblock_pin(self, new: str | bytes) -> None:
        """Provider: RESET RETRY COUNTER P1 02 with a new PIN."""
        self._owner_keys()
        self._call(CommandApdu(0x00, Ins.RESET_RETRY_COUNTER, 0x02, 0x80, _pin_bytes(new)), "RESET RETRY COUNTER")
