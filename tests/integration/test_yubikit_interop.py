"""Interop with a GlobalPlatform host nobody here wrote: yubikit (PyPI yubikey-manager) drives the device over
its TCP endpoint through a small ``SmartCardConnection`` adapter.

yubikit's SCP03 (``SmartCardProtocol.init_scp`` with ``Scp03KeyParams``) opens the ISD with the well-known GP
test keys of a development device, reads key information and card recognition data with its raw ``get_data``
(GP 2.3.1 §11.3.3.1.1 and §7.4.1.3 answer inside the E0 / 66 templates; yubikit's convenience readers expect a
YubiKey's bare C0 / 73 objects), replaces the key set with its ``put_key`` and opens again with the new keys.
Then the same for a container, after the operator placed an authorization and the provider took it over.

Both APDU formats yubikit speaks are exercised: extended length (its USB setting) and short length with
command chaining (its NFC setting).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from yubikit.core import TRANSPORT, Version
from yubikit.core.smartcard import ApduError, SmartCardConnection, SmartCardProtocol
from yubikit.core.smartcard.scp import KeyRef, Scp03KeyParams, ScpKid
from yubikit.core.smartcard.scp import StaticKeys as YkStaticKeys
from yubikit.securitydomain import SecurityDomainSession

from tenantcard.client.processors import base_chain, check, open_scp03
from tenantcard.crypto.scp03 import PutKeyCommand, StaticKeys, kcv
from tenantcard.device import Device, create_device_store, dev_spec
from tenantcard.device.provision import gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.tcp_client import TcpConnection
from tenantcard.transport.tcp_server import DeviceServerThread
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.gp import ISD_AID, DataTag, Ins, InstallP1, container_aid
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Authorization
from tenantcard.wire.tlv import Tlv, find

OID_SCP03 = bytes.fromhex("2A864886FC6B04")  # GP 2.3.1 Annex H: {globalPlatform 4} secure channel protocol


class TcpSmartCardConnection(SmartCardConnection):
    """yubikit's connection interface over one card session of the device's TCP endpoint."""

    def __init__(self, connection: TcpConnection, transport: TRANSPORT) -> None:
        self._connection = connection
        self._transport = transport

    @property
    def transport(self) -> TRANSPORT:
        return self._transport

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        response = self._connection.transmit(apdu)
        return response[:-2], int.from_bytes(response[-2:], "big")

    def close(self) -> None:
        self._connection.close()


class ContainerDomainSession(SecurityDomainSession):
    """yubikit's security-domain verbs (``authenticate``, ``put_key``, ``get_data``) on a container, which is a
    security domain with its own AID."""

    def __init__(self, connection: SmartCardConnection, aid: bytes) -> None:
        self.protocol = SmartCardProtocol(connection)
        self.protocol.select(aid)
        self.protocol.configure(Version(5, 3, 0))


def yk_keys(keys: StaticKeys) -> YkStaticKeys:
    return YkStaticKeys(keys.enc, keys.mac, keys.dek)


def scp03(keys: StaticKeys) -> Scp03KeyParams:
    return Scp03KeyParams(ref=KeyRef(ScpKid.SCP03, keys.kvn), keys=yk_keys(keys))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DeviceServerThread]:
    path = tmp_path / "device.db"
    vault = FileKeyVault(tmp_path / "vault.key")
    create_device_store(path, dev_spec(2), vault)
    device = Device.open(path, vault)
    thread = DeviceServerThread(device, "127.0.0.1", 0).start()
    try:
        yield thread
    finally:
        thread.stop()
        device.close()


@pytest.fixture(params=[TRANSPORT.USB, TRANSPORT.NFC], ids=["extended", "short"])
def connect(server: DeviceServerThread, request: pytest.FixtureRequest) -> Iterator[object]:
    opened: list[TcpSmartCardConnection] = []

    def open_connection() -> TcpSmartCardConnection:
        conn = TcpSmartCardConnection(TcpConnection(server.host, server.port, timeout=30.0), request.param)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        conn.close()


def key_information(session: SecurityDomainSession) -> dict[int, tuple[int, int, int]]:
    """E0 { C0 { key id, KVN, type, length } ... } (GP 2.3.1 §11.3.3.1.1) -> {key id: (KVN, type, length)}."""
    template = Tlv.parse(session.get_data(DataTag.KEY_INFORMATION))
    assert template.tag == 0xE0
    out = {}
    for entry in template.children():
        assert entry.tag == 0xC0
        out[entry.value[0]] = (entry.value[1], entry.value[2], entry.value[3])
    return out


def place_authorization(session: SecurityDomainSession, isd: StaticKeys, index: int, initial: StaticKeys) -> None:
    """INSTALL [for personalization] + STORE DATA of the authorization (docs/protocol.md), as raw GP commands
    through yubikit's secure channel; the initial keys travel DEK-encrypted (GP 2.3.1 §11.8.2.3)."""
    aid = container_aid(index)
    install = bytes([0, 0, len(aid)]) + aid + bytes([0, 0, 0])
    session.protocol.send_apdu(0x80, Ins.INSTALL, InstallP1.FOR_PERSONALIZATION, 0x00, install)
    key_data = PutKeyCommand.for_keys(initial, isd.dek).to_data()
    auth = Authorization("provider.example", int(time.time()) + 3600, key_data)
    session.protocol.send_apdu(0x80, Ins.STORE_DATA, 0x80, 0x00, auth.to_bytes())


