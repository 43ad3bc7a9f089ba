"""Host side of the issuer security domain (the operator's domain): one verb per command of docs/protocol.md.

Built on the processors of ``client.processors``: commands that need the operator's channel go through the
SCP03 secure-messaging processor opened by :meth:`IsdSession.authenticate`; identity and recognition data are
read without a channel. Refusals raise ``StatusError`` (with the status word), secure-channel failures
``SecureChannelError``, malformed answers ``ResponseError``, misuse ``SessionError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from tenantcard.client.errors import ResponseError, SessionError
from tenantcard.client.processors import check
from tenantcard.client.session import ChannelSession, check_put_key_response
from tenantcard.crypto.scp03 import PutKeyCommand, StaticKeys
from tenantcard.transport.base import Connection
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import (
    CONTAINER_AID_PREFIX,
    ISD_AID,
    Cla,
    DataTag,
    GetStatusP1,
    Ins,
    InstallP1,
    container_aid,
)
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Authorization, ContainerInfo, parse_status_entries
from tenantcard.wire.tlv import Tlv, iter_tlvs

__all__ = [
    "IsdSession",
    "KeyInfo",
    "SessionError",
    "check_put_key_response",
    "install_for_install_data",
    "install_for_personalization_data",
]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One C0 entry of the key information template (GP 2.3.1 §11.3.3.1.1)."""

    key_id: int
    kvn: int
    key_type: int
    length: int


def _lv(value: bytes) -> bytes:
    if len(value) > 0x7F:
        return b"\x81" + bytes([len(value)]) + value
    return bytes([len(value)]) + value


def install_for_install_data(aid: bytes, quota: int, reserved: int) -> bytes:
    """GP 2.3.1 §11.5.2.3.2 INSTALL [for install] data with EF { C8 quota, D8 reserved } (§9.7)."""
    system = Tlv.of(0xEF, Tlv(0xC8, quota.to_bytes(4, "big")), Tlv(0xD8, reserved.to_bytes(4, "big")))
    params = Tlv(0xC9, b"").to_bytes() + system.to_bytes()
    return _lv(b"") + _lv(b"") + _lv(aid) + _lv(b"\x00") + _lv(params) + _lv(b"")


def install_for_personalization_data(aid: bytes) -> bytes:
    """GP 2.3.1 §11.5.2.3.5: only the application AID is present."""
    return _lv(b"") + _lv(b"") + _lv(aid) + _lv(b"") + _lv(b"") + _lv(b"")


