"""Wire format of container programs (sandboxed WebAssembly): instructions, status words, the signed manifest
and the load file. Bytes only: signing and verifying live with the provider and the device.

docs/programs.md and the "Programs" part of docs/protocol.md describe each command.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from tenantcard.wire.errors import WireError
from tenantcard.wire.tlv import Tlv, encode_length, encode_tag, parse_all

HOST_API_VERSION = 1
MANIFEST_FORMAT = 1
# Domain separation of the manifest signature: what a provider's program-signing key signs is never
# mistaken for any other message of the system.
MANIFEST_SIGNING_DOMAIN = b"tenantcard-program-manifest-v1\x00"
MAX_NAME = 32
MIN_PROGRAM_ID = 0x01
MAX_PROGRAM_ID = 0xFE
MIN_KEY_ID = 0x01
MAX_KEY_ID = 0xFE


class ProgramIns(IntEnum):
    """Proprietary INS of the programs function (CLA 80/84, inside an OWNED container)."""

    PUT_SIGNING_KEY = 0x10  # P1 = SigningAlgorithm, data = public key
    LOAD = 0x12  # GP 2.3.1 §11.6 style blocks: P1 = 00 more / 80 last, P2 = block number
    LIST = 0x14
    DELETE = 0x16  # P1 = program id
    PUT_KEY = 0x18  # P1 = key id, P2 = ProgramKeyType, data = secret (C-DECRYPTION required)
    GENERATE_KEY = 0x1A  # P1 = key id, P2 = ProgramKeyType (Ed25519 or P-256); answers the public key
    GET_PUBLIC_KEY = 0x1C  # P1 = key id
    DELETE_KEY = 0x1D  # P1 = key id
    INVOKE = 0x1F  # P1 = program id, P2 handed to the program; data in, data + status word out


class LoadP1(IntEnum):
    """GP 2.3.1 §11.6.2.1 LOAD P1."""

    MORE_BLOCKS = 0x00
    LAST_BLOCK = 0x80


class SigningAlgorithm(IntEnum):
    """Algorithm of a provider's program-signing key (PUT SIGNING KEY P1)."""

    ED25519 = 0x01  # RFC 8032, raw 32-byte public key
    ECDSA_P256_SHA256 = 0x02  # SEC 1 uncompressed point (65 bytes); signature DER (RFC 3279 §2.2.3)


class ProgramKeyType(IntEnum):
    """Keys a program may use by id through the host API; their secret never leaves the container."""

    HMAC_SHA256 = 0x01  # RFC 2104 with SHA-256; secret 16..64 bytes
    ED25519 = 0x02  # RFC 8032; private key 32 bytes
    ECDSA_P256 = 0x03  # FIPS 186-5 ECDSA over P-256 with SHA-256, DER signature; private scalar 32 bytes


class ProgramSW(IntEnum):
    """Status words that end a program call the program did not end itself (docs/programs.md).

    Each leaves the container's stored objects as they were before the call.
    """

    OUT_OF_FUEL = 0x6F01  # instruction budget of the call spent
    DEADLINE = 0x6F02  # wall-clock deadline of the call passed (epoch interruption)
    MEMORY_LIMIT = 0x6F03  # trap after the program grew linear memory to its limit, or instantiation over it
    STACK_OVERFLOW = 0x6F04
    HOST_POINTER = 0x6F05  # a pointer/length handed to a host function lies outside linear memory
    MEMORY_OUT_OF_BOUNDS = 0x6F06  # guest load/store outside linear memory
    TRAP = 0x6F07  # any other trap (unreachable, division by zero, bad indirect call, ...)
    BAD_STATUS = 0x6F08  # invoke returned something that is not a status word a program may answer


class LoadTag(IntEnum):
    """BER-TLV tags of the load file and the manifest (context-specific, proprietary)."""

    SIGNED_MANIFEST = 0xE1
    MANIFEST_BODY = 0xA1
    SIGNATURE = 0x5F37  # ISO 7816-6 "static internal authentication" tag, as in CV certificates
    MODULE = 0xC4  # GP 2.3.1 §11.6.2.3 load file data block
    FORMAT = 0x80
    CONTAINER_AID = 0x4F  # ISO 7816-4 application identifier
    PROGRAM_ID = 0x81
    VERSION = 0x82
    MODULE_HASH = 0x83
    MODULE_SIZE = 0x84
    MEMORY = 0x85
    FUEL = 0x86
    HOST_API = 0x87
    ACCESS = 0x88
    DEADLINE_MS = 0x89
    NAME = 0x8A
    ENTRY = 0xE2  # one LIST entry
    DATA_OBJECTS = 0x8B  # in a LIST entry: number of the program's stored objects