def test_isd_key_information_and_recognition_data(connect) -> None:
    session = SecurityDomainSession(connect())
    session.authenticate(scp03(gp_test_keys()))
    assert key_information(session) == {1: (0x30, 0x88, 16), 2: (0x30, 0x88, 16), 3: (0x30, 0x88, 16)}

    card_data = Tlv.parse(session.get_data(DataTag.CARD_DATA))
    assert card_data.tag == 0x66
    recognition = find(card_data.value, 0x73)
    assert recognition is not None
    scp = find(recognition.value, 0x64)
    assert scp is not None
    assert Tlv.parse(scp.value).value == OID_SCP03 + b"\x03\x70"  # SCP03, i = 70


def test_yubikit_convenience_readers_expect_bare_objects(connect) -> None:
    """The device answers GET DATA E0 / 66 with the templates GP 2.3.1 §11.3.3.1.1 / §7.4.1.3 define (as
    GlobalPlatformPro and pySim read them); yubikit's readers expect a YubiKey's bare C0 / 73 objects."""
    session = SecurityDomainSession(connect())
    session.authenticate(scp03(gp_test_keys()))
    with pytest.raises(ValueError, match="got 0xe0 expected 0xc0"):
        session.get_key_information()
    with pytest.raises(ValueError, match="got 0x66 expected 0x73"):
        session.get_card_recognition_data()
    # The secure channel survives: the answers were good, only their reading differs.
    assert Tlv.parse(session.get_data(DataTag.KEY_INFORMATION)).tag == 0xE0


def test_isd_readable_without_a_secure_channel(connect) -> None:
    session = SecurityDomainSession(connect())
    assert Tlv.parse(session.get_data(DataTag.CARD_DATA)).tag == 0x66
    assert Tlv.parse(session.get_data(DataTag.KEY_INFORMATION)).tag == 0xE0


def test_isd_put_key_then_new_keys_open(connect) -> None:
    old = gp_test_keys()
    new = StaticKeys.generate(0x31, 16)
    session = SecurityDomainSession(connect())
    session.authenticate(scp03(old))
    # yubikit checks the response (new KVN || three KCVs) itself and raises on a mismatch.
    session.put_key(KeyRef(ScpKid.SCP03, new.kvn), yk_keys(new), replace_kvn=old.kvn)
    assert key_information(session)[1] == (0x31, 0x88, 16)  # the same session goes on under the new set

    fresh = SecurityDomainSession(connect())
    fresh.authenticate(scp03(new))
    assert key_information(fresh)[2] == (0x31, 0x88, 16)

    stale = SecurityDomainSession(connect())
    with pytest.raises(ValueError) as err:  # P1 = 30 names a key set that is gone
        stale.authenticate(scp03(old))
    cause = err.value.__context__  # yubikit turns 6A88 into "Incorrect SCP parameters"
    assert isinstance(cause, ApduError) and cause.sw == SW.REFERENCED_DATA_NOT_FOUND
    wrong = SecurityDomainSession(connect())
    with pytest.raises(ValueError):  # yubikit's answer to a card cryptogram that does not verify
        wrong.authenticate(scp03(old.with_kvn(0x31)))