class IsdSession(ChannelSession):
    """The ISD on one connection."""

    owner = "operator"

    def __init__(self, connection: Connection, *, extended: bool = True) -> None:
        super().__init__(connection, ISD_AID, extended=extended)

    def __repr__(self) -> str:
        return f"IsdSession(authenticated={self.authenticated})"

    # ---------------------------------------------------------------- open to anyone

    def select(self) -> bytes:
        """SELECT the ISD; returns its FCI. Closes any channel."""
        return self._select("SELECT ISD")

    def get_data(self, tag: int) -> bytes:
        return self._call(CommandApdu(Cla.GP, Ins.GET_DATA, tag >> 8, tag & 0xFF, le=256), "GET DATA")

    def get_device_id(self) -> bytes:
        """The 10-byte device id (= key-diversification data, tag CF)."""
        try:
            tlv = Tlv.parse(self.get_data(DataTag.KEY_DIVERSIFICATION))
        except WireError as exc:
            raise ResponseError("malformed CF data") from exc
        if tlv.tag != DataTag.KEY_DIVERSIFICATION or len(tlv.value) != 10:
            raise ResponseError("malformed CF data")
        return tlv.value

    def get_certificates(self) -> list[x509.Certificate]:
        """The device identity chain (tag BF21): device certificate first, then intermediates."""
        try:
            store = Tlv.parse(self.get_data(DataTag.CERTIFICATE_STORE))
            return [x509.load_der_x509_certificate(t.to_bytes()) for t in iter_tlvs(store.value)]
        except (WireError, ValueError) as exc:
            raise ResponseError("malformed certificate store") from exc

    def internal_authenticate(self, challenge: bytes) -> bytes:
        """The device's DER ECDSA signature over ``crypto.identity.device_auth_message``."""
        return self._call(
            CommandApdu(0x00, Ins.INTERNAL_AUTHENTICATE, 0x00, 0x00, challenge, le=256), "INTERNAL AUTHENTICATE"
        )

    def get_card_data(self) -> bytes:
        """Card recognition data: the whole 66 template (GP 2.3.1 §7.4.1.3)."""
        return self.get_data(DataTag.CARD_DATA)

    def get_key_information(self) -> list[KeyInfo]:
        """The E0 key information template (GP 2.3.1 §11.3.3.1.1)."""
        try:
            template = Tlv.parse(self.get_data(DataTag.KEY_INFORMATION))
            out = []
            for entry in template.children():
                v = entry.value
                if entry.tag != 0xC0 or len(v) < 4:
                    raise ResponseError("malformed key information")
                out.append(KeyInfo(v[0], v[1], v[2], v[3]))
            return out
        except WireError as exc:
            raise ResponseError("malformed key information") from exc

    # ---------------------------------------------------------------- operator channel

    def list_containers(self) -> list[ContainerInfo]:
        self._owner_keys()
        resp = self.transmit(CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.APPLICATIONS, 0x02, b"\x4f\x00", le=256))
        if resp.sw == SW.REFERENCED_DATA_NOT_FOUND:
            return []
        try:
            return parse_status_entries(check(resp, "GET STATUS"))
        except WireError as exc:
            raise ResponseError("malformed GET STATUS answer") from exc

    def create_container(self, index: int | None, quota: int, reserved: int = 0) -> bytes:
        """INSTALL [for install]; ``index=None`` lets the device pick the lowest free index. Returns the AID."""
        self._owner_keys()
        aid = CONTAINER_AID_PREFIX if index is None else container_aid(index)
        data = install_for_install_data(aid, quota, reserved)
        p1 = InstallP1.FOR_INSTALL | InstallP1.FOR_MAKE_SELECTABLE
        answer = self._call(CommandApdu(Cla.GP, Ins.INSTALL, p1, 0x00, data, le=256), "INSTALL")
        if index is None and not answer.startswith(CONTAINER_AID_PREFIX):
            raise ResponseError("INSTALL did not name the container it created")
        return answer if index is None else aid

    def place_authorization(self, aid: bytes, provider_id: str, initial_keys: StaticKeys, expires_at: int) -> None:
        """INSTALL [for personalization] + STORE DATA of the authorization of communication: provider id,
        the one-time initial key set (DEK-encrypted, PUT KEY key-data format) and the expiry (Unix seconds)."""
        keys = self._owner_keys()
        self._call(
            CommandApdu(
                Cla.GP, Ins.INSTALL, InstallP1.FOR_PERSONALIZATION, 0x00, install_for_personalization_data(aid)
            ),
            "INSTALL [for personalization]",
        )
        key_data = PutKeyCommand.for_keys(initial_keys, keys.dek).to_data()
        try:
            auth = Authorization(provider_id, expires_at, key_data).to_bytes()
        except WireError as exc:
            raise SessionError(str(exc)) from exc
        self._call(CommandApdu(Cla.GP, Ins.STORE_DATA, 0x90, 0x00, auth), "STORE DATA")

    def lock(self, aid: bytes) -> None:
        """SET STATUS (GP 2.3.1 §11.10): OWNED -> LOCKED."""
        self._owner_keys()
        self._call(CommandApdu(Cla.GP, Ins.SET_STATUS, 0x40, 0x80, aid), "SET STATUS lock")

    def unlock(self, aid: bytes) -> None:
        """SET STATUS: LOCKED -> OWNED."""
        self._owner_keys()
        self._call(CommandApdu(Cla.GP, Ins.SET_STATUS, 0x40, 0x00, aid), "SET STATUS unlock")

    def revoke(self, aid: bytes) -> None:
        """DELETE (GP 2.3.1 §11.2): destroy the provider's key set and all content; back to AVAILABLE."""
        self._owner_keys()
        self._call(CommandApdu(Cla.GP, Ins.DELETE, 0x00, 0x00, Tlv(0x4F, aid).to_bytes(), le=256), "DELETE")

    def rotate_keys(self, new: StaticKeys) -> None:
        """PUT KEY replacing the operator key set; the channel stays open under the new keys."""
        self._put_key(self._owner_keys(), new)
