"""OCRA, the OATH challenge-response algorithm (RFC 6287): suite parsing (§6), the data input (§5.1) and the
computation (§5.2). Pure: the device computes responses with it, the provider's SDK verifies them with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives import hashes

from tenantcard.crypto.otp import HashAlgorithm, OtpError, codes_equal, hmac_digest, truncate

_SUITE = re.compile(
    r"^OCRA-1:HOTP-SHA(?P<hash>1|256|512)-(?P<digits>\d{1,2}):"
    r"(?P<input>(?:C-)?Q[ANH]\d\d(?:-P(?:SHA1|SHA256|SHA512))?(?:-S\d{3})?(?:-T\d{1,2}[SMH])?)$"
)
_QUESTION = re.compile(r"Q(?P<fmt>[ANH])(?P<len>\d\d)")
_PASSWORD = re.compile(r"P(?P<hash>SHA1|SHA256|SHA512)")
_SESSION = re.compile(r"S(?P<len>\d{3})")
_TIME = re.compile(r"T(?P<n>\d{1,2})(?P<unit>[SMH])")
_TIME_STEP_LIMITS = {"S": (1, 59, 1), "M": (1, 59, 60), "H": (0, 48, 3600)}  # RFC 6287 §6.3
QUESTION_BYTES = 128  # RFC 6287 §5.1: Q is always 128 bytes


class OcraError(OtpError):
    """A malformed suite or an input that does not fit the suite. Never carries the key or a PIN."""


class QuestionFormat(Enum):
    """RFC 6287 §6.3 challenge formats."""

    ALPHANUMERIC = "A"
    NUMERIC = "N"
    HEX = "H"


@dataclass(frozen=True, slots=True)
class OcraSuite:
    """A parsed OCRA suite, e.g. ``OCRA-1:HOTP-SHA1-6:QN08`` (RFC 6287 §6)."""

    text: str
    algorithm: HashAlgorithm
    digits: int  # 0 = no truncation (RFC 6287 §6.2), else 4..10
    counter: bool
    question_format: QuestionFormat
    question_length: int  # maximum challenge length, 4..64
    password: HashAlgorithm | None
    session_length: int | None
    time_step: int | None  # seconds

    @classmethod
    def parse(cls, text: str) -> OcraSuite:
        m = _SUITE.match(text)
        if not m:
            raise OcraError("malformed OCRA suite")
        algorithm = {"1": HashAlgorithm.SHA1, "256": HashAlgorithm.SHA256, "512": HashAlgorithm.SHA512}[m["hash"]]
        digits = int(m["digits"])
        if digits != 0 and not 4 <= digits <= 10:  # RFC 6287 §6.2
            raise OcraError("OCRA truncation length must be 0 or 4..10")
        parts = m["input"].split("-")
        counter = parts[0] == "C"
        if counter:
            parts = parts[1:]
        q = _QUESTION.fullmatch(parts[0])
        assert q is not None  # guaranteed by _SUITE
        qlen = int(q["len"])
        if not 4 <= qlen <= 64:  # RFC 6287 §6.3
            raise OcraError("OCRA challenge length must be 4..64")
        password: HashAlgorithm | None = None
        session: int | None = None
        step: int | None = None
        for part in parts[1:]:
            if p := _PASSWORD.fullmatch(part):
                password = HashAlgorithm.from_name(p["hash"])
            elif s := _SESSION.fullmatch(part):
                session = int(s["len"])
                if not 1 <= session <= 512:
                    raise OcraError("OCRA session information length must be 1..512")
            elif t := _TIME.fullmatch(part):
                low, high, unit = _TIME_STEP_LIMITS[t["unit"]]
                n = int(t["n"])
                if not low <= n <= high or n == 0:
                    raise OcraError("OCRA time step out of range")
                step = n * unit
        return cls(text, algorithm, digits, counter, QuestionFormat(q["fmt"]), qlen, password, session, step)

    def time_steps(self, unix_time: float) -> int:
        """T: the number of time steps since the Unix epoch (RFC 6287 §5.1)."""
        if self.time_step is None:
            raise OcraError("the suite has no timestamp")
        if unix_time < 0:
            raise OcraError("time before the epoch")
        return int(unix_time) // self.time_step


@dataclass(frozen=True, slots=True)
class OcraInput:
    """The variable data inputs of one computation (RFC 6287 §5.1). Which are needed depends on the suite.

    ``password`` is the already hashed PIN (P is a hash value, RFC 6287 §5.1); ``timestamp`` is T in time
    steps. ``repr`` hides the password hash.
    """

    question: str
    counter: int | None = None
    password: bytes | None = None
    session: bytes | None = None
    timestamp: int | None = None

    def __repr__(self) -> str:
        return f"OcraInput(question={self.question!r}, counter={self.counter}, timestamp={self.timestamp})"


def encode_question(suite: OcraSuite, question: str) -> bytes:
    """Q as RFC 6287 §5.1 and the Appendix A reference code encode it: the challenge as hex digits (numeric:
    the number in hex; alphanumeric: the ASCII bytes; hex: as given), right-padded with '0' to 256 digits."""
    # RFC 6287 §7.3: in mutual challenge-response Q is the client's and the server's challenges concatenated.
    if not 4 <= len(question) <= 2 * suite.question_length:
        raise OcraError("challenge length does not fit the suite")
    if suite.question_format == QuestionFormat.NUMERIC:
        if not question.isascii() or not question.isdigit():
            raise OcraError("numeric challenge expected")
        digits = format(int(question), "X")
    elif suite.question_format == QuestionFormat.HEX:
        if not re.fullmatch(r"[0-9A-Fa-f]+", question):
            raise OcraError("hexadecimal challenge expected")
        digits = question
    else:
        if not question.isascii() or not question.isprintable():
            raise OcraError("alphanumeric challenge expected")
        digits = question.encode("ascii").hex()
    if len(digits) > 2 * QUESTION_BYTES:
        raise OcraError("challenge too long")
    return bytes.fromhex(digits.ljust(2 * QUESTION_BYTES, "0"))


def data_input(suite: OcraSuite, values: OcraInput) -> bytes:
    """DataInput = OCRASuite | 00 | [C] | Q | [P] | [S] | [T] (RFC 6287 §5.1)."""
    out = bytearray(suite.text.encode("ascii") + b"\x00")
    if suite.counter:
        if values.counter is None or not 0 <= values.counter < 2**64:
            raise OcraError("the suite needs a counter")
        out += values.counter.to_bytes(8, "big")
    elif values.counter is not None:
        raise OcraError("the suite has no counter")
    out += encode_question(suite, values.question)
    if suite.password is not None:
        if values.password is None or len(values.password) != suite.password.digest_size:
            raise OcraError("the suite needs a password hash")
        out += values.password
    elif values.password is not None:
        raise OcraError("the suite has no password")
    if suite.session_length is not None:
        if values.session is None or len(values.session) > suite.session_length:
            raise OcraError("the suite needs session information")
        out += values.session.rjust(suite.session_length, b"\x00")
    elif values.session is not None:
        raise OcraError("the suite has no session information")
    if suite.time_step is not None:
        if values.timestamp is None or not 0 <= values.timestamp < 2**64:
            raise OcraError("the suite needs a timestamp")
        out += values.timestamp.to_bytes(8, "big")
    elif values.timestamp is not None:
        raise OcraError("the suite has no timestamp")
    return bytes(out)


def ocra(suite: OcraSuite | str, key: bytes, values: OcraInput) -> str:
    """OCRA = CryptoFunction(K, DataInput) (RFC 6287 §5.2): the truncated decimal response, or the whole
    HMAC in hex when the suite's truncation length is 0 (§6.2)."""
    parsed = OcraSuite.parse(suite) if isinstance(suite, str) else suite
    if not key:
        raise OcraError("empty OCRA key")
    digest = hmac_digest(key, data_input(parsed, values), parsed.algorithm)
    if parsed.digits == 0:
        return digest.hex()
    return truncate(digest, parsed.digits)


