"""One-time passwords: HOTP (RFC 4226), TOTP (RFC 6238), and their verification with a look-ahead window and
resynchronisation (RFC 4226 §7.4, RFC 6238 §5.2). Pure computations: the device computes codes with them, the
provider's SDK verifies codes with them.
"""

from __future__ import annotations

import hmac as _hmac
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from tenantcard.crypto.errors import CryptoError

MIN_DIGITS = 6  # RFC 4226 §5.3: at least 6 digits
MAX_DIGITS = 8  # RFC 6238 §1.2 uses up to 8; 10 would overflow the 31-bit truncation
MAX_COUNTER = 2**64 - 1  # RFC 4226 §5.1: 8-byte counter
MIN_SECRET = 1  # RFC 4226 §4 R6 recommends 160 bits; the RFC 6238 vectors also use 32 and 64-byte seeds
MAX_SECRET = 128


class OtpError(CryptoError):
    """Bad OTP parameters (digit count, counter range, secret length). Never carries the secret."""


class HashAlgorithm(IntEnum):
    """HMAC hash of an OTP or challenge-response credential (RFC 6238 §1.2: SHA-1, SHA-256, SHA-512)."""

    SHA1 = 0x01
    SHA256 = 0x02
    SHA512 = 0x03

    def hash(self) -> hashes.HashAlgorithm:
        if self == HashAlgorithm.SHA1:
            return hashes.SHA1()  # noqa: S303 - HMAC-SHA-1 as RFC 4226 §5.2 defines it
        if self == HashAlgorithm.SHA256:
            return hashes.SHA256()
        return hashes.SHA512()

    @property
    def digest_size(self) -> int:
        return {HashAlgorithm.SHA1: 20, HashAlgorithm.SHA256: 32, HashAlgorithm.SHA512: 64}[self]

    @classmethod
    def from_name(cls, name: str) -> HashAlgorithm:
        key = name.upper().replace("-", "")
        try:
            return cls[key]
        except KeyError:
            raise OtpError(f"unknown hash algorithm {name!r}") from None


def hmac_digest(key: bytes, message: bytes, algorithm: HashAlgorithm = HashAlgorithm.SHA1) -> bytes:
    """HMAC (RFC 2104) of ``message`` under ``key`` with pyca/cryptography."""
    mac = HMAC(key, algorithm.hash())
    mac.update(message)
    return mac.finalize()


def check_digits(digits: int) -> None:
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        raise OtpError("an OTP has 6 to 8 digits")


def truncate(digest: bytes, digits: int) -> str:
    """Dynamic truncation of an HMAC value to ``digits`` decimal digits (RFC 4226 §5.3, §5.4)."""
    offset = digest[-1] & 0x0F
    binary = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def hotp(secret: bytes, counter: int, digits: int = 6, algorithm: HashAlgorithm = HashAlgorithm.SHA1) -> str:
    """HOTP(K, C) = Truncate(HMAC(K, C)) (RFC 4226 §5.3); SHA-256/512 as RFC 6238 §1.2 allows."""
    check_digits(digits)
    if not 0 <= counter <= MAX_COUNTER:
        raise OtpError("counter out of range")
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise OtpError("secret length out of range")
    return truncate(hmac_digest(secret, counter.to_bytes(8, "big"), algorithm), digits)


