"""HOTP, TOTP and OCRA against their RFCs' published vectors, and the verifiers' window and resynchronisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.crypto.ocra import (
    OcraError,
    OcraInput,
    OcraSuite,
    QuestionFormat,
    hash_password,
    ocra,
    verify_ocra,
)
from tenantcard.crypto.otp import (
    HashAlgorithm,
    HotpVerifier,
    OtpError,
    TotpVerifier,
    hotp,
    time_step,
    totp,
)
from tests.support.oath_vectors import (
    HOTP_RFC4226,
    HOTP_SECRET,
    OCRA_PIN,
    OCRA_PIN_SHA1,
    OCRA_RFC6287,
    TOTP_RFC6238,
    TOTP_SEEDS,
    OcraVector,
)


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(HOTP_RFC4226)))
def test_hotp_rfc4226_appendix_d(counter: int, expected: str) -> None:
    assert hotp(HOTP_SECRET, counter) == expected


@pytest.mark.parametrize(("when", "alg", "expected"), TOTP_RFC6238)
def test_totp_rfc6238_appendix_b(when: int, alg: str, expected: str) -> None:
    assert totp(TOTP_SEEDS[alg], when, digits=8, algorithm=HashAlgorithm.from_name(alg)) == expected


@pytest.mark.parametrize("vector", OCRA_RFC6287, ids=lambda v: f"{v.section}-{v.suite}-{v.question}-{v.counter}")
def test_ocra_rfc6287_appendix_c(vector: OcraVector) -> None:
    suite = OcraSuite.parse(vector.suite)
    password = hash_password(suite, OCRA_PIN) if vector.pin else None
    values = OcraInput(vector.question, vector.counter, password, None, vector.timestamp)
    assert ocra(suite, vector.key, values) == vector.response


def test_ocra_pin_hash_matches_appendix_c() -> None:
    assert hash_password(OcraSuite.parse("OCRA-1:HOTP-SHA1-6:QN08-PSHA1"), OCRA_PIN) == OCRA_PIN_SHA1


def test_ocra_suite_parsing() -> None:
    s = OcraSuite.parse("OCRA-1:HOTP-SHA512-8:C-QH40-PSHA256-S128-T48H")
    assert s.algorithm == HashAlgorithm.SHA512
    assert s.digits == 8 and s.counter and s.question_format == QuestionFormat.HEX and s.question_length == 40
    assert s.password == HashAlgorithm.SHA256 and s.session_length == 128 and s.time_step == 48 * 3600
    assert OcraSuite.parse("OCRA-1:HOTP-SHA1-0:QA10").digits == 0


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "OCRA-2:HOTP-SHA1-6:QN08",
        "OCRA-1:HOTP-MD5-6:QN08",
        "OCRA-1:HOTP-SHA1-3:QN08",
        "OCRA-1:HOTP-SHA1-11:QN08",
        "OCRA-1:HOTP-SHA1-6:QN03",
        "OCRA-1:HOTP-SHA1-6:QN65",
        "OCRA-1:HOTP-SHA1-6:QX08",
        "OCRA-1:HOTP-SHA1-6:QN08-T0M",
        "OCRA-1:HOTP-SHA1-6:QN08-T60S",
        "OCRA-1:HOTP-SHA1-6:QN08-S000",
        "OCRA-1:HOTP-SHA1-6:QN08-PMD5",
        "OCRA-1:HOTP-SHA1-6:QN08:extra",
    ],
)
def test_ocra_rejects_malformed_suites(bad: str) -> None:
    with pytest.raises(OcraError):
        OcraSuite.parse(bad)


def test_ocra_inputs_must_fit_the_suite() -> None:
    key = b"k" * 20
    with pytest.raises(OcraError):  # counter missing
        ocra("OCRA-1:HOTP-SHA1-6:C-QN08", key, OcraInput("12345678"))
    with pytest.raises(OcraError):  # counter not in suite
        ocra("OCRA-1:HOTP-SHA1-6:QN08", key, OcraInput("12345678", counter=1))
    with pytest.raises(OcraError):  # non-numeric challenge for QN
        ocra("OCRA-1:HOTP-SHA1-6:QN08", key, OcraInput("1234abcd"))
    with pytest.raises(OcraError):  # challenge longer than the suite allows
        ocra("OCRA-1:HOTP-SHA1-6:QN04", key, OcraInput("123456789"))
    with pytest.raises(OcraError):  # password hash of the wrong length
        ocra("OCRA-1:HOTP-SHA1-6:QN08-PSHA1", key, OcraInput("12345678", password=b"x"))
    with pytest.raises(OcraError):  # timestamp missing
        ocra("OCRA-1:HOTP-SHA1-6:QN08-T1M", key, OcraInput("12345678"))
    with pytest.raises(OcraError):  # session information longer than S064
        ocra("OCRA-1:HOTP-SHA1-6:QN08-S064", key, OcraInput("12345678", session=b"s" * 65))


def test_ocra_session_information_and_no_truncation() -> None:
    key = b"k" * 20
    with_s = ocra("OCRA-1:HOTP-SHA1-6:QN08-S064", key, OcraInput("12345678", session=b"abc"))
    assert len(with_s) == 6 and with_s.isdigit()
    full = ocra("OCRA-1:HOTP-SHA1-0:QN08", key, OcraInput("12345678"))
    assert len(full) == 40 and int(full, 16) >= 0


def test_ocra_time_steps() -> None:
    suite = OcraSuite.parse("OCRA-1:HOTP-SHA512-8:QN08-T1M")
    assert suite.time_steps(1206446790) == 0x132D0B6  # RFC 6287 Appendix C, "Mar 25 2008, 12:06:30 GMT"


def test_verify_ocra_with_counter_and_time_windows() -> None:
    key = b"k" * 32
    counter_suite = "OCRA-1:HOTP-SHA256-8:C-QN08"
    response = ocra(counter_suite, key, OcraInput("12345678", counter=7))
    assert verify_ocra(counter_suite, key, OcraInput("12345678", counter=5), response) is None
    matched = verify_ocra(counter_suite, key, OcraInput("12345678", counter=5), response, counter_window=3)
    assert matched is not None and matched.counter == 7
    time_suite = "OCRA-1:HOTP-SHA1-6:QN08-T1M"
    response = ocra(time_suite, key, OcraInput("12345678", timestamp=1000))
    assert verify_ocra(time_suite, key, OcraInput("12345678", timestamp=1001), response, time_window=1) is not None
    assert verify_ocra(time_suite, key, OcraInput("12345678", timestamp=1003), response, time_window=1) is None


def test_hotp_parameter_checks() -> None:
    with pytest.raises(OtpError):
        hotp(HOTP_SECRET, 0, digits=5)
    with pytest.raises(OtpError):
        hotp(HOTP_SECRET, 0, digits=9)
    with pytest.raises(OtpError):
        hotp(HOTP_SECRET, -1)
    with pytest.raises(OtpError):
        hotp(b"", 0)
    with pytest.raises(OtpError):
        time_step(10, period=0)
    with pytest.raises(OtpError):
        HashAlgorithm.from_name("md5")


def test_hotp_verifier_look_ahead_window() -> None:
    v = HotpVerifier(HOTP_SECRET, counter=0, window=3)
    assert v.verify(HOTP_RFC4226[0]) == 1
    assert v.verify(HOTP_RFC4226[3]) == 4  # within the look-ahead
    assert v.verify(HOTP_RFC4226[4]) is None  # beyond it
    assert HotpVerifier(HOTP_SECRET, counter=2, window=3).verify(HOTP_RFC4226[1]) is None  # already used
    assert "12345678901234567890" not in repr(v)


def test_hotp_resynchronisation_needs_two_consecutive_codes() -> None:
    v = HotpVerifier(HOTP_SECRET, counter=0, window=2, resync_window=20)
    far = [hotp(HOTP_SECRET, c) for c in (15, 16)]
    assert v.verify(far[0]) is None
    assert v.resynchronise(far[0], far[1]) == 17
    assert v.resynchronise(far[1], far[0]) is None  # not consecutive
    assert HotpVerifier(HOTP_SECRET, counter=0, resync_window=10).resynchronise(*far) is None  # outside


def test_totp_verifier_window_replay_and_drift() -> None:
    seed = TOTP_SEEDS["SHA256"]
    v = TotpVerifier(seed, digits=8, algorithm=HashAlgorithm.SHA256, window=1)
    code = totp(seed, 1111111111, digits=8, algorithm=HashAlgorithm.SHA256)
    step = time_step(1111111111)
    assert v.verify(code, 1111111111) == step
    assert v.verify(code, 1111111111 + 30) == step  # one step late: accepted
    assert v.verify(code, 1111111111 + 90) is None  # three steps late: refused
    used = TotpVerifier(seed, digits=8, algorithm=HashAlgorithm.SHA256, last_step=step)
    assert used.verify(code, 1111111111) is None  # RFC 6238 §5.2: one-time use
    # A token whose clock runs 5 steps ahead: resynchronise on two consecutive codes, then plain verify works.
    ahead = [totp(seed, 1111111111 + 30 * k, digits=8, algorithm=HashAlgorithm.SHA256) for k in (5, 6)]
    assert v.verify(ahead[0], 1111111111) is None
    drift = v.resynchronise(ahead[0], ahead[1], 1111111111)
    assert drift == 6
    synced = TotpVerifier(seed, digits=8, algorithm=HashAlgorithm.SHA256, drift=drift)
    later = totp(seed, 1111111111 + 30 * 10 + 30 * 6, digits=8, algorithm=HashAlgorithm.SHA256)
    assert synced.verify(later, 1111111111 + 30 * 10) is not None


@given(st.binary(min_size=1, max_size=64), st.integers(0, 2**64 - 1), st.integers(6, 8))
def test_hotp_is_a_zero_padded_decimal(secret: bytes, counter: int, digits: int) -> None:
    code = hotp(secret, counter, digits)
    assert len(code) == digits and code.isdigit()
    assert HotpVerifier(secret, counter=counter, digits=digits, window=0).verify(code) == counter + 1
