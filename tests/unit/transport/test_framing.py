"""vpcd framing: round trips, control messages, bounds, and garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.transport.base import TransportError
from tenantcard.transport.framing import (
    HEADER_LEN,
    MAX_EXTENDED_APDU,
    MAX_PAYLOAD,
    ApduMessage,
    Control,
    ControlMessage,
    FrameDecoder,
    FramingError,
    decode_frame,
    decode_length,
    decode_message,
    encode_frame,
)

payloads = st.binary(max_size=600)


@given(payloads)
def test_frame_round_trip(payload: bytes) -> None:
    frame = encode_frame(payload)
    assert frame[:HEADER_LEN] == len(payload).to_bytes(2, "big")
    assert decode_frame(frame) == payload


@given(st.lists(payloads, max_size=8), st.lists(st.integers(1, 50), min_size=1, max_size=20))
def test_decoder_reassembles_any_chunking(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(p) for p in frames)
    decoder = FrameDecoder()
    got: list[bytes] = []
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got += decoder.feed(stream[pos : pos + step])
        pos += step
        i += 1
    assert got == frames
    assert decoder.pending == 0


@given(st.binary(max_size=300), st.integers(0, 400))
def test_garbage_only_ever_raises_framing_error(garbage: bytes, limit: int) -> None:
    decoder = FrameDecoder(limit)
    try:
        for payload in decoder.feed(garbage):
            assert len(payload) <= limit
            decode_message(payload)
    except FramingError:
        pass


def test_known_frames_vpcd() -> None:
    # vsmartcard vpcd protocol: 00 01 01 = power on, 00 01 04 = "send your ATR", 00 00 = no card.
    assert ControlMessage(Control.POWER_ON).to_frame() == bytes.fromhex("000101")
    assert ControlMessage(Control.ATR).to_frame() == bytes.fromhex("000104")
    assert ControlMessage(Control.POWER_OFF).to_frame() == bytes.fromhex("000100")
    assert ControlMessage(Control.RESET).to_frame() == bytes.fromhex("000102")
    assert encode_frame(b"") == b"\x00\x00"
    assert ApduMessage(bytes.fromhex("00A40400")).to_frame() == bytes.fromhex("000400A40400")


@pytest.mark.parametrize("value", [0, 1, 2, 4])
def test_one_byte_payload_is_control(value: int) -> None:
    message = decode_message(bytes([value]))
    assert message == ControlMessage(Control(value))
    assert isinstance(message, ControlMessage) and message.control.known


def test_unknown_control_still_parses() -> None:
    message = decode_message(b"\x07")
    assert isinstance(message, ControlMessage)
    assert message.control == 7 and not message.control.known
    assert message.control.name == "UNKNOWN_07"


@pytest.mark.parametrize("payload", [b"", b"\x00\xa4", b"\x00\xa4\x04\x00", bytes(300)])
def test_other_payloads_are_apdus(payload: bytes) -> None:
    assert decode_message(payload) == ApduMessage(payload)


def test_bounds() -> None:
    assert MAX_EXTENDED_APDU == 65544
    frame = encode_frame(bytes(MAX_PAYLOAD))
    assert len(decode_frame(frame)) == MAX_PAYLOAD
    with pytest.raises(FramingError):
        encode_frame(bytes(MAX_PAYLOAD + 1))
    with pytest.raises(FramingError, match="exceeds the limit of 16"):
        decode_length(b"\x00\x11", 16)
    assert decode_length(b"\x00\x10", 16) == 16
    decoder = FrameDecoder(8)
    with pytest.raises(FramingError):
        decoder.feed(b"\x00\x09" + bytes(9))
    assert FrameDecoder(10**6).max_payload == MAX_PAYLOAD
    with pytest.raises(ValueError):
        FrameDecoder(-1)


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\x00\x03ab", b"\x00\x01ab"])
def test_decode_frame_rejects_truncated_or_trailing(raw: bytes) -> None:
    with pytest.raises(FramingError):
        decode_frame(raw)


def test_framing_error_is_transport_error() -> None:
    assert issubclass(FramingError, TransportError)
    with pytest.raises(FramingError, match="2 bytes"):
        decode_length(b"\x00")