def _uint(tag: int, value: int, size: int) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise WireError(f"field {tag:02X} out of range")
    return Tlv(tag, value.to_bytes(size, "big")).to_bytes()


def _read_tlvs(data: bytes) -> list[Tlv]:
    """Top-level TLVs of ``data``, in order."""
    return parse_all(data)


def _fixed(fields: dict[int, bytes], tag: int, size: int) -> bytes:
    value = fields.get(tag)
    if value is None:
        raise WireError(f"manifest lacks field {tag:02X}")
    if len(value) != size:
        raise WireError(f"manifest field {tag:02X} must be {size} bytes")
    return value


def _unique(tlvs: list[Tlv]) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    for t in tlvs:
        if t.tag in fields:
            raise WireError(f"field {t.tag:02X} repeated")
        fields[t.tag] = t.value
    return fields


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a provider signs about one program (docs/programs.md "Manifest")."""

    container_aid: bytes
    program_id: int
    version: int
    module_sha256: bytes
    module_size: int
    memory_bytes: int  # upper bound of the program's linear memory
    fuel: int  # instruction budget per call (wasmtime fuel units)
    deadline_ms: int  # wall-clock budget per call
    access: int  # Access rule of INVOKE (device/functions/base.py Access values)
    name: str = ""
    host_api: int = HOST_API_VERSION

    def __post_init__(self) -> None:
        if not 5 <= len(self.container_aid) <= 16:
            raise WireError("container AID must be 5..16 bytes")
        if not MIN_PROGRAM_ID <= self.program_id <= MAX_PROGRAM_ID:
            raise WireError("program id must be 1..254")
        if not 0 <= self.version <= 0xFFFFFFFF:
            raise WireError("version out of range")
        if len(self.module_sha256) != 32:
            raise WireError("module hash must be 32 bytes")
        if not 0 < self.module_size <= 0xFFFFFFFF or not 0 < self.memory_bytes <= 0xFFFFFFFF:
            raise WireError("module size or memory out of range")
        if not 0 < self.fuel < 1 << 64 or not 0 < self.deadline_ms <= 0xFFFFFFFF:
            raise WireError("fuel or deadline out of range")
        if not 0 <= self.access <= 3 or not 0 <= self.host_api <= 0xFF:
            raise WireError("access or host API out of range")
        if len(self.name.encode()) > MAX_NAME:
            raise WireError("name longer than 32 bytes")

    def to_bytes(self) -> bytes:
        """The manifest body: the exact bytes that are signed (after MANIFEST_SIGNING_DOMAIN)."""
        return b"".join(
            (
                _uint(LoadTag.FORMAT, MANIFEST_FORMAT, 1),
                Tlv(LoadTag.CONTAINER_AID, self.container_aid).to_bytes(),
                _uint(LoadTag.PROGRAM_ID, self.program_id, 1),
                _uint(LoadTag.VERSION, self.version, 4),
                Tlv(LoadTag.MODULE_HASH, self.module_sha256).to_bytes(),
                _uint(LoadTag.MODULE_SIZE, self.module_size, 4),
                _uint(LoadTag.MEMORY, self.memory_bytes, 4),
                _uint(LoadTag.FUEL, self.fuel, 8),
                _uint(LoadTag.DEADLINE_MS, self.deadline_ms, 4),
                _uint(LoadTag.ACCESS, self.access, 1),
                _uint(LoadTag.HOST_API, self.host_api, 1),
                Tlv(LoadTag.NAME, self.name.encode()).to_bytes(),
            )
        )

    @classmethod
    def parse(cls, body: bytes) -> Manifest:
        """Parse a manifest body; only the canonical encoding (what ``to_bytes`` gives) is accepted, so that
        one manifest has exactly one signed form."""
        fields = _unique(_read_tlvs(body))
        if _fixed(fields, LoadTag.FORMAT, 1)[0] != MANIFEST_FORMAT:
            raise WireError("unknown manifest format")
        try:
            name = fields.get(LoadTag.NAME, b"").decode()
        except UnicodeDecodeError as exc:
            raise WireError("manifest name is not UTF-8") from exc
        if LoadTag.CONTAINER_AID not in fields:
            raise WireError("manifest lacks the container AID")
        manifest = cls(
            container_aid=fields[LoadTag.CONTAINER_AID],
            program_id=_fixed(fields, LoadTag.PROGRAM_ID, 1)[0],
            version=int.from_bytes(_fixed(fields, LoadTag.VERSION, 4), "big"),
            module_sha256=_fixed(fields, LoadTag.MODULE_HASH, 32),
            module_size=int.from_bytes(_fixed(fields, LoadTag.MODULE_SIZE, 4), "big"),
            memory_bytes=int.from_bytes(_fixed(fields, LoadTag.MEMORY, 4), "big"),
            fuel=int.from_bytes(_fixed(fields, LoadTag.FUEL, 8), "big"),
            deadline_ms=int.from_bytes(_fixed(fields, LoadTag.DEADLINE_MS, 4), "big"),
            access=_fixed(fields, LoadTag.ACCESS, 1)[0],
            host_api=_fixed(fields, LoadTag.HOST_API, 1)[0],
            name=name,
        )
        if manifest.to_bytes() != body:
            raise WireError("manifest is not in canonical encoding")
        return manifest

    def signing_input(self) -> bytes:
        return MANIFEST_SIGNING_DOMAIN + self.to_bytes()


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """A manifest and the provider's signature over ``manifest.signing_input()``."""

    manifest: Manifest
    signature: bytes

    def to_bytes(self) -> bytes:
        inner = Tlv(LoadTag.MANIFEST_BODY, self.manifest.to_bytes()).to_bytes()
        inner += Tlv(LoadTag.SIGNATURE, self.signature).to_bytes()
        return Tlv(LoadTag.SIGNED_MANIFEST, inner).to_bytes()

    @classmethod
    def from_tlv_value(cls, value: bytes) -> SignedManifest:
        fields = _unique(_read_tlvs(value))
        if set(fields) != {LoadTag.MANIFEST_BODY, LoadTag.SIGNATURE}:
            raise WireError("signed manifest must hold a body and a signature")
        signature = fields[LoadTag.SIGNATURE]
        if not 1 <= len(signature) <= 80:
            raise WireError("signature length out of range")
        return cls(Manifest.parse(fields[LoadTag.MANIFEST_BODY]), signature)

    @classmethod
    def parse(cls, raw: bytes) -> SignedManifest:
        tlvs = _read_tlvs(raw)
        if len(tlvs) != 1 or tlvs[0].tag != LoadTag.SIGNED_MANIFEST:
            raise WireError("not a signed manifest")
        return cls.from_tlv_value(tlvs[0].value)


