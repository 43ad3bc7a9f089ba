"""The PIV personality as pure card logic over a real sealed store (NIST SP 800-73-4 subset)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.device.functions.base import FunctionContext, Rights
from tenantcard.device.functions.piv import KIND_STATE, STATE_NAME, PivFunction
from tenantcard.device.store import Store
from tenantcard.keyvault import FileKeyVault
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.piv import (
    PIV_AID,
    Algorithm,
    DataTag,
    KeyRef,
    PivIns,
    certificate_object,
    pad_pin,
    tag_bytes,
)
from tenantcard.wire.sw import SW, ApduError
from tenantcard.wire.tlv import Tlv, as_dict, encode_all

PIN = b"123456"
PUK = b"12345678"
PROVIDER = Rights(provider=True, holder=False, security_level=0x33)
HOLDER = Rights(provider=False, holder=False, security_level=0)


class Card:
    """One container's PIV function with one connection's session, each command in its own transaction,
    as the device runs it: an exception rolls the command back, a returned response commits it."""

    def __init__(self, store: Store, index: int) -> None:
        self.store = store
        self.index = index
        self.function = PivFunction()
        self.session: dict[str, object] = {}

    def new_connection(self) -> Card:
        return Card(self.store, self.index)

    def run(self, command: CommandApdu, rights: Rights = HOLDER) -> ResponseApdu:
        ctx = FunctionContext(self.index, rights, self.store.objects(self.index), os.urandom, lambda: 0.0, self.session)
        try:
            with self.store.transaction():
                return self.function.process(ctx, command)
        except ApduError as exc:  # rolled back, as the card OS does
            return ResponseApdu.of(exc.sw)

    def manage(self, ins: int, data: bytes = b"", p2: int = 0, rights: Rights = PROVIDER) -> ResponseApdu:
        return self.run(CommandApdu(0x80, ins, 0, p2, data, le=256 if ins != PivIns.SETUP else None), rights)

    def holder(self, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> ResponseApdu:
        return self.run(CommandApdu(0x00, ins, p1, p2, data, le))

    def get_data(self, tag: int) -> ResponseApdu:
        return self.run(CommandApdu(0x00, PivIns.GET_DATA, 0x3F, 0xFF, Tlv(0x5C, tag_bytes(tag)).to_bytes(), 256))

    def select(self) -> ResponseApdu:
        return self.holder(PivIns.SELECT, 0x04, 0x00, PIV_AID, 256)

    def verify(self, pin: bytes | None) -> ResponseApdu:
        return self.holder(PivIns.VERIFY, 0, KeyRef.PIN, pad_pin(pin) if pin is not None else b"")

    def sign(self, slot: KeyRef, digest: bytes) -> ResponseApdu:
        template = Tlv.of(0x7C, Tlv(0x82, b""), Tlv(0x81, digest)).to_bytes()
        return self.run(CommandApdu(0x00, PivIns.GENERAL_AUTHENTICATE, Algorithm.ECC_P256, slot, template, 256))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.create(tmp_path / "device.db", FileKeyVault(tmp_path / "vault.key"), bytes(range(10)))
    with store.transaction():
        for index in (1, 2):
            store.add_container(index, 64 * 1024, 0)
            store.authorize_container(index, f"provider-{index}", 2**40)
    yield store
    store.close()


@pytest.fixture
def card(store: Store) -> Card:
    return Card(store, 1)


def setup_piv(card: Card, **extra: bytes) -> None:
    fields = [Tlv(0x80, PIN), Tlv(0x81, PUK), *(Tlv(int(k[1:], 16), v) for k, v in extra.items())]
    assert card.manage(PivIns.SETUP, encode_all(fields)).sw == SW.OK


def generate(card: Card, slot: KeyRef) -> ec.EllipticCurvePublicKey:
    r = card.manage(PivIns.GENERATE_KEY, Tlv(0x80, bytes([Algorithm.ECC_P256])).to_bytes(), p2=slot)
    assert r.sw == SW.OK
    point = as_dict(Tlv.parse(r.data).value)[0x86]
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def certificate_for(public_key: ec.EllipticCurvePublicKey, name: str = "holder", padding: int = 0) -> x509.Certificate:
    ca = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provider CA")]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    if padding:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("a" * 60 + f"{i}.example") for i in range(padding)]), False
        )
    return builder.sign(ca, hashes.SHA256())


def load_certificate(card: Card, slot: KeyRef, cert: x509.Certificate) -> ResponseApdu:
    tag = {
        KeyRef.AUTHENTICATION: DataTag.CERT_9A,
        KeyRef.SIGNATURE: DataTag.CERT_9C,
        KeyRef.KEY_MANAGEMENT: DataTag.CERT_9D,
        KeyRef.CARD_AUTHENTICATION: DataTag.CERT_9E,
    }[slot]
    obj = certificate_object(cert.public_bytes(serialization.Encoding.DER))
    return card.manage(PivIns.PUT_OBJECT, Tlv(0x5C, tag_bytes(tag)).to_bytes() + Tlv(0x53, obj).to_bytes())


def test_not_set_up_piv_is_not_selectable(card: Card) -> None:
    assert card.select().sw == SW.NOT_FOUND
    assert card.verify(PIN).sw == SW.CONDITIONS_NOT_SATISFIED
    assert card.manage(PivIns.STATUS).data == Tlv(0x80, b"\x00").to_bytes()


def test_management_needs_the_provider_channel(card: Card) -> None:
    data = encode_all([Tlv(0x80, PIN), Tlv(0x81, PUK)])
    assert card.manage(PivIns.SETUP, data, rights=HOLDER).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    holder_with_pin = Rights(provider=False, holder=True, security_level=0)
    assert card.manage(PivIns.SETUP, data, rights=holder_with_pin).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    # PIN and PUK must travel encrypted: a C-MAC-only channel is refused.
    mac_only = Rights(provider=True, holder=False, security_level=0x01)
    assert card.manage(PivIns.SETUP, data, rights=mac_only).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert card.manage(PivIns.SETUP, data).sw == SW.OK
    assert card.manage(PivIns.GENERATE_KEY, b"\x80\x01\x11", p2=0x9A, rights=HOLDER).sw == 0x6982
    # The holder cannot manage the card with PIV's own commands either (no 9B management key here).
    assert card.holder(PivIns.GENERATE_ASYMMETRIC_KEY_PAIR, 0, 0x9A, b"\xac\x03\x80\x01\x11").sw == 0x6982
    assert card.holder(PivIns.PUT_DATA, 0x3F, 0xFF, b"\x5c\x03\x5f\xc1\x02\x53\x00").sw == 0x6982


def test_holder_reads_the_objects_and_signs_with_the_loaded_key(card: Card) -> None:
    guid = bytes(range(16))
    setup_piv(card, x84=guid)
    public = generate(card, KeyRef.AUTHENTICATION)
    cert = certificate_for(public)
    assert load_certificate(card, KeyRef.AUTHENTICATION, cert).sw == SW.OK

    selected = card.select()
    assert selected.sw == SW.OK
    template = as_dict(Tlv.parse(selected.data).value)
    assert template[0x4F] == PIV_AID[5:]

    chuid = card.get_data(DataTag.CHUID)
    assert chuid.sw == SW.OK
    assert as_dict(Tlv.parse(chuid.data).value)[0x34] == guid
    ccc = card.get_data(DataTag.CARD_CAPABILITY_CONTAINER)
    assert ccc.sw == SW.OK and Tlv.parse(ccc.data).tag == 0x53
    discovery = card.get_data(DataTag.DISCOVERY)
    assert discovery.sw == SW.OK
    assert as_dict(Tlv.parse(discovery.data).value)[0x4F] == PIV_AID
    got = card.get_data(DataTag.CERT_9A)
    assert got.sw == SW.OK
    der = as_dict(Tlv.parse(got.data).value)[0x70]
    assert x509.load_der_x509_certificate(der) == cert
    assert card.get_data(DataTag.CERT_9C).sw == SW.NOT_FOUND

    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"message")
    value = digest.finalize()
    assert card.sign(KeyRef.AUTHENTICATION, value).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert card.verify(None).sw == SW.retries(3)
    assert card.verify(PIN).sw == SW.OK
    assert card.verify(None).sw == SW.OK
    signed = card.sign(KeyRef.AUTHENTICATION, value)
    assert signed.sw == SW.OK
    signature = as_dict(Tlv.parse(signed.data).value)[0x82]
    from cryptography.hazmat.primitives.asymmetric import utils

    cert_key = cert.public_key()
    assert isinstance(cert_key, ec.EllipticCurvePublicKey)
    cert_key.verify(signature, value, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    # A new connection starts without the PIN verified; VERIFY P1=FF forgets it on this one.
    assert card.new_connection().sign(KeyRef.AUTHENTICATION, value).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert card.holder(PivIns.VERIFY, 0xFF, KeyRef.PIN).sw == SW.OK
    assert card.sign(KeyRef.AUTHENTICATION, value).sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_wrong_pin_counts_down_persistently_and_puk_unblocks(card: Card) -> None:
    setup_piv(card)
    assert card.verify(b"000000").sw == SW.retries(2)
    assert card.new_connection().verify(None).sw == SW.retries(2)  # the counter is stored, not per session
    assert card.verify(PIN).sw == SW.OK  # success resets the counter
    assert card.verify(None).sw == SW.OK
    for left in (2, 1):
        assert card.verify(b"654321").sw == SW.retries(left)
    assert card.verify(b"654321").sw == SW.AUTH_METHOD_BLOCKED
    assert card.verify(PIN).sw == SW.AUTH_METHOD_BLOCKED  # blocked even for the right PIN
    assert card.verify(None).sw == SW.AUTH_METHOD_BLOCKED

    wrong_puk = b"87654321"
    rrc = PivIns.RESET_RETRY_COUNTER
    assert card.holder(rrc, 0, KeyRef.PIN, wrong_puk + pad_pin(b"222222")).sw == SW.retries(2)
    assert card.holder(rrc, 0, KeyRef.PIN, PUK + pad_pin(b"222222")).sw == SW.OK
    assert card.verify(PIN).sw == SW.retries(2)
    assert card.verify(b"222222").sw == SW.OK
    status = as_dict(card.manage(PivIns.STATUS).data)
    assert (status[0x81], status[0x82]) == (b"\x03", b"\x03")


def test_change_reference_data(card: Card) -> None:
    setup_piv(card)
    crd = PivIns.CHANGE_REFERENCE_DATA
    assert card.holder(crd, 0, KeyRef.PIN, pad_pin(b"999999") + pad_pin(b"24681357")).sw == SW.retries(2)
    assert card.holder(crd, 0, KeyRef.PIN, pad_pin(PIN) + pad_pin(b"24681357")).sw == SW.OK
    assert card.verify(PIN).sw == SW.retries(2)
    assert card.verify(b"24681357").sw == SW.OK
    assert card.holder(crd, 0, KeyRef.PIN, pad_pin(b"24681357") + pad_pin(b"12ab56")).sw == SW.INCORRECT_DATA
    assert card.holder(crd, 0, KeyRef.PUK, PUK + b"ABCDEFGH").sw == SW.OK
    assert card.holder(PivIns.RESET_RETRY_COUNTER, 0, KeyRef.PIN, PUK + pad_pin(PIN)).sw == SW.retries(2)
    assert card.holder(PivIns.RESET_RETRY_COUNTER, 0, KeyRef.PIN, b"ABCDEFGH" + pad_pin(PIN)).sw == SW.OK


def test_pin_policies_of_the_slots(card: Card) -> None:
    setup_piv(card)
    value = bytes(range(32))
    for slot in (KeyRef.SIGNATURE, KeyRef.CARD_AUTHENTICATION, KeyRef.KEY_MANAGEMENT):
        generate(card, slot)
    # 9E: card authentication, no PIN (SP 800-73-4 Part 1 §3.2.4).
    assert card.sign(KeyRef.CARD_AUTHENTICATION, value).sw == SW.OK
    # 9C: the PIN right before each signature.
    assert card.sign(KeyRef.SIGNATURE, value).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert card.verify(PIN).sw == SW.OK
    assert card.sign(KeyRef.SIGNATURE, value).sw == SW.OK
    assert card.sign(KeyRef.SIGNATURE, value).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    # 9D: key agreement (tag 85) gives the ECDH secret.
    peer = ec.generate_private_key(ec.SECP256R1())
    point = peer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    template = Tlv.of(0x7C, Tlv(0x82, b""), Tlv(0x85, point)).to_bytes()
    r = card.run(CommandApdu(0x00, PivIns.GENERAL_AUTHENTICATE, Algorithm.ECC_P256, KeyRef.KEY_MANAGEMENT, template))
    assert r.sw == SW.OK
    status = as_dict(card.manage(PivIns.STATUS).data)
    assert status[0x83] == bytes([0x9C, 0x9D, 0x9E])
    # The wrong algorithm for the key, an empty slot, a non-key slot.
    assert card.run(CommandApdu(0x00, 0x87, 0x14, 0x9E, template)).sw == SW.INCORRECT_P1P2
    assert card.sign(KeyRef.AUTHENTICATION, value).sw == SW.NOT_FOUND
    assert card.sign(KeyRef.MANAGEMENT, value).sw == SW.INCORRECT_P1P2


def test_certificate_must_match_the_slot_key(card: Card) -> None:
    setup_piv(card)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert load_certificate(card, KeyRef.AUTHENTICATION, certificate_for(other)).sw == SW.CONDITIONS_NOT_SATISFIED
    generate(card, KeyRef.AUTHENTICATION)
    assert load_certificate(card, KeyRef.AUTHENTICATION, certificate_for(other)).sw == SW.INCORRECT_DATA
    assert card.get_data(DataTag.CERT_9A).sw == SW.NOT_FOUND


def test_long_certificates_are_stored_and_read_whole(card: Card) -> None:
    setup_piv(card)
    public = generate(card, KeyRef.AUTHENTICATION)
    cert = certificate_for(public, padding=12)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert len(der) > 700
    assert load_certificate(card, KeyRef.AUTHENTICATION, cert).sw == SW.OK
    whole = card.get_data(DataTag.CERT_9A)
    assert as_dict(Tlv.parse(whole.data).value)[0x70] == der
    # Emptying the object deletes it.
    empty = Tlv(0x5C, tag_bytes(DataTag.CERT_9A)).to_bytes() + Tlv(0x53, b"").to_bytes()
    assert card.manage(PivIns.PUT_OBJECT, empty).sw == SW.OK
    assert card.get_data(DataTag.CERT_9A).sw == SW.NOT_FOUND


def test_pin_and_puk_are_not_stored_in_clear(card: Card, store: Store) -> None:
    setup_piv(card)
    raw = store.objects(1).get(KIND_STATE, STATE_NAME)
    assert raw is not None
    assert PIN not in raw and PUK not in raw
    status = card.manage(PivIns.STATUS).data
    assert PIN not in status and PUK not in status


def test_containers_keep_their_piv_apart(store: Store) -> None:
    one, two = Card(store, 1), Card(store, 2)
    setup_piv(one)
    generate(one, KeyRef.AUTHENTICATION)
    assert two.select().sw == SW.NOT_FOUND
    setup_piv(two)
    assert two.get_data(DataTag.CHUID).data != one.get_data(DataTag.CHUID).data  # distinct GUIDs
    assert two.sign(KeyRef.AUTHENTICATION, bytes(32)).sw == SW.NOT_FOUND


def test_remove_and_delete_key(card: Card) -> None:
    setup_piv(card)
    generate(card, KeyRef.AUTHENTICATION)
    assert card.manage(PivIns.DELETE_KEY, p2=0x9A).sw == SW.OK
    assert card.manage(PivIns.DELETE_KEY, p2=0x9A).sw == SW.REFERENCED_DATA_NOT_FOUND
    assert card.manage(PivIns.REMOVE).sw == SW.OK
    assert card.select().sw == SW.NOT_FOUND
    assert card.store.objects(1).used_bytes() == 0


@given(
    cla=st.sampled_from([0x00, 0x10, 0x80, 0x84, 0x0C, 0x40]),
    ins=st.sampled_from(
        [0x20, 0x24, 0x2C, 0x47, 0x87, 0xA4, 0xC0, 0xCB, 0xDB, 0x56, 0x57, 0x58, 0x5A, 0x5B, 0x5F, 0x99]
    ),
    p1=st.sampled_from([0x00, 0x04, 0x3F, 0x11, 0x14, 0xFF]),
    p2=st.sampled_from([0x00, 0x80, 0x81, 0x9A, 0x9C, 0x9D, 0x9E, 0xFF]),
    data=st.binary(max_size=80),
)
def test_malformed_commands_get_a_status_word(
    tmp_path_factory: pytest.TempPathFactory, cla: int, ins: int, p1: int, p2: int, data: bytes
) -> None:
    card = _fuzz_card(tmp_path_factory)
    before = card.store.objects(1).get(KIND_STATE, STATE_NAME)
    r = card.run(CommandApdu(cla, ins, p1, p2, data), rights=PROVIDER if cla & 0x80 else HOLDER)
    assert isinstance(r.sw, SW)
    if r.sw.sw1 in (0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6D, 0x6E):
        assert card.store.objects(1).get(KIND_STATE, STATE_NAME) == before


_FUZZ: dict[str, Card] = {}


def _fuzz_card(factory: pytest.TempPathFactory) -> Card:
    if "card" not in _FUZZ:
        directory = factory.mktemp("piv-fuzz")
        store = Store.create(directory / "d.db", FileKeyVault(directory / "v.key"), bytes(10))
        with store.transaction():
            store.add_container(1, 64 * 1024, 0)
            store.authorize_container(1, "p", 2**40)
        card = Card(store, 1)
        setup_piv(card)
        generate(card, KeyRef.AUTHENTICATION)
        _FUZZ["card"] = card
    return _FUZZ["card"]
