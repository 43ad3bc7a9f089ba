"""Commands of the container functions (docs/protocol.md, "Container functions"): OTP, challenge-response and
PKI. Proprietary CLA 80/84 instructions inside an OWNED container; bytes only, each type parses and serializes
itself. Data fields are flat BER-TLV lists with the context tags of ``FnTag``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from tenantcard.wire.errors import WireError
from tenantcard.wire.tenant import Access
from tenantcard.wire.tlv import Tlv, as_dict, encode_all, iter_tlvs, template_fields

MAX_CREDENTIAL_NAME = 64
MAX_SECRET = 128
MAX_SUITE = 64
MAX_CHALLENGE = 128
MAX_SESSION_INFO = 512
MAX_SLOT = 0x7F


class OathIns(IntEnum):
    """INS 0x30-0x3F: OTP (HOTP RFC 4226, TOTP RFC 6238) and challenge-response (HMAC, OCRA RFC 6287)."""

    OTP_PUT = 0x30  # provider: load an OTP credential (P1 00 create, 01 replace)
    OTP_CALCULATE = 0x31  # per the credential's access rule: compute a code
    OTP_DELETE = 0x32  # provider
    OTP_LIST = 0x33  # holder or provider: names and parameters, never secrets
    CHALLENGE_PUT = 0x38  # provider: load an HMAC or OCRA key (P1 00 create, 01 replace)
    CHALLENGE_RESPOND = 0x39  # per the credential's access rule: answer a challenge
    CHALLENGE_DELETE = 0x3A  # provider
    CHALLENGE_LIST = 0x3B  # holder or provider


class PkiIns(IntEnum):
    """INS 0x40-0x4F: key pairs generated in the container, signatures, certificates. P2 = key slot 01-7F."""

    GENERATE = 0x40  # provider: P1 00 create, 01 replace; data: GenerateKeyRequest; answers the SPKI (DER)
    SIGN = 0x41  # per the key's access rule: P1 00 message, 01 SHA-256 digest (P-256); answers the signature
    PUBLIC_KEY = 0x42  # anyone: SubjectPublicKeyInfo (DER)
    PUT_CERTIFICATE = 0x43  # provider: X.509 certificate (DER) whose key is the slot's
    GET_CERTIFICATE = 0x44  # anyone
    DELETE = 0x45  # provider: key and certificate
    LIST = 0x46  # anyone: KeyEntry templates


class ReplaceMode(IntEnum):
    """P1 of the PUT/GENERATE commands."""

    CREATE = 0x00  # 6A89 when the name or slot is taken
    REPLACE = 0x01


class SignMode(IntEnum):
    """P1 of PKI SIGN."""

    MESSAGE = 0x00  # ECDSA P-256 with SHA-256 over the data; Ed25519 over the data (RFC 8032 §5.1.6)
    DIGEST = 0x01  # ECDSA P-256 over a 32-byte SHA-256 digest computed by the host (P-256 only)


class FnTag(IntEnum):
    """Context tags of the function commands' data fields."""

    NAME = 0x80
    KIND = 0x81
    ALGORITHM = 0x82
    DIGITS = 0x83
    SECRET = 0x84
    COUNTER = 0x85  # 8 bytes
    PERIOD = 0x86  # 4 bytes, seconds
    T0 = 0x87  # 8 bytes, Unix seconds
    ACCESS = 0x88
    TIME = 0x89  # 8 bytes, Unix seconds
    RESPONSE = 0x8A
    SUITE = 0x8B  # OCRA suite, ASCII
    PASSWORD_HASH = 0x8C  # OCRA P (already hashed)
    CHALLENGE = 0x8D
    SESSION_INFO = 0x8E  # OCRA S
    SLOT = 0x8F
    HAS_CERTIFICATE = 0x90
    CREDENTIAL = 0xA5  # list entry
    KEY_ENTRY = 0xA6  # list entry


class CredentialKind(IntEnum):
    HOTP = 0x01  # RFC 4226
    TOTP = 0x02  # RFC 6238
    HMAC = 0x03  # raw HMAC challenge-response (the YubiKey "HMAC-SHA1 challenge-response" style)
    OCRA = 0x04  # RFC 6287


class OathAlgorithm(IntEnum):
    """Hash of an OTP/HMAC credential; the same numbers as ``tenantcard.crypto.otp.HashAlgorithm``."""

    SHA1 = 0x01
    SHA256 = 0x02
    SHA512 = 0x03


class KeyAlgorithm(IntEnum):
    """Key pair algorithms of the PKI function."""

    EC_P256 = 0x01  # ECDSA over secp256r1 (FIPS 186-5)
    ED25519 = 0x02  # RFC 8032


def _u(value: int, size: int, what: str) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise WireError(f"{what} out of range")
    return value.to_bytes(size, "big")


