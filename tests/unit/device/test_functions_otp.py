"""The OTP and challenge-response functions over a real sealed store: RFC vectors computed by the container,
access rules, and refusals that change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.crypto.ocra import OcraSuite, hash_password
from tenantcard.crypto.otp import HashAlgorithm, hmac_digest
from tenantcard.device.functions.base import Rights
from tenantcard.device.functions.challenge import ChallengeFunction
from tenantcard.device.functions.otp import OtpFunction
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.functions import (
    CalculateRequest,
    CalculateResponse,
    CredentialEntry,
    CredentialKind,
    OathAlgorithm,
    OathCredential,
    OathIns,
    name_data,
)
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access
from tests.support.function_harness import HOLDER, NOBODY, PROVIDER, PROVIDER_MAC_ONLY, FunctionHarness
from tests.support.oath_vectors import (
    HOTP_RFC4226,
    HOTP_SECRET,
    OCRA_PIN,
    OCRA_RFC6287,
    TOTP_RFC6238,
    TOTP_SEEDS,
    OcraVector,
)


@pytest.fixture
def otp(tmp_path: Path) -> FunctionHarness:
    return FunctionHarness(tmp_path, OtpFunction())


@pytest.fixture
def challenge(tmp_path: Path) -> FunctionHarness:
    return FunctionHarness(tmp_path, ChallengeFunction())


def put(h: FunctionHarness, cred: OathCredential, ins: OathIns = OathIns.OTP_PUT, p1: int = 0) -> SW:
    return h.send(PROVIDER, CommandApdu(0x84, ins, p1, 0, cred.to_bytes())).sw


def calc(h: FunctionHarness, request: CalculateRequest, ins: OathIns = OathIns.OTP_CALCULATE, rights=HOLDER):
    r = h.send(rights, CommandApdu(0x80, ins, 0, 0, request.to_bytes()))
    return r.sw, (CalculateResponse.parse(r.data) if r.ok else None)


def test_hotp_rfc4226_vectors_computed_by_the_container(otp: FunctionHarness) -> None:
    assert put(otp, OathCredential(b"bank", CredentialKind.HOTP, HOTP_SECRET)) == SW.OK
    for counter, expected in enumerate(HOTP_RFC4226):
        sw, resp = calc(otp, CalculateRequest(b"bank"))
        assert sw == SW.OK and resp is not None
        assert resp.response.decode() == expected and resp.moving_factor == counter


@pytest.mark.parametrize(("when", "alg", "expected"), TOTP_RFC6238)
def test_totp_rfc6238_vectors_computed_by_the_container(
    otp: FunctionHarness, when: int, alg: str, expected: str
) -> None:
    cred = OathCredential(b"t", CredentialKind.TOTP, TOTP_SEEDS[alg], OathAlgorithm[alg], digits=8)
    assert put(otp, cred) == SW.OK
    otp.clock = float(when)  # the container's own clock
    sw, resp = calc(otp, CalculateRequest(b"t"))
    assert sw == SW.OK and resp is not None and resp.response.decode() == expected
    otp.clock = 0.0  # and a host-supplied time
    sw, resp = calc(otp, CalculateRequest(b"t", time=when))
    assert resp is not None and resp.response.decode() == expected and resp.moving_factor == when // 30


def _ocra_request(v: OcraVector) -> CalculateRequest:
    suite = OcraSuite.parse(v.suite)
    return CalculateRequest(
        b"ocra",
        time=None if v.timestamp is None else v.timestamp * 60,
        challenge=v.question.encode(),
        counter=v.counter,
        password_hash=hash_password(suite, OCRA_PIN) if v.pin else None,
    )


@pytest.mark.parametrize("vector", OCRA_RFC6287, ids=lambda v: f"{v.section}-{v.suite}-{v.question}-{v.counter}")
def test_ocra_rfc6287_vectors_computed_by_the_container(challenge: FunctionHarness, vector: OcraVector) -> None:
    cred = OathCredential(b"ocra", CredentialKind.OCRA, vector.key, suite=vector.suite)
    assert put(challenge, cred, OathIns.CHALLENGE_PUT) == SW.OK
    sw, resp = calc(challenge, _ocra_request(vector), OathIns.CHALLENGE_RESPOND)
    assert sw == SW.OK and resp is not None and resp.response.decode() == vector.response


def test_ocra_counter_kept_by_the_container(challenge: FunctionHarness) -> None:
    vectors = [v for v in OCRA_RFC6287 if v.suite == "OCRA-1:HOTP-SHA512-8:C-QN08"]
    cred = OathCredential(b"ocra", CredentialKind.OCRA, vectors[0].key, suite=vectors[0].suite)
    assert put(challenge, cred, OathIns.CHALLENGE_PUT) == SW.OK
    for v in vectors:  # no counter sent: the container's C (0, 1, 2, ...) is used and advanced
        req = CalculateRequest(b"ocra", challenge=v.question.encode())
        sw, resp = calc(challenge, req, OathIns.CHALLENGE_RESPOND)
        assert sw == SW.OK and resp is not None
        assert resp.response.decode() == v.response and resp.moving_factor == v.counter


@pytest.mark.parametrize("alg", [OathAlgorithm.SHA1, OathAlgorithm.SHA256])
def test_hmac_challenge_response(challenge: FunctionHarness, alg: OathAlgorithm) -> None:
    key = bytes(range(20))
    cred = OathCredential(b"hmac", CredentialKind.HMAC, key, alg, access=Access.HOLDER_OR_PROVIDER)
    assert put(challenge, cred, OathIns.CHALLENGE_PUT) == SW.OK
    for rights in (HOLDER, PROVIDER):
        sw, resp = calc(challenge, CalculateRequest(b"hmac", challenge=b"nonce-1"), OathIns.CHALLENGE_RESPOND, rights)
        assert resp is not None and resp.response == hmac_digest(key, b"nonce-1", HashAlgorithm(alg))
    sw, _ = calc(challenge, CalculateRequest(b"hmac", challenge=b"x"), OathIns.CHALLENGE_RESPOND, NOBODY)
    assert sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_only_the_provider_loads_and_only_encrypted(otp: FunctionHarness) -> None:
    cred = OathCredential(b"bank", CredentialKind.HOTP, HOTP_SECRET)
    for rights in (HOLDER, NOBODY, PROVIDER_MAC_ONLY):
        assert otp.send(rights, CommandApdu(0x84, OathIns.OTP_PUT, 0, 0, cred.to_bytes())).sw == (
            SW.SECURITY_STATUS_NOT_SATISFIED
        )
    assert otp.snapshot() == {}


def test_holder_pin_required_and_refusal_changes_nothing(otp: FunctionHarness) -> None:
    assert put(otp, OathCredential(b"bank", CredentialKind.HOTP, HOTP_SECRET)) == SW.OK
    before = otp.snapshot()
    sw, _ = calc(otp, CalculateRequest(b"bank"), rights=NOBODY)  # PIN not verified
    assert sw == SW.SECURITY_STATUS_NOT_SATISFIED
    sw, _ = calc(otp, CalculateRequest(b"bank"), rights=PROVIDER)  # holder-only credential
    assert sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert otp.snapshot() == before  # counter not advanced
    sw, resp = calc(otp, CalculateRequest(b"bank"))
    assert resp is not None and resp.response.decode() == HOTP_RFC4226[0]


def test_create_replace_delete_list(otp: FunctionHarness) -> None:
    a = OathCredential(b"a", CredentialKind.HOTP, HOTP_SECRET)
    b = OathCredential(b"b", CredentialKind.TOTP, TOTP_SEEDS["SHA256"], OathAlgorithm.SHA256, digits=8, period=60)
    assert put(otp, a) == SW.OK and put(otp, b) == SW.OK
    assert put(otp, a) == SW.ALREADY_EXISTS
    assert put(otp, a, p1=1) == SW.OK
    listing = otp.send(HOLDER, CommandApdu(0x80, OathIns.OTP_LIST, 0, 0))
    entries = CredentialEntry.parse_list(listing.data)
    assert [(e.name, e.kind, e.digits) for e in entries] == [
        (b"a", CredentialKind.HOTP, 6),
        (b"b", CredentialKind.TOTP, 8),
    ]
    assert HOTP_SECRET not in listing.data
    assert otp.send(NOBODY, CommandApdu(0x80, OathIns.OTP_LIST, 0, 0)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert otp.send(HOLDER, CommandApdu(0x80, OathIns.OTP_DELETE, 0, 0, name_data(b"a"))).sw == (
        SW.SECURITY_STATUS_NOT_SATISFIED
    )
    assert otp.send(PROVIDER, CommandApdu(0x84, OathIns.OTP_DELETE, 0, 0, name_data(b"a"))).sw == SW.OK
    assert otp.send(PROVIDER, CommandApdu(0x84, OathIns.OTP_DELETE, 0, 0, name_data(b"a"))).sw == (
        SW.REFERENCED_DATA_NOT_FOUND
    )
    sw, _ = calc(otp, CalculateRequest(b"a"))
    assert sw == SW.REFERENCED_DATA_NOT_FOUND


def test_wrong_kind_per_function(otp: FunctionHarness, challenge: FunctionHarness) -> None:
    hmac_cred = OathCredential(b"h", CredentialKind.HMAC, b"k" * 20)
    assert put(otp, hmac_cred) == SW.INCORRECT_DATA
    assert put(challenge, OathCredential(b"o", CredentialKind.HOTP, b"k" * 20), OathIns.CHALLENGE_PUT) == (
        SW.INCORRECT_DATA
    )
    bad_suite = OathCredential(b"o", CredentialKind.OCRA, b"k" * 20, suite="OCRA-1:HOTP-MD5-6:QN08")
    assert put(challenge, bad_suite, OathIns.CHALLENGE_PUT) == SW.INCORRECT_DATA


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80\x00", b"\x80\x01a\x81\x01\x09\x84\x01k", b"\x81\x01\x01", b"\x80\x01a\x81\x01\x01", b"\xff\xff\xff"],
)
def test_malformed_put_gets_6a80_and_changes_nothing(otp: FunctionHarness, data: bytes) -> None:
    assert otp.send(PROVIDER, CommandApdu(0x84, OathIns.OTP_PUT, 0, 0, data)).sw in (SW.INCORRECT_DATA,)
    assert otp.snapshot() == {}


def test_bad_p1p2_and_inputs(otp: FunctionHarness, challenge: FunctionHarness) -> None:
    cred = OathCredential(b"a", CredentialKind.HOTP, HOTP_SECRET)
    assert put(otp, cred, p1=2) == SW.INCORRECT_P1P2
    assert otp.send(HOLDER, CommandApdu(0x80, OathIns.OTP_CALCULATE, 1, 0, CalculateRequest(b"a").to_bytes())).sw == (
        SW.INCORRECT_P1P2
    )
    assert put(otp, cred) == SW.OK
    sw, _ = calc(otp, CalculateRequest(b"a", time=5))  # HOTP takes no time
    assert sw == SW.INCORRECT_DATA
    ocra_cred = OathCredential(b"o", CredentialKind.OCRA, b"k" * 20, suite="OCRA-1:HOTP-SHA1-6:QN08")
    assert put(challenge, ocra_cred, OathIns.CHALLENGE_PUT) == SW.OK
    for req in (
        CalculateRequest(b"o"),  # no challenge
        CalculateRequest(b"o", challenge=b"abcdefgh"),  # not numeric
        CalculateRequest(b"o", challenge=b"\xff\xfe\xfd\xfc"),  # not ASCII
        CalculateRequest(b"o", challenge=b"12345678", counter=3),  # the suite has no counter
    ):
        sw, _ = calc(challenge, req, OathIns.CHALLENGE_RESPOND)
        assert sw == SW.INCORRECT_DATA


def test_quota_exceeded_changes_nothing(tmp_path: Path) -> None:
    h = FunctionHarness(tmp_path, OtpFunction(), quota=300)
    assert put(h, OathCredential(b"a", CredentialKind.HOTP, HOTP_SECRET)) == SW.OK
    before = h.snapshot()
    assert put(h, OathCredential(b"b" * 64, CredentialKind.HOTP, b"s" * 128)) == SW.NOT_ENOUGH_MEMORY
    assert h.snapshot() == before


def test_credential_repr_hides_the_secret() -> None:
    cred = OathCredential(b"a", CredentialKind.HOTP, b"very-secret-seed")
    assert "very-secret-seed" not in repr(cred)
    assert "7110" not in repr(CalculateRequest(b"o", password_hash=bytes.fromhex("7110eda4")))


@pytest.mark.parametrize("function", [OtpFunction, ChallengeFunction], ids=["otp", "challenge"])
def test_random_commands_get_status_words_never_exceptions(
    function: type, tmp_path_factory: pytest.TempPathFactory
) -> None:
    h = FunctionHarness(tmp_path_factory.mktemp("fuzz"), function())
    instructions = [i for i in range(0x30, 0x40) if h.function.handles(i)]
    valid = OathCredential(b"k", CredentialKind.HOTP, HOTP_SECRET).to_bytes()

    @given(
        st.sampled_from(instructions),
        st.integers(0, 3),
        st.integers(0, 1),
        st.one_of(st.binary(max_size=300), st.builds(lambda cut: valid[:cut], st.integers(0, len(valid)))),
        st.sampled_from([HOLDER, NOBODY, PROVIDER, PROVIDER_MAC_ONLY]),
    )
    def check(ins: int, p1: int, p2: int, data: bytes, rights: Rights) -> None:
        response = h.send(rights, CommandApdu(0x84, ins, p1, p2, data))  # an ApduError becomes its status word
        assert response.sw == SW.OK or not response.data

    check()