def test_owned_container_over_yubikit(connect) -> None:
    operator = gp_test_keys()
    initial = StaticKeys.generate(0x01, 16)
    provider = StaticKeys.generate(0x02, 16)
    aid = container_aid(0)

    isd = SecurityDomainSession(connect())
    isd.authenticate(scp03(operator))
    place_authorization(isd, operator, 0, initial)

    # The provider: SCP03 with the initial keys, then PUT KEY of its own set (level 33, as yubikit opens).
    container = ContainerDomainSession(connect(), aid)
    container.authenticate(scp03(initial))
    container.put_key(KeyRef(ScpKid.SCP03, provider.kvn), yk_keys(provider), replace_kvn=initial.kvn)

    owned = ContainerDomainSession(connect(), aid)
    owned.authenticate(scp03(provider))
    # Rotation by the owner, with yubikit again: its key information follows.
    rotated = StaticKeys.generate(0x03, 16)
    owned.put_key(KeyRef(ScpKid.SCP03, rotated.kvn), yk_keys(rotated), replace_kvn=provider.kvn)
    reopened = ContainerDomainSession(connect(), aid)
    reopened.authenticate(scp03(rotated))

    # Neither the initial keys nor the operator's (nor the replaced ones) open the container any more: under
    # their own KVN the card knows no such key set (6A88), under the current KVN the card cryptogram fails.
    for keys in (initial, operator, provider):
        for attempt_keys in (keys, keys.with_kvn(rotated.kvn)):
            attempt = ContainerDomainSession(connect(), aid)
            with pytest.raises(ValueError):
                attempt.authenticate(scp03(attempt_keys))


@pytest.mark.parametrize("length", [16, 24, 32])
def test_yubikit_kcv_and_key_data_match_ours(length: int) -> None:
    # yubikit's KCV is AES-CBC(key, zero IV) over 16 x 01, ours AES-ECB of the same block (GP Amd D §7.2).
    from yubikit.securitydomain import _DEFAULT_KCV_IV, _encrypt_cbc

    keys = StaticKeys.generate(0x31, length)
    for key in (keys.enc, keys.mac, keys.dek):
        assert _encrypt_cbc(key, _DEFAULT_KCV_IV)[:3] == kcv(key)


def test_aes256_key_set_yubikit_derives_128_bit_session_keys(connect, server: DeviceServerThread) -> None:
    """Amd D §6.2.1: session keys are as long as the static keys (L = 256 for AES-256). yubikit 5.9 derives
    128-bit session keys whatever the key length (its _derive "only supports aes128"), so it cannot open an
    AES-256 key set on any card that follows Amd D; our host can."""
    strong = StaticKeys.generate(0x32, 32)
    session = SecurityDomainSession(connect())
    session.authenticate(scp03(gp_test_keys()))
    session.put_key(KeyRef(ScpKid.SCP03, strong.kvn), yk_keys(strong), replace_kvn=0x30)
    assert key_information(session)[1] == (0x32, 0x88, 32)

    with pytest.raises(ValueError):  # the card cryptogram does not verify under yubikit's short keys
        SecurityDomainSession(connect()).authenticate(scp03(strong))

    conn = TcpConnection(server.host, server.port, timeout=30.0)
    try:
        chain = base_chain(conn)
        check(chain.send(CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, ISD_AID, le=256)))
        sm = open_scp03(chain, strong, 0x33)
        data = check(sm.send(CommandApdu(0x80, Ins.GET_DATA, 0x00, 0xE0, le=256)))
        assert Tlv.parse(data).children()[0].value == bytes([1, 0x32, 0x88, 32])
    finally:
        conn.close()