def _int(fields: dict[int, bytes], tag: int, size: int, what: str) -> int | None:
    raw = fields.get(tag)
    if raw is None:
        return None
    if len(raw) != size:
        raise WireError(f"{what} must be {size} bytes")
    return int.from_bytes(raw, "big")


def _byte(fields: dict[int, bytes], tag: int, what: str) -> int | None:
    return _int(fields, tag, 1, what)


def _only(fields: dict[int, bytes], allowed: set[int]) -> None:
    if not set(fields) <= allowed:
        raise WireError("unknown field")


def _name(fields: dict[int, bytes]) -> bytes:
    name = fields.get(FnTag.NAME, b"")
    if not 1 <= len(name) <= MAX_CREDENTIAL_NAME:
        raise WireError("credential name must be 1..64 bytes")
    return name


def _access(value: int | None, default: Access) -> Access:
    if value is None:
        return default
    if value not in {a.value for a in Access}:
        raise WireError("unknown access rule")
    return Access(value)


@dataclass(frozen=True, slots=True)
class OathCredential:
    """An OTP or challenge-response credential as the provider loads it (OTP_PUT / CHALLENGE_PUT data) and as
    the container keeps it. ``counter`` is the next HOTP counter or the OCRA counter C. ``repr`` hides the
    secret."""

    name: bytes
    kind: CredentialKind
    secret: bytes
    algorithm: OathAlgorithm = OathAlgorithm.SHA1
    digits: int = 6
    counter: int = 0
    period: int = 30
    t0: int = 0
    suite: str = ""
    access: Access = Access.HOLDER

    def __repr__(self) -> str:
        return (
            f"OathCredential(name={self.name!r}, kind={self.kind.name}, {self.algorithm.name}, "
            f"digits={self.digits}, access={self.access.name})"
        )

    def check(self) -> None:
        if not 1 <= len(self.name) <= MAX_CREDENTIAL_NAME:
            raise WireError("credential name must be 1..64 bytes")
        if not 1 <= len(self.secret) <= MAX_SECRET:
            raise WireError("secret must be 1..128 bytes")
        if self.kind in (CredentialKind.HOTP, CredentialKind.TOTP) and not 6 <= self.digits <= 8:
            raise WireError("an OTP has 6 to 8 digits")  # RFC 4226 §5.3, RFC 6238 §1.2
        if self.kind == CredentialKind.TOTP and not 1 <= self.period <= 0xFFFF:
            raise WireError("TOTP period out of range")
        if self.kind == CredentialKind.OCRA:
            if not 1 <= len(self.suite) <= MAX_SUITE or not self.suite.isascii():
                raise WireError("OCRA credential needs its suite")
        elif self.suite:
            raise WireError("only OCRA credentials carry a suite")
        if self.kind == CredentialKind.HMAC and self.algorithm == OathAlgorithm.SHA512:
            raise WireError("HMAC challenge-response is SHA-1 or SHA-256")

    def to_bytes(self) -> bytes:
        self.check()
        parts = [
            Tlv(FnTag.NAME, self.name),
            Tlv(FnTag.KIND, bytes([self.kind])),
            Tlv(FnTag.ALGORITHM, bytes([self.algorithm])),
            Tlv(FnTag.DIGITS, bytes([self.digits])),
            Tlv(FnTag.SECRET, self.secret),
            Tlv(FnTag.COUNTER, _u(self.counter, 8, "counter")),
            Tlv(FnTag.PERIOD, _u(self.period, 4, "period")),
            Tlv(FnTag.T0, _u(self.t0, 8, "T0")),
            Tlv(FnTag.ACCESS, bytes([self.access])),
        ]
        if self.suite:
            parts.append(Tlv(FnTag.SUITE, self.suite.encode("ascii")))
        return encode_all(parts)

    @classmethod
    def parse(cls, data: bytes) -> OathCredential:
        fields = as_dict(data)
        _only(fields, {FnTag.NAME, FnTag.KIND, FnTag.ALGORITHM, FnTag.DIGITS, FnTag.SECRET, FnTag.COUNTER}
              | {FnTag.PERIOD, FnTag.T0, FnTag.ACCESS, FnTag.SUITE})  # fmt: skip
        kind = _byte(fields, FnTag.KIND, "kind")
        if kind is None or kind not in {k.value for k in CredentialKind}:
            raise WireError("unknown credential kind")
        alg = _byte(fields, FnTag.ALGORITHM, "algorithm")
        if alg is not None and alg not in {a.value for a in OathAlgorithm}:
            raise WireError("unknown hash algorithm")
        if FnTag.SECRET not in fields:
            raise WireError("credential without a secret")
        suite_raw = fields.get(FnTag.SUITE, b"")
        try:
            suite = suite_raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise WireError("OCRA suite is not ASCII") from exc
        digits = _byte(fields, FnTag.DIGITS, "digits")
        counter = _int(fields, FnTag.COUNTER, 8, "counter")
        period = _int(fields, FnTag.PERIOD, 4, "period")
        t0 = _int(fields, FnTag.T0, 8, "T0")
        cred = cls(
            name=_name(fields),
            kind=CredentialKind(kind),
            secret=fields[FnTag.SECRET],
            algorithm=OathAlgorithm(alg if alg is not None else OathAlgorithm.SHA1),
            digits=6 if digits is None else digits,
            counter=0 if counter is None else counter,
            period=30 if period is None else period,
            t0=0 if t0 is None else t0,
            suite=suite,
            access=_access(_byte(fields, FnTag.ACCESS, "access"), Access.HOLDER),
        )
        cred.check()
        return cred

    def entry(self) -> CredentialEntry:
        return CredentialEntry(self.name, self.kind, self.algorithm, self.digits, self.access, self.suite)


