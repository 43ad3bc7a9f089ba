"""tenantcard's own data formats inside GP commands (docs/protocol.md): the authorization of communication,
data objects, container status and GET STATUS entries. Bytes only; each type parses and serializes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import ISD_AID, LifeCycle, container_index
from tenantcard.wire.tlv import Tlv, encode_all, iter_tlvs, template_fields

MAX_PROVIDER_ID = 64
MAX_OBJECT_NAME = 64


class Tag(IntEnum):
    """Proprietary tags of tenantcard templates (context-specific inside each template)."""

    AUTHORIZATION = 0xA1  # STORE DATA to the ISD after INSTALL [for personalization]
    DATA_OBJECT = 0xA2  # STORE DATA / GET STATUS entries of a container's data objects
    CONTAINER_STATUS = 0xA3  # GET STATUS P1=80 of a container
    GS_PROVIDER_ID = 0xDF74  # GET STATUS E3 entry: provider id of a container (UTF-8)
    GS_QUOTA = 0xDF75  # GET STATUS E3 entry: quota, 4 bytes
    GS_RESERVED = 0xDF76  # GET STATUS E3 entry: reserved memory, 4 bytes
    GS_USED = 0xDF77  # used bytes, 4 bytes
    PIN_STATE = 0xDF78  # container status: PIN set (1 byte 00/01), tries left (1), max tries (1)
    GS_ENTRY = 0xE3  # GP 2.3.1 §11.4.3.2 GlobalPlatform Registry related data
    GS_AID = 0x4F
    GS_LIFECYCLE = 0x9F70
    GS_PRIVILEGES = 0xC5


class ObjectTag(IntEnum):
    """Inside a DATA_OBJECT template."""

    NAME = 0x80
    ACCESS = 0x81
    VALUE = 0x82
    SIZE = 0x83


class AuthorizationTag(IntEnum):
    """Inside an AUTHORIZATION template."""

    PROVIDER_ID = 0x80  # UTF-8, 1..64 bytes
    EXPIRES_AT = 0x81  # Unix seconds, 8 bytes big-endian
    KEY_DATA = 0x82  # PUT KEY data (new KVN || three key components), DEK-encrypted keys


class Access(IntEnum):
    """Access rule of an object in a container (DESIGN.md "Protocol choices")."""

    PUBLIC = 0x00  # anyone who selected the container
    HOLDER = 0x01  # holder PIN verified on this connection
    PROVIDER = 0x02  # SCP03 session opened with the provider's key set
    HOLDER_OR_PROVIDER = 0x03


def _u32(value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise WireError("value out of 32-bit range")
    return value.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class Authorization:
    """Authorization of communication: ``A1 { 80 provider id, 81 expiry, 82 PUT KEY data }``."""

    provider_id: str
    expires_at: int
    key_data: bytes

    def __repr__(self) -> str:
        return f"Authorization(provider_id={self.provider_id!r}, expires_at={self.expires_at})"

    def to_bytes(self) -> bytes:
        pid = self.provider_id.encode()
        if not 1 <= len(pid) <= MAX_PROVIDER_ID:
            raise WireError("provider id must be 1..64 bytes of UTF-8")
        if not 0 <= self.expires_at < 1 << 63:
            raise WireError("expiry out of range")
        return Tlv.of(
            Tag.AUTHORIZATION,
            Tlv(AuthorizationTag.PROVIDER_ID, pid),
            Tlv(AuthorizationTag.EXPIRES_AT, self.expires_at.to_bytes(8, "big")),
            Tlv(AuthorizationTag.KEY_DATA, self.key_data),
        ).to_bytes()

    @classmethod
    def parse(cls, data: bytes) -> Authorization:
        fields = template_fields(Tlv.parse(data), Tag.AUTHORIZATION, "an authorization template")
        try:
            pid_raw, exp, key_data = (
                fields[AuthorizationTag.PROVIDER_ID],
                fields[AuthorizationTag.EXPIRES_AT],
                fields[AuthorizationTag.KEY_DATA],
            )
        except KeyError as exc:
            raise WireError("authorization lacks a field") from exc
        if set(fields) != {AuthorizationTag.PROVIDER_ID, AuthorizationTag.EXPIRES_AT, AuthorizationTag.KEY_DATA}:
            raise WireError("unknown field in authorization")
        if not 1 <= len(pid_raw) <= MAX_PROVIDER_ID or len(exp) != 8 or not key_data:
            raise WireError("authorization field of wrong length")
        try:
            pid = pid_raw.decode()
        except UnicodeDecodeError as exc:
            raise WireError("provider id is not UTF-8") from exc
        return cls(pid, int.from_bytes(exp, "big"), key_data)


@dataclass(frozen=True, slots=True)
class DataObject:
    """A container data object: ``A2 { 80 name, 81 access, 82 value }`` (value omitted in listings,
    where ``83`` gives the size instead)."""

    name: bytes
    access: Access
    value: bytes = b""
    size: int | None = None

    def __repr__(self) -> str:
        return f"DataObject(name={self.name!r}, access={self.access.name}, {len(self.value)} bytes)"

    def to_bytes(self) -> bytes:
        if not 1 <= len(self.name) <= MAX_OBJECT_NAME:
            raise WireError("object name must be 1..64 bytes")
        parts = [Tlv(ObjectTag.NAME, self.name), Tlv(ObjectTag.ACCESS, bytes([self.access]))]
        if self.size is not None:
            parts.append(Tlv(ObjectTag.SIZE, _u32(self.size)))
        else:
            parts.append(Tlv(ObjectTag.VALUE, self.value))
        return Tlv.of(Tag.DATA_OBJECT, *parts).to_bytes()

    @classmethod
    def from_tlv(cls, tlv: Tlv) -> DataObject:
        fields = template_fields(tlv, Tag.DATA_OBJECT, "a data object template")
        name = fields.get(ObjectTag.NAME, b"")
        access = fields.get(ObjectTag.ACCESS, b"")
        if not 1 <= len(name) <= MAX_OBJECT_NAME or len(access) != 1 or access[0] > max(Access):
            raise WireError("bad object name or access rule")
        if not set(fields) <= {ObjectTag.NAME, ObjectTag.ACCESS, ObjectTag.VALUE, ObjectTag.SIZE}:
            raise WireError("unknown field in data object")
        size_raw = fields.get(ObjectTag.SIZE)
        if size_raw is not None and len(size_raw) != 4:
            raise WireError("bad object size")
        return cls(
            name,
            Access(access[0]),
            fields.get(ObjectTag.VALUE, b""),
            None if size_raw is None else int.from_bytes(size_raw, "big"),
        )

    @classmethod
    def parse(cls, data: bytes) -> DataObject:
        return cls.from_tlv(Tlv.parse(data))


def parse_object_list(data: bytes) -> list[DataObject]:
    return [DataObject.from_tlv(t) for t in iter_tlvs(data)]


def object_name_query(name: bytes) -> bytes:
    """GET DATA / DELETE data field naming one object: ``80 name``."""
    if not 1 <= len(name) <= MAX_OBJECT_NAME:
        raise WireError("object name must be 1..64 bytes")
    return Tlv(ObjectTag.NAME, name).to_bytes()


def parse_object_name_query(data: bytes) -> bytes:
    tlv = Tlv.parse(data)
    if tlv.tag != ObjectTag.NAME or not 1 <= len(tlv.value) <= MAX_OBJECT_NAME:
        raise WireError("expected 80 <object name>")
    return tlv.value


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One GET STATUS entry of the ISD (GP 2.3.1 §11.4.3.2 tag E3): AID, lifecycle, provider id, memory."""

    aid: bytes
    lifecycle: LifeCycle
    provider_id: str | None = None
    quota: int | None = None
    reserved: int | None = None
    used: int | None = None

    @property
    def index(self) -> int | None:
        return container_index(self.aid)

    @property
    def is_isd(self) -> bool:
        return self.aid == ISD_AID

    def to_tlv(self) -> Tlv:
        parts = [Tlv(Tag.GS_AID, self.aid), Tlv(Tag.GS_LIFECYCLE, bytes([self.lifecycle]))]
        parts.append(Tlv(Tag.GS_PRIVILEGES, bytes.fromhex("9EFE80") if self.is_isd else b"\x00\x00\x00"))
        if self.provider_id is not None:
            parts.append(Tlv(Tag.GS_PROVIDER_ID, self.provider_id.encode()))
        for tag, value in ((Tag.GS_QUOTA, self.quota), (Tag.GS_RESERVED, self.reserved), (Tag.GS_USED, self.used)):
            if value is not None:
                parts.append(Tlv(tag, _u32(value)))
        return Tlv.of(Tag.GS_ENTRY, *parts)

    def to_bytes(self) -> bytes:
        return self.to_tlv().to_bytes()

    @classmethod
    def from_tlv(cls, tlv: Tlv) -> ContainerInfo:
        fields = template_fields(tlv, Tag.GS_ENTRY, "a GET STATUS E3 entry")
        aid = fields.get(Tag.GS_AID, b"")
        lc = fields.get(Tag.GS_LIFECYCLE, b"")
        if not 5 <= len(aid) <= 16 or len(lc) != 1:
            raise WireError("bad GET STATUS entry")
        pid = fields.get(Tag.GS_PROVIDER_ID)
        ints: list[int | None] = []
        for tag in (Tag.GS_QUOTA, Tag.GS_RESERVED, Tag.GS_USED):
            raw = fields.get(tag)
            if raw is not None and len(raw) != 4:
                raise WireError("bad memory figure")
            ints.append(None if raw is None else int.from_bytes(raw, "big"))
        try:
            provider = None if pid is None else pid.decode()
        except UnicodeDecodeError as exc:
            raise WireError("provider id is not UTF-8") from exc
        return cls(aid, LifeCycle(lc[0]), provider, ints[0], ints[1], ints[2])


