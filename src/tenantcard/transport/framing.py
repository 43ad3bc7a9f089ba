"""The vsmartcard vpcd framing, used by the device's TCP endpoint and by its PC/SC bridge.

vsmartcard vpcd protocol (vpcd.c, vsmartcard 3.3): every message is a 2-byte big-endian length followed by
that many bytes of payload. A 1-byte payload is a control message (power off, power on, reset, "send your
ATR"); only "send your ATR" gets a reply, and a 0-length reply means "no card". Any other payload is a
C-APDU, answered by exactly one R-APDU.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from tenantcard.transport.base import TransportError

HEADER_LEN = 2
MAX_PAYLOAD = 0xFFFF  # the most a 2-byte length can announce
# The largest extended-length C-APDU (ISO 7816-4 §5.1: 4 header + 3 Lc + 65535 data + 2 Le); as a bound it
# admits every frame the 2-byte length can announce.
MAX_EXTENDED_APDU = 4 + 3 + 0xFFFF + 2

_LENGTH = struct.Struct(">H")


class FramingError(TransportError):
    """A frame that breaks the vpcd framing: too long, truncated, or a stream that ended mid-frame."""


class Control(IntEnum):
    """vpcd control messages (vsmartcard vpcd.h: VPCD_CTRL_OFF/ON/RESET/ATR). Unknown values still parse."""

    POWER_OFF = 0
    POWER_ON = 1
    RESET = 2
    ATR = 4

    @classmethod
    def _missing_(cls, value: object) -> Control | None:
        if not isinstance(value, int) or not 0 <= value <= 0xFF:
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value:02X}"
        member._value_ = value
        return member

    @property
    def known(self) -> bool:
        return self._name_ in type(self).__members__


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A 1-byte control payload."""

    control: Control

    def to_payload(self) -> bytes:
        return bytes([self.control])

    def to_frame(self) -> bytes:
        return encode_frame(self.to_payload())


@dataclass(frozen=True, slots=True)
class ApduMessage:
    """Any payload that is not 1 byte long: a C-APDU towards the card, or an R-APDU / ATR back from it."""

    payload: bytes

    def to_payload(self) -> bytes:
        return self.payload

    def to_frame(self) -> bytes:
        return encode_frame(self.payload)


Message = ControlMessage | ApduMessage


def decode_message(payload: bytes) -> Message:
    """Classify a C-side payload (vpcd -> card): 1 byte is a control message, anything else a C-APDU."""
    if len(payload) == 1:
        return ControlMessage(Control(payload[0]))
    return ApduMessage(bytes(payload))


def encode_frame(payload: bytes) -> bytes:
    """Length prefix + payload. Raises ``FramingError`` when the payload cannot be announced in 2 bytes."""
    if len(payload) > MAX_PAYLOAD:
        raise FramingError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte frame limit")
    return _LENGTH.pack(len(payload)) + payload


def decode_length(header: bytes, max_payload: int = MAX_PAYLOAD) -> int:
    """The payload length announced by a 2-byte header; ``FramingError`` when above ``max_payload``."""
    if len(header) != HEADER_LEN:
        raise FramingError("frame header must be 2 bytes")
    (length,) = _LENGTH.unpack(header)
    if length > max_payload:
        raise FramingError(f"frame of {length} bytes exceeds the limit of {max_payload}")
    return int(length)


def decode_frame(raw: bytes, max_payload: int = MAX_PAYLOAD) -> bytes:
    """The payload of exactly one complete frame; ``FramingError`` when truncated, too long or followed by
    extra bytes."""
    length = decode_length(raw[:HEADER_LEN], max_payload) if len(raw) >= HEADER_LEN else None
    if length is None or len(raw) < HEADER_LEN + length:
        raise FramingError("truncated frame")
    if len(raw) > HEADER_LEN + length:
        raise FramingError("bytes after the end of the frame")
    return bytes(raw[HEADER_LEN:])


class FrameDecoder:
    """Incremental decoder for a byte stream: ``feed`` returns every payload completed so far.

    After a ``FramingError`` (oversized frame) the stream cannot be resynchronized: close the connection.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        if max_payload < 0:
            raise ValueError("max_payload must not be negative")
        self.max_payload = min(max_payload, MAX_PAYLOAD)
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        if not self._buf and len(data) >= HEADER_LEN:
            # The usual case on a request/response link: one whole frame in one segment, nothing buffered.
            length = decode_length(data[:HEADER_LEN], self.max_payload)
            if len(data) == HEADER_LEN + length:
                return [bytes(data[HEADER_LEN:])]
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= HEADER_LEN:
            length = decode_length(bytes(self._buf[:HEADER_LEN]), self.max_payload)
            end = HEADER_LEN + length
            if len(self._buf) < end:
                break
            out.append(bytes(self._buf[HEADER_LEN:end]))
            del self._buf[:end]
        return out

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame (non-zero at end of stream = truncated)."""
        return len(self._buf)