def hash_password(suite: OcraSuite, pin: str | bytes) -> bytes:
    """P: the PIN hashed with the suite's password hash (RFC 6287 §5.1)."""
    if suite.password is None:
        raise OcraError("the suite has no password")
    raw = pin.encode() if isinstance(pin, str) else pin
    h = hashes.Hash(suite.password.hash())
    h.update(raw)
    return h.finalize()


def verify_ocra(
    suite: OcraSuite | str,
    key: bytes,
    values: OcraInput,
    response: str,
    *,
    counter_window: int = 0,
    time_window: int = 0,
) -> OcraInput | None:
    """Server-side check of an OCRA response (RFC 6287 §7.1, §7.3): the inputs that matched, or None.

    With a counter suite, counters ``values.counter .. + counter_window`` are tried (look-ahead); with a
    timestamp suite, timestamps within ``time_window`` steps either side. Comparisons are constant-time.
    """
    parsed = OcraSuite.parse(suite) if isinstance(suite, str) else suite
    counters = [values.counter]
    if parsed.counter and values.counter is not None:
        counters = list(range(values.counter, values.counter + counter_window + 1))
    stamps = [values.timestamp]
    if parsed.time_step is not None and values.timestamp is not None:
        stamps = list(range(max(values.timestamp - time_window, 0), values.timestamp + time_window + 1))
    found: OcraInput | None = None
    for c in counters:
        for t in stamps:
            candidate = OcraInput(values.question, c, values.password, values.session, t)
            if codes_equal(ocra(parsed, key, candidate), response) and found is None:
                found = candidate
    return found