@dataclass(frozen=True, slots=True)
class LoadFile:
    """What LOAD blocks carry, concatenated: the signed manifest (E1) then the module (C4)."""

    signed: SignedManifest
    module: bytes

    def to_bytes(self) -> bytes:
        return self.signed.to_bytes() + Tlv(LoadTag.MODULE, self.module).to_bytes()

    @classmethod
    def parse(cls, raw: bytes) -> LoadFile:
        tlvs = _read_tlvs(raw)
        if [t.tag for t in tlvs] != [LoadTag.SIGNED_MANIFEST, LoadTag.MODULE]:
            raise WireError("load file must be a signed manifest followed by a module")
        return cls(SignedManifest.from_tlv_value(tlvs[0].value), tlvs[1].value)

    def blocks(self, size: int) -> list[bytes]:
        raw = self.to_bytes()
        return [raw[i : i + size] for i in range(0, len(raw), size)]


@dataclass(frozen=True, slots=True)
class ProgramInfo:
    """One entry of LIST: the installed program's manifest and how many objects it has stored."""

    manifest: Manifest
    data_objects: int

    def to_bytes(self) -> bytes:
        inner = Tlv(LoadTag.MANIFEST_BODY, self.manifest.to_bytes()).to_bytes()
        inner += _uint(LoadTag.DATA_OBJECTS, self.data_objects, 2)
        return encode_tag(LoadTag.ENTRY) + encode_length(len(inner)) + inner

    @classmethod
    def parse_list(cls, raw: bytes) -> list[ProgramInfo]:
        out: list[ProgramInfo] = []
        for entry in _read_tlvs(raw):
            if entry.tag != LoadTag.ENTRY:
                raise WireError("unexpected tag in program list")
            fields = _unique(_read_tlvs(entry.value))
            if LoadTag.MANIFEST_BODY not in fields:
                raise WireError("program entry lacks its manifest")
            count = fields.get(LoadTag.DATA_OBJECTS, b"\x00\x00")
            out.append(cls(Manifest.parse(fields[LoadTag.MANIFEST_BODY]), int.from_bytes(count, "big")))
        return out


def valid_program_sw(sw: int) -> bool:
    """Status words a program may answer itself: 9000-9FFF (ISO 7816-4 §5.6 process completed) and 62xx-6Fxx
    errors, except 61xx/6Cxx (transport-level, handled by the card OS) and the 6F0x codes the sandbox reserves."""
    if 0x9000 <= sw <= 0x9FFF:
        return True
    if not 0x6200 <= sw <= 0x6FFF:
        return False
    if sw >> 8 == 0x6C:
        return False
    return not 0x6F00 < sw <= 0x6F0F
