"""BER-TLV (ISO 7816-4 §5.2, ISO 8825-1): multi-byte tags, definite lengths up to four bytes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tenantcard.wire.errors import WireError

MAX_NESTING = 16


def encode_tag(tag: int) -> bytes:
    if tag < 0:
        raise WireError("negative tag")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_length(length: int) -> bytes:
    """ISO 8825-1 §8.1.3 definite form."""
    if length < 0:
        raise WireError("negative length")
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(body) > 4:
        raise WireError("length needs more than four bytes")
    return bytes([0x80 | len(body)]) + body


def _read_tag(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise WireError("truncated tag")
    first = buf[pos]
    pos += 1
    tag = first
    if first & 0x1F == 0x1F:  # subsequent tag bytes, b8 set while more follow (ISO 8825-1 §8.1.2.4)
        for count in range(3):
            if pos >= len(buf):
                raise WireError("truncated multi-byte tag")
            b = buf[pos]
            pos += 1
            tag = (tag << 8) | b
            if not b & 0x80:
                break
            if count == 2:
                raise WireError("tag longer than four bytes")
    return tag, pos


def _read_length(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise WireError("truncated length")
    first = buf[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    n = first & 0x7F
    if n == 0 or n > 4:
        raise WireError("indefinite or oversized length")
    if pos + n > len(buf):
        raise WireError("truncated length")
    return int.from_bytes(buf[pos : pos + n], "big"), pos + n


def is_constructed(tag: int) -> bool:
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


@dataclass(frozen=True, slots=True)
class Tlv:
    """One BER-TLV data object."""

    tag: int
    value: bytes = b""

    def to_bytes(self) -> bytes:
        return encode_tag(self.tag) + encode_length(len(self.value)) + self.value

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    def children(self) -> list[Tlv]:
        """The objects inside a constructed object."""
        return parse_all(self.value)

    @classmethod
    def of(cls, tag: int, *children: Tlv | bytes) -> Tlv:
        """Build from raw bytes and/or nested objects."""
        return cls(tag, b"".join(bytes(c) for c in children))

    @classmethod
    def parse_one(cls, buf: bytes, pos: int = 0) -> tuple[Tlv, int]:
        """Parse the object starting at ``pos``; returns it and the position after it."""
        tag, pos = _read_tag(buf, pos)
        length, pos = _read_length(buf, pos)
        end = pos + length
        if end > len(buf):
            raise WireError("value runs past the end of the data")
        return cls(tag, bytes(buf[pos:end])), end

    @classmethod
    def parse(cls, buf: bytes) -> Tlv:
        """Parse exactly one object; trailing bytes are an error."""
        tlv, end = cls.parse_one(buf)
        if end != len(buf):
            raise WireError("trailing bytes after TLV")
        return tlv


def iter_tlvs(buf: bytes) -> Iterator[Tlv]:
    pos = 0
    while pos < len(buf):
        if buf[pos] in (0x00, 0xFF):  # ISO 7816-4 §5.2: padding between objects
            pos += 1
            continue
        tlv, pos = Tlv.parse_one(buf, pos)
        yield tlv


def parse_all(buf: bytes) -> list[Tlv]:
    return list(iter_tlvs(buf))


def encode_all(tlvs: Iterable[Tlv]) -> bytes:
    return b"".join(t.to_bytes() for t in tlvs)


def find(buf_or_tlvs: bytes | Iterable[Tlv], tag: int, *, depth: int = MAX_NESTING) -> Tlv | None:
    """First object with ``tag``, searching constructed objects recursively."""
    tlvs = parse_all(buf_or_tlvs) if isinstance(buf_or_tlvs, bytes | bytearray) else buf_or_tlvs
    for t in tlvs:
        if t.tag == tag:
            return t
        if t.constructed and depth > 0:
            found = find(t.value, tag, depth=depth - 1)
            if found is not None:
                return found
    return None


def as_dict(buf: bytes) -> dict[int, bytes]:
    """Top-level objects by tag; a repeated tag is an error (unambiguous templates only)."""
    out: dict[int, bytes] = {}
    for t in iter_tlvs(buf):
        if t.tag in out:
            raise WireError(f"tag {t.tag:X} repeated")
        out[t.tag] = t.value
    return out


def template_fields(tlv: Tlv, tag: int, what: str) -> dict[int, bytes]:
    """The fields (``as_dict``) of a template that must have ``tag``; else WireError "not ``what``"."""
    if tlv.tag != tag:
        raise WireError(f"not {what}")
    return as_dict(tlv.value)