@dataclass(frozen=True, slots=True)
class CredentialEntry:
    """One credential in OTP_LIST / CHALLENGE_LIST: ``A5 { 80 name, 81 kind, 82 alg, 83 digits, 88 access,
    [8B suite] }``; no secret, no counter."""

    name: bytes
    kind: CredentialKind
    algorithm: OathAlgorithm
    digits: int
    access: Access
    suite: str = ""

    def to_bytes(self) -> bytes:
        parts = [
            Tlv(FnTag.NAME, self.name),
            Tlv(FnTag.KIND, bytes([self.kind])),
            Tlv(FnTag.ALGORITHM, bytes([self.algorithm])),
            Tlv(FnTag.DIGITS, bytes([self.digits])),
            Tlv(FnTag.ACCESS, bytes([self.access])),
        ]
        if self.suite:
            parts.append(Tlv(FnTag.SUITE, self.suite.encode("ascii")))
        return Tlv.of(FnTag.CREDENTIAL, *parts).to_bytes()

    @classmethod
    def parse_list(cls, data: bytes) -> list[CredentialEntry]:
        out = []
        for tlv in iter_tlvs(data):
            f = template_fields(tlv, FnTag.CREDENTIAL, "a credential entry")
            kind, alg, digits = _byte(f, FnTag.KIND, "kind"), _byte(f, FnTag.ALGORITHM, "alg"), f.get(FnTag.DIGITS)
            if kind not in {k.value for k in CredentialKind} or alg not in {a.value for a in OathAlgorithm}:
                raise WireError("bad credential entry")
            if digits is None or len(digits) != 1:
                raise WireError("bad credential entry")
            suite = f.get(FnTag.SUITE, b"").decode("ascii", errors="replace")
            access = _access(_byte(f, FnTag.ACCESS, "access"), Access.HOLDER)
            out.append(cls(_name(f), CredentialKind(kind), OathAlgorithm(alg), digits[0], access, suite))
        return out


@dataclass(frozen=True, slots=True)
class CalculateRequest:
    """OTP_CALCULATE / CHALLENGE_RESPOND data: ``80 name, [89 time], [8D challenge], [85 counter],
    [8C password hash], [8E session info]``.

    ``time`` is Unix seconds supplied by the host (TOTP, OCRA T; the container's clock when absent);
    ``counter`` is OCRA C supplied by the host (the stored counter, then advanced, when absent).
    """

    name: bytes
    time: int | None = None
    challenge: bytes | None = None
    counter: int | None = None
    password_hash: bytes | None = None
    session: bytes | None = None

    def __repr__(self) -> str:
        return f"CalculateRequest(name={self.name!r}, time={self.time}, counter={self.counter})"

    def to_bytes(self) -> bytes:
        if not 1 <= len(self.name) <= MAX_CREDENTIAL_NAME:
            raise WireError("credential name must be 1..64 bytes")
        parts = [Tlv(FnTag.NAME, self.name)]
        if self.time is not None:
            parts.append(Tlv(FnTag.TIME, _u(self.time, 8, "time")))
        if self.challenge is not None:
            if len(self.challenge) > MAX_CHALLENGE:
                raise WireError("challenge too long")
            parts.append(Tlv(FnTag.CHALLENGE, self.challenge))
        if self.counter is not None:
            parts.append(Tlv(FnTag.COUNTER, _u(self.counter, 8, "counter")))
        if self.password_hash is not None:
            parts.append(Tlv(FnTag.PASSWORD_HASH, self.password_hash))
        if self.session is not None:
            if len(self.session) > MAX_SESSION_INFO:
                raise WireError("session information too long")
            parts.append(Tlv(FnTag.SESSION_INFO, self.session))
        return encode_all(parts)

    @classmethod
    def parse(cls, data: bytes) -> CalculateRequest:
        f = as_dict(data)
        _only(f, {FnTag.NAME, FnTag.TIME, FnTag.CHALLENGE, FnTag.COUNTER, FnTag.PASSWORD_HASH, FnTag.SESSION_INFO})
        challenge = f.get(FnTag.CHALLENGE)
        if challenge is not None and len(challenge) > MAX_CHALLENGE:
            raise WireError("challenge too long")
        session = f.get(FnTag.SESSION_INFO)
        if session is not None and len(session) > MAX_SESSION_INFO:
            raise WireError("session information too long")
        return cls(
            _name(f),
            _int(f, FnTag.TIME, 8, "time"),
            challenge,
            _int(f, FnTag.COUNTER, 8, "counter"),
            f.get(FnTag.PASSWORD_HASH),
            session,
        )


