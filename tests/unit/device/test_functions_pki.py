"""The PKI function over a real sealed store: keys generated inside, signatures that verify with pyca,
certificates bound to the slot's key, access rules, refusals that change nothing."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.device.functions.base import Rights
from tenantcard.device.functions.pki import KEY_KIND, PkiFunction
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.functions import GenerateKeyRequest, KeyAlgorithm, KeyEntry, PkiIns
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access
from tests.support.function_harness import HOLDER, NOBODY, PROVIDER, FunctionHarness


@pytest.fixture
def pki(tmp_path: Path) -> FunctionHarness:
    return FunctionHarness(tmp_path, PkiFunction())


def generate(h: FunctionHarness, slot: int, alg: KeyAlgorithm, access: Access = Access.HOLDER_OR_PROVIDER, p1: int = 0):
    return h.send(PROVIDER, CommandApdu(0x84, PkiIns.GENERATE, p1, slot, GenerateKeyRequest(alg, access).to_bytes()))


def self_signed(public: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> x509.Certificate:
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenantcard test")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(issuer_key, hashes.SHA256())
    )


def test_p256_key_generated_inside_signs_verifiably(pki: FunctionHarness) -> None:
    r = generate(pki, 1, KeyAlgorithm.EC_P256)
    assert r.ok
    public = serialization.load_der_public_key(r.data)
    assert isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1)
    for rights in (HOLDER, PROVIDER):
        sig = pki.send(rights, CommandApdu(0x80, PkiIns.SIGN, 0, 1, b"message to sign"))
        assert sig.ok
        public.verify(sig.data, b"message to sign", ec.ECDSA(hashes.SHA256()))
    digest = hashlib.sha256(b"prehashed").digest()
    sig = pki.send(HOLDER, CommandApdu(0x80, PkiIns.SIGN, 1, 1, digest))
    public.verify(sig.data, b"prehashed", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(sig.data, b"other", ec.ECDSA(hashes.SHA256()))
    # The record holds the private value, but no command returns it.
    sealed = pki.store.objects(1).get(KEY_KIND, b"\x01")
    assert sealed is not None
    for ins in (PkiIns.PUBLIC_KEY, PkiIns.LIST):
        out = pki.send(PROVIDER, CommandApdu(0x84, ins, 0, 1 if ins == PkiIns.PUBLIC_KEY else 0)).data
        assert sealed[-32:] not in out


def test_ed25519_key_signs_messages_only(pki: FunctionHarness) -> None:
    r = generate(pki, 2, KeyAlgorithm.ED25519, Access.HOLDER)
    public = serialization.load_der_public_key(r.data)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    sig = pki.send(HOLDER, CommandApdu(0x80, PkiIns.SIGN, 0, 2, b"hello"))
    public.verify(sig.data, b"hello")
    assert pki.send(HOLDER, CommandApdu(0x80, PkiIns.SIGN, 1, 2, bytes(32))).sw == SW.INCORRECT_P1P2
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.SIGN, 0, 2, b"hello")).sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_generation_uses_the_containers_randomness(tmp_path: Path) -> None:
    fixed = FunctionHarness(tmp_path, PkiFunction(), random=lambda n: bytes([0x42]) * n)
    a = generate(fixed, 1, KeyAlgorithm.ED25519).data
    b = generate(fixed, 2, KeyAlgorithm.ED25519).data
    assert (
        a
        == b
        == ed25519.Ed25519PrivateKey.from_private_bytes(b"\x42" * 32)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def test_access_rules(pki: FunctionHarness) -> None:
    assert generate(pki, 3, KeyAlgorithm.EC_P256, Access.PROVIDER).ok
    assert pki.send(HOLDER, CommandApdu(0x80, PkiIns.SIGN, 0, 3, b"x")).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert pki.send(NOBODY, CommandApdu(0x80, PkiIns.SIGN, 0, 3, b"x")).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.SIGN, 0, 3, b"x")).ok
    assert pki.send(NOBODY, CommandApdu(0x80, PkiIns.PUBLIC_KEY, 0, 3)).ok  # public keys are public
    before = pki.snapshot()
    req = GenerateKeyRequest(KeyAlgorithm.EC_P256).to_bytes()
    assert pki.send(HOLDER, CommandApdu(0x80, PkiIns.GENERATE, 1, 3, req)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert pki.send(HOLDER, CommandApdu(0x80, PkiIns.DELETE, 0, 3)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert pki.snapshot() == before


def test_certificate_must_match_the_slot_key(pki: FunctionHarness) -> None:
    public = serialization.load_der_public_key(generate(pki, 1, KeyAlgorithm.EC_P256).data)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert pki.send(NOBODY, CommandApdu(0x80, PkiIns.GET_CERTIFICATE, 0, 1)).sw == SW.REFERENCED_DATA_NOT_FOUND
    other = self_signed(ec.generate_private_key(ec.SECP256R1()).public_key()).public_bytes(serialization.Encoding.DER)
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.PUT_CERTIFICATE, 0, 1, other)).sw == SW.INCORRECT_DATA
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.PUT_CERTIFICATE, 0, 1, b"\x30\x03junk")).sw == SW.INCORRECT_DATA
    der = self_signed(public).public_bytes(serialization.Encoding.DER)
    assert pki.send(HOLDER, CommandApdu(0x80, PkiIns.PUT_CERTIFICATE, 0, 1, der)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.PUT_CERTIFICATE, 0, 1, der)).ok
    assert pki.send(NOBODY, CommandApdu(0x80, PkiIns.GET_CERTIFICATE, 0, 1)).data == der
    entries = KeyEntry.parse_list(pki.send(NOBODY, CommandApdu(0x80, PkiIns.LIST, 0, 0)).data)
    assert entries == [KeyEntry(1, KeyAlgorithm.EC_P256, Access.HOLDER_OR_PROVIDER, True)]
    # Replacing the key drops the certificate that no longer applies.
    assert generate(pki, 1, KeyAlgorithm.EC_P256, p1=1).ok
    assert pki.send(NOBODY, CommandApdu(0x80, PkiIns.GET_CERTIFICATE, 0, 1)).sw == SW.REFERENCED_DATA_NOT_FOUND


def test_slots_create_replace_delete(pki: FunctionHarness) -> None:
    first = generate(pki, 5, KeyAlgorithm.EC_P256).data
    assert generate(pki, 5, KeyAlgorithm.EC_P256).sw == SW.ALREADY_EXISTS
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.PUBLIC_KEY, 0, 5)).data == first
    second = generate(pki, 5, KeyAlgorithm.ED25519, p1=1).data
    assert second != first
    sig_before = pki.send(PROVIDER, CommandApdu(0x84, PkiIns.SIGN, 0, 5, b"m"))
    assert sig_before.ok and len(sig_before.data) == 64  # the per-connection cache did not keep the old key
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.DELETE, 0, 5)).ok
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.DELETE, 0, 5)).sw == SW.REFERENCED_DATA_NOT_FOUND
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.SIGN, 0, 5, b"m")).sw == SW.REFERENCED_DATA_NOT_FOUND


@pytest.mark.parametrize(
    ("command", "sw"),
    [
        (CommandApdu(0x84, PkiIns.GENERATE, 0, 0, b"\x82\x01\x01"), SW.INCORRECT_P1P2),  # slot 0
        (CommandApdu(0x84, PkiIns.GENERATE, 0, 0x80, b"\x82\x01\x01"), SW.INCORRECT_P1P2),  # slot > 7F
        (CommandApdu(0x84, PkiIns.GENERATE, 2, 1, b"\x82\x01\x01"), SW.INCORRECT_P1P2),
        (CommandApdu(0x84, PkiIns.GENERATE, 0, 1, b"\x82\x01\x09"), SW.INCORRECT_DATA),  # unknown algorithm
        (CommandApdu(0x84, PkiIns.GENERATE, 0, 1, b"\x82\x02\x01"), SW.INCORRECT_DATA),
        (CommandApdu(0x84, PkiIns.GENERATE, 0, 1, b"\x88\x01\x07\x82\x01\x01"), SW.INCORRECT_DATA),
        (CommandApdu(0x84, PkiIns.GENERATE, 0, 1, b"\x82\x05\x01"), SW.INCORRECT_DATA),  # truncated TLV
        (CommandApdu(0x84, PkiIns.SIGN, 0, 1, b"x"), SW.REFERENCED_DATA_NOT_FOUND),
        (CommandApdu(0x84, PkiIns.PUBLIC_KEY, 1, 1), SW.INCORRECT_P1P2),
        (CommandApdu(0x84, PkiIns.LIST, 0, 1), SW.INCORRECT_P1P2),
        (CommandApdu(0x84, 0x4F, 0, 1), SW.INS_NOT_SUPPORTED),
    ],
)
def test_bad_commands_get_defined_status_words(pki: FunctionHarness, command: CommandApdu, sw: SW) -> None:
    if command.ins != 0x4F:
        assert pki.send(PROVIDER, command).sw == sw
    else:
        assert not pki.function.handles(command.ins)
    assert pki.snapshot() == {}


def test_digest_mode_needs_32_bytes(pki: FunctionHarness) -> None:
    assert generate(pki, 1, KeyAlgorithm.EC_P256).ok
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.SIGN, 1, 1, b"short")).sw == SW.WRONG_LENGTH
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.SIGN, 2, 1, b"x")).sw == SW.INCORRECT_P1P2


def test_quota_exceeded(tmp_path: Path) -> None:
    h = FunctionHarness(tmp_path, PkiFunction(), quota=120)
    assert generate(h, 1, KeyAlgorithm.EC_P256).ok
    before = h.snapshot()
    assert generate(h, 2, KeyAlgorithm.EC_P256).sw == SW.NOT_ENOUGH_MEMORY
    assert h.snapshot() == before


def test_random_commands_get_status_words_never_exceptions(tmp_path_factory: pytest.TempPathFactory) -> None:
    h = FunctionHarness(tmp_path_factory.mktemp("fuzz"), PkiFunction())
    assert generate(h, 1, KeyAlgorithm.EC_P256).ok

    @given(
        st.integers(0x40, 0x46),
        st.integers(0, 2),
        st.integers(0, 0x81),
        st.binary(max_size=300),
        st.sampled_from([HOLDER, NOBODY, PROVIDER]),
    )
    def check(ins: int, p1: int, p2: int, data: bytes, rights: Rights) -> None:
        response = h.send(rights, CommandApdu(0x84, ins, p1, p2, data))  # an ApduError becomes its status word
        assert response.sw == SW.OK or not response.data

    check()


def test_loaded_keys_follow_replacement_deletion_and_revocation(pki: FunctionHarness) -> None:
    first = serialization.load_der_public_key(generate(pki, 1, KeyAlgorithm.EC_P256).data)
    assert isinstance(first, ec.EllipticCurvePublicKey)
    first.verify(pki.send(HOLDER, CommandApdu(0x80, PkiIns.SIGN, 0, 1, b"m")).data, b"m", ec.ECDSA(hashes.SHA256()))
    second = serialization.load_der_public_key(generate(pki, 1, KeyAlgorithm.EC_P256, p1=1).data)
    assert isinstance(second, ec.EllipticCurvePublicKey)
    second.verify(pki.send(HOLDER, CommandApdu(0x80, PkiIns.SIGN, 0, 1, b"m")).data, b"m", ec.ECDSA(hashes.SHA256()))
    assert pki.send(PROVIDER, CommandApdu(0x84, PkiIns.DELETE, 0, 1)).ok
    assert pki.send(HOLDER, CommandApdu(0x80, PkiIns.SIGN, 0, 1, b"m")).sw == SW.REFERENCED_DATA_NOT_FOUND
    # Revocation (as the issuer security domain does it): destroy, wipe; the next owner finds an empty slot.
    assert generate(pki, 2, KeyAlgorithm.ED25519).ok
    assert pki.send(HOLDER, CommandApdu(0x80, PkiIns.SIGN, 0, 2, b"m")).ok
    with pki.store.transaction():
        pki.function.destroy(pki.context(NOBODY))
        pki.store.wipe_container(1)
        pki.store.authorize_container(1, "next-provider", 2**40)
    assert pki.send(HOLDER, CommandApdu(0x80, PkiIns.SIGN, 0, 2, b"m")).sw == SW.REFERENCED_DATA_NOT_FOUND
