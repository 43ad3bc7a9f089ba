"""A minimal host for the device's unit tests: SCP03 from ``crypto.scp03.Scp03Host`` and GET RESPONSE."""

from __future__ import annotations

import os
from collections.abc import Callable

from tenantcard.crypto.scp03 import PutKeyCommand, Scp03Host, SecureChannelError, StaticKeys
from tenantcard.device.provision import gp_test_keys
from tenantcard.transport.base import Connection
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import ISD_AID, Cla, Ins, container_aid
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access, Authorization, DataObject, object_name_query


class Host:
    """One host-side card session; ``send`` wraps commands once a secure channel is open."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.scp: Scp03Host | None = None

    def raw(self, apdu: bytes) -> bytes:
        return self.conn.transmit(apdu)

    def send(self, cmd: CommandApdu) -> ResponseApdu:
        if self.scp is not None and self.scp.authenticated:
            cmd = self.scp.wrap(cmd)
        resp = ResponseApdu.parse(self.conn.transmit(cmd.to_bytes()))
        data = resp.data
        while resp.sw1 == 0x61:
            resp = ResponseApdu.parse(self.conn.transmit(bytes([0x00, 0xC0, 0x00, 0x00, resp.sw2])))
            data += resp.data
        resp = ResponseApdu(data, resp.sw)
        if self.scp is not None and self.scp.authenticated:
            resp = self.scp.unwrap(resp)
        return resp

    def select(self, aid: bytes) -> SW:
        self.scp = None
        return self.send(CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, aid, le=256)).sw

    def select_isd(self) -> SW:
        return self.select(ISD_AID)

    def select_container(self, index: int) -> SW:
        return self.select(container_aid(index))

    def authenticate(self, keys: StaticKeys, level: int = 0x33) -> SW:
        """INITIALIZE UPDATE + EXTERNAL AUTHENTICATE; the status word of the step that failed, or 9000."""
        scp = Scp03Host(keys)
        init = ResponseApdu.parse(self.conn.transmit(scp.initialize_update().to_bytes()))
        if init.sw != SW.OK:
            self.scp = None
            return init.sw
        try:
            ext = scp.authenticate(init, level)
        except SecureChannelError:
            # Wrong keys: the card cryptogram does not verify. Go on as an attacker would, with a guess.
            self.scp = None
            guess = CommandApdu(0x84, Ins.EXTERNAL_AUTHENTICATE, level, 0x00, os.urandom(16))
            return ResponseApdu.parse(self.conn.transmit(guess.to_bytes())).sw
        resp = ResponseApdu.parse(self.conn.transmit(ext.to_bytes()))
        self.scp = scp if resp.sw == SW.OK else None
        return resp.sw

    def put_key(self, current: StaticKeys, new: StaticKeys, replace: int | None = None) -> ResponseApdu:
        put = PutKeyCommand.for_keys(new, current.dek, replace_kvn=current.kvn if replace is None else replace)
        return self.send(CommandApdu(Cla.GP, Ins.PUT_KEY, put.p1, put.p2, put.to_data(), le=256))

    # ISD content management -------------------------------------------------------------------------

    def install(self, aid: bytes, quota: int, reserved: int = 0) -> ResponseApdu:
        params = b"\xc9\x00" + bytes([0xEF, 12, 0xC8, 4]) + quota.to_bytes(4, "big") + bytes([0xD8, 4])
        params += reserved.to_bytes(4, "big")
        data = b"\x00\x00" + bytes([len(aid)]) + aid + b"\x01\x00" + bytes([len(params)]) + params + b"\x00"
        return self.send(CommandApdu(Cla.GP, Ins.INSTALL, 0x0C, 0x00, data, le=256))

    def place_authorization(
        self, isd_keys: StaticKeys, index: int, provider: str, initial: StaticKeys, expires_at: int
    ) -> SW:
        aid = container_aid(index)
        perso = b"\x00\x00" + bytes([len(aid)]) + aid + b"\x00\x00\x00"
        resp = self.send(CommandApdu(Cla.GP, Ins.INSTALL, 0x20, 0x00, perso, le=256))
        if resp.sw != SW.OK:
            return resp.sw
        key_data = PutKeyCommand.for_keys(initial, isd_keys.dek).to_data()
        auth = Authorization(provider, expires_at, key_data).to_bytes()
        return self.send(CommandApdu(Cla.GP, Ins.STORE_DATA, 0x90, 0x00, auth)).sw

    def aid_command(self, ins: int, p1: int, p2: int, aid: bytes, tlv: bool = True) -> SW:
        data = bytes([0x4F, len(aid)]) + aid if tlv else aid
        return self.send(CommandApdu(Cla.GP, ins, p1, p2, data)).sw

    def get_status(self, p1: int = 0x40) -> ResponseApdu:
        return self.send(CommandApdu(Cla.GP, Ins.GET_STATUS, p1, 0x02, b"\x4f\x00", le=256))

    # container objects -------------------------------------------------------------------------------

    def put_object(self, name: bytes, value: bytes, access: Access = Access.PUBLIC) -> SW:
        obj = DataObject(name, access, value).to_bytes()
        return self.send(CommandApdu(Cla.GP, Ins.STORE_DATA, 0x90, 0x00, obj)).sw

    def get_object(self, name: bytes) -> ResponseApdu:
        return self.send(CommandApdu(Cla.GP, Ins.GET_DATA_ODD, 0x00, 0x00, object_name_query(name), le=256))

    def delete_object(self, name: bytes) -> SW:
        return self.send(CommandApdu(Cla.GP, Ins.DELETE, 0x00, 0x00, object_name_query(name))).sw


class Clock:
    """An injectable clock the tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def authorize(
    host: Callable[..., Host], index: int, initial: StaticKeys, expires_at: int, provider: str = "provider-a"
) -> None:
    op = host()
    assert op.select_isd() == 0x9000
    assert op.authenticate(gp_test_keys()) == 0x9000
    assert op.place_authorization(gp_test_keys(), index, provider, initial, expires_at) == 0x9000


def own(
    host: Callable[..., Host], index: int, clock: Clock, provider: str = "provider-a", kvn: int = 0x31
) -> tuple[StaticKeys, Host]:
    """Authorize container ``index`` and take ownership; returns the provider keys and an open session."""
    initial = StaticKeys.generate(0x01)
    authorize(host, index, initial, int(clock()) + 3600, provider)
    prov = host()
    assert prov.select_container(index) == 0x9000
    assert prov.authenticate(initial) == 0x9000
    new = StaticKeys.generate(kvn)
    assert prov.put_key(initial, new).sw == 0x9000
    assert prov.select_container(index) == 0x9000
    assert prov.authenticate(new) == 0x9000
    return new, prov