@dataclass(frozen=True, slots=True)
class CalculateResponse:
    """``8A response, 85 moving factor``: the code (ASCII digits; raw HMAC bytes for HMAC credentials) and the
    counter or time step it was computed for."""

    response: bytes
    moving_factor: int

    def to_bytes(self) -> bytes:
        return encode_all([Tlv(FnTag.RESPONSE, self.response), Tlv(FnTag.COUNTER, _u(self.moving_factor, 8, "c"))])

    @classmethod
    def parse(cls, data: bytes) -> CalculateResponse:
        f = as_dict(data)
        if FnTag.RESPONSE not in f:
            raise WireError("response missing")
        factor = _int(f, FnTag.COUNTER, 8, "moving factor")
        return cls(f[FnTag.RESPONSE], 0 if factor is None else factor)


def name_data(name: bytes) -> bytes:
    """``80 name``: the data of OTP_DELETE / CHALLENGE_DELETE."""
    if not 1 <= len(name) <= MAX_CREDENTIAL_NAME:
        raise WireError("credential name must be 1..64 bytes")
    return Tlv(FnTag.NAME, name).to_bytes()


def parse_name_data(data: bytes) -> bytes:
    f = as_dict(data)
    _only(f, {FnTag.NAME})
    return _name(f)


@dataclass(frozen=True, slots=True)
class GenerateKeyRequest:
    """PKI GENERATE data: ``82 algorithm, [88 access rule for SIGN]`` (default: holder or provider)."""

    algorithm: KeyAlgorithm
    access: Access = Access.HOLDER_OR_PROVIDER

    def to_bytes(self) -> bytes:
        return encode_all([Tlv(FnTag.ALGORITHM, bytes([self.algorithm])), Tlv(FnTag.ACCESS, bytes([self.access]))])

    @classmethod
    def parse(cls, data: bytes) -> GenerateKeyRequest:
        f = as_dict(data)
        _only(f, {FnTag.ALGORITHM, FnTag.ACCESS})
        alg = _byte(f, FnTag.ALGORITHM, "algorithm")
        if alg is None or alg not in {a.value for a in KeyAlgorithm}:
            raise WireError("unknown key algorithm")
        return cls(KeyAlgorithm(alg), _access(_byte(f, FnTag.ACCESS, "access"), Access.HOLDER_OR_PROVIDER))


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key in PKI LIST: ``A6 { 8F slot, 82 algorithm, 88 access, 90 has certificate }``."""

    slot: int
    algorithm: KeyAlgorithm
    access: Access
    has_certificate: bool

    def to_bytes(self) -> bytes:
        return Tlv.of(
            FnTag.KEY_ENTRY,
            Tlv(FnTag.SLOT, bytes([self.slot])),
            Tlv(FnTag.ALGORITHM, bytes([self.algorithm])),
            Tlv(FnTag.ACCESS, bytes([self.access])),
            Tlv(FnTag.HAS_CERTIFICATE, bytes([int(self.has_certificate)])),
        ).to_bytes()

    @classmethod
    def parse_list(cls, data: bytes) -> list[KeyEntry]:
        out = []
        for tlv in iter_tlvs(data):
            f = template_fields(tlv, FnTag.KEY_ENTRY, "a key entry")
            slot, alg = _byte(f, FnTag.SLOT, "slot"), _byte(f, FnTag.ALGORITHM, "algorithm")
            cert = _byte(f, FnTag.HAS_CERTIFICATE, "certificate flag")
            if slot is None or alg not in {a.value for a in KeyAlgorithm} or cert is None:
                raise WireError("bad key entry")
            out.append(
                cls(slot, KeyAlgorithm(alg), _access(_byte(f, FnTag.ACCESS, "access"), Access.PUBLIC), bool(cert))
            )
        return out


def check_slot(slot: int) -> int:
    """Key slots are 01-7F (P2 of the PKI commands)."""
    if not 1 <= slot <= MAX_SLOT:
        raise WireError("key slot must be 1..127")
    return slot