def parse_status_entries(data: bytes) -> list[ContainerInfo]:
    return [ContainerInfo.from_tlv(t) for t in iter_tlvs(data)]


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    """GET STATUS P1=80 of a selected container: ``A3 { 4F aid, 9F70 lifecycle, DF75 quota, DF77 used,
    DF78 pin state }``."""

    aid: bytes
    lifecycle: LifeCycle
    quota: int
    used: int
    pin_set: bool
    pin_tries_left: int
    pin_max_tries: int

    def to_bytes(self) -> bytes:
        return Tlv.of(
            Tag.CONTAINER_STATUS,
            Tlv(Tag.GS_AID, self.aid),
            Tlv(Tag.GS_LIFECYCLE, bytes([self.lifecycle])),
            Tlv(Tag.GS_QUOTA, _u32(self.quota)),
            Tlv(Tag.GS_USED, _u32(self.used)),
            Tlv(Tag.PIN_STATE, bytes([int(self.pin_set), self.pin_tries_left, self.pin_max_tries])),
        ).to_bytes()

    @classmethod
    def parse(cls, data: bytes) -> ContainerStatus:
        f = template_fields(Tlv.parse(data), Tag.CONTAINER_STATUS, "a container status template")
        try:
            aid, lc, quota, used, pin = (
                f[Tag.GS_AID],
                f[Tag.GS_LIFECYCLE],
                f[Tag.GS_QUOTA],
                f[Tag.GS_USED],
                f[Tag.PIN_STATE],
            )
        except KeyError as exc:
            raise WireError("container status lacks a field") from exc
        if len(lc) != 1 or len(quota) != 4 or len(used) != 4 or len(pin) != 3:
            raise WireError("container status field of wrong length")
        return cls(
            aid,
            LifeCycle(lc[0]),
            int.from_bytes(quota, "big"),
            int.from_bytes(used, "big"),
            bool(pin[0]),
            pin[1],
            pin[2],
        )


def encode_entries(entries: list[ContainerInfo]) -> bytes:
    return encode_all(e.to_tlv() for e in entries)