def time_step(unix_time: float, period: int = 30, t0: int = 0) -> int:
    """T = floor((Current Unix time - T0) / X) (RFC 6238 §4.2)."""
    if period <= 0:
        raise OtpError("period must be positive")
    if unix_time < t0:
        raise OtpError("time before T0")
    return int((int(unix_time) - t0) // period)


def totp(
    secret: bytes,
    unix_time: float,
    digits: int = 6,
    algorithm: HashAlgorithm = HashAlgorithm.SHA1,
    period: int = 30,
    t0: int = 0,
) -> str:
    """TOTP = HOTP(K, T) (RFC 6238 §4.2)."""
    return hotp(secret, time_step(unix_time, period, t0), digits, algorithm)


def codes_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two codes (never ``==`` on secrets)."""
    return _hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class HotpVerifier:
    """Server side of HOTP (RFC 4226 §7.2 look-ahead, §7.4 resynchronisation).

    ``counter`` is the next counter value the server expects. ``window`` is the look-ahead parameter s of
    §7.4; ``resync_window`` is the larger window searched when two consecutive codes are presented.
    """

    secret: bytes
    counter: int = 0
    digits: int = 6
    algorithm: HashAlgorithm = HashAlgorithm.SHA1
    window: int = 10
    resync_window: int = 100

    def __repr__(self) -> str:
        return f"HotpVerifier(counter={self.counter}, digits={self.digits}, {self.algorithm.name})"

    def _search(self, code: str, start: int, width: int) -> int | None:
        found: int | None = None
        # Compute every candidate so that timing does not tell where a match was found.
        for c in range(start, min(start + width, MAX_COUNTER + 1)):
            if codes_equal(hotp(self.secret, c, self.digits, self.algorithm), code) and found is None:
                found = c
        return found

    def verify(self, code: str) -> int | None:
        """The new expected counter when ``code`` matches a counter in [counter, counter + window], else None
        (RFC 4226 §7.2: the counter is advanced past the matching value only on success)."""
        matched = self._search(code, self.counter, self.window + 1)
        return None if matched is None else matched + 1

    def resynchronise(self, first: str, second: str) -> int | None:
        """RFC 4226 §7.4: two consecutive codes, the first within ``resync_window`` of the counter. Returns
        the new expected counter, else None."""
        found: int | None = None
        end = min(self.counter + self.resync_window + 1, MAX_COUNTER)
        for c in range(self.counter, end):
            a = codes_equal(hotp(self.secret, c, self.digits, self.algorithm), first)
            b = codes_equal(hotp(self.secret, c + 1, self.digits, self.algorithm), second)
            if a and b and found is None:
                found = c + 2
        return found


@dataclass(frozen=True, slots=True)
class TotpVerifier:
    """Server side of TOTP (RFC 6238 §5.2): accepts codes of up to ``window`` time steps before or after now
    (network delay, clock drift) and records the drift (RFC 6238 §6) for later checks. ``last_step`` refuses a
    code of a step already accepted (RFC 6238 §5.2: one-time use)."""

    secret: bytes
    digits: int = 6
    algorithm: HashAlgorithm = HashAlgorithm.SHA1
    period: int = 30
    t0: int = 0
    window: int = 1
    drift: int = 0  # time steps by which the token's clock is known to differ (RFC 6238 §6)
    last_step: int = -1

    def __repr__(self) -> str:
        return f"TotpVerifier(period={self.period}, digits={self.digits}, {self.algorithm.name}, drift={self.drift})"

    def verify(self, code: str, unix_time: float) -> int | None:
        """The matching time step, or None. A step at or before ``last_step`` never matches."""
        now = time_step(unix_time, self.period, self.t0) + self.drift
        found: int | None = None
        for step in range(max(now - self.window, 0), now + self.window + 1):
            ok = codes_equal(hotp(self.secret, step, self.digits, self.algorithm), code)
            if ok and step > self.last_step and found is None:
                found = step
        return found

    def resynchronise(self, first: str, second: str, unix_time: float, max_drift: int = 10) -> int | None:
        """RFC 6238 §6: find two consecutive codes within ``max_drift`` steps of now; returns the new drift
        (steps) to store, else None."""
        now = time_step(unix_time, self.period, self.t0)
        found: int | None = None
        for step in range(max(now - max_drift, 0), now + max_drift + 1):
            a = codes_equal(hotp(self.secret, step, self.digits, self.algorithm), first)
            b = codes_equal(hotp(self.secret, step + 1, self.digits, self.algorithm), second)
            if a and b and found is None:
                found = step + 1 - now
        return found
