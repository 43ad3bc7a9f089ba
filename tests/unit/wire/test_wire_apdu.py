"""ISO 7816-4 command and response APDUs: every case, short and extended, chaining, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.wire.apdu import CLA_CHAINING, CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.sw import SW

# ISO 7816-3 §12.1 / ISO 7816-4 §5.1 encodings, one per case.
CASES = [
    ("short-1", "00A40400", CommandApdu(0x00, 0xA4, 0x04, 0x00), 1),
    ("short-2", "00CA006600", CommandApdu(0x00, 0xCA, 0x00, 0x66, le=256), 2),
    ("short-2-le", "00CA006610", CommandApdu(0x00, 0xCA, 0x00, 0x66, le=16), 2),
    ("short-3", "00A4040003A00001", CommandApdu(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00\x01"), 3),
    ("short-4", "00A4040003A0000100", CommandApdu(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00\x01", 256), 4),
    ("ext-2", "00CA0066000100", CommandApdu(0x00, 0xCA, 0x00, 0x66, le=256, extended=True), 2),
    ("ext-2-max", "00CA0066000000", CommandApdu(0x00, 0xCA, 0x00, 0x66, le=65536), 2),
    ("ext-3", "80E2000000000201FF", CommandApdu(0x80, 0xE2, 0x00, 0x00, b"\x01\xff", extended=True), 3),
    ("ext-4", "80E2000000000201FF0000", CommandApdu(0x80, 0xE2, 0x00, 0x00, b"\x01\xff", 65536), 4),
]


@pytest.mark.parametrize(("raw", "apdu", "case"), [pytest.param(r, a, c, id=i) for i, r, a, c in CASES])
def test_known_encodings(raw: str, apdu: CommandApdu, case: int) -> None:
    parsed = CommandApdu.parse(bytes.fromhex(raw))
    assert parsed == apdu
    assert parsed.case == case
    assert parsed.to_bytes() == bytes.fromhex(raw)
    assert bytes(parsed) == bytes.fromhex(raw)
    assert parsed.extended == (len(raw) > 10 and raw[8:10] == "00")


@pytest.mark.parametrize(
    "raw",
    ["", "00", "00A404", "00A4040002A0", "00A4040002A0000102", "00A404000001", "00A404000000", "00A40400000002A0"],
    ids=["empty", "1", "3", "lc-short", "lc-long", "ext-truncated", "ext-lc-0", "ext-lc-mismatch"],
)
def test_malformed_commands(raw: str) -> None:
    with pytest.raises(WireError):
        CommandApdu.parse(bytes.fromhex(raw))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cla": 256, "ins": 0, "p1": 0, "p2": 0},
        {"cla": 0, "ins": -1, "p1": 0, "p2": 0},
        {"cla": 0, "ins": 0, "p1": 0, "p2": 0, "le": 0},
        {"cla": 0, "ins": 0, "p1": 0, "p2": 0, "le": 65537},
        {"cla": 0, "ins": 0, "p1": 0, "p2": 0, "data": bytes(65536)},
    ],
)
def test_invalid_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(WireError):
        CommandApdu(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [255, 256, 65535])
@pytest.mark.parametrize("le", [None, 1, 256, 257, 65536])
def test_length_boundaries(size: int, le: int | None) -> None:
    apdu = CommandApdu(0x80, 0xE2, 0x00, 0x00, bytes(size), le)
    raw = apdu.to_bytes()
    assert CommandApdu.parse(raw) == apdu
    assert len(raw) == 4 + (1 + size if not apdu.needs_extended else 3 + size) + (
        0 if le is None else (1 if not apdu.needs_extended else 2)
    )


def test_short_encoding_refused_when_extended_is_needed() -> None:
    apdu = CommandApdu(0x00, 0xDA, 0, 0, bytes(256))
    assert apdu.needs_extended
    with pytest.raises(WireError):
        apdu.to_bytes(extended=False)
    assert apdu.to_bytes()[4:7] == b"\x00\x01\x00"
    assert CommandApdu(0, 0xB0, 0, 0, le=257).to_bytes() == bytes.fromhex("00B00000000101")


def test_extended_flag_does_not_take_part_in_equality() -> None:
    short = CommandApdu(0x00, 0xCA, 0x00, 0x66, le=256)
    ext = CommandApdu.parse(short.to_bytes(extended=True))
    assert ext.extended and not short.extended
    assert ext == short
    assert ext.to_bytes() != short.to_bytes()
    assert ext.to_bytes(extended=False) == short.to_bytes()


commands = st.builds(
    CommandApdu,
    cla=st.integers(0, 255),
    ins=st.integers(0, 255),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=300),
    le=st.none() | st.integers(1, 65536),
)


@given(apdu=commands, extended=st.booleans())
def test_command_round_trip(apdu: CommandApdu, extended: bool) -> None:
    ext = extended or apdu.needs_extended
    raw = apdu.to_bytes(extended=ext)
    parsed = CommandApdu.parse(raw)
    assert parsed == apdu
    assert parsed.case == apdu.case
    assert parsed.extended == (ext and apdu.case != 1)
    assert parsed.to_bytes() == raw


@given(
    raw=st.binary(max_size=300)
    | st.builds(lambda h, b: h + b"\x00" + b, st.binary(min_size=4, max_size=4), st.binary(max_size=40))
)
def test_garbage_commands_raise_only_wire_error(raw: bytes) -> None:
    try:
        parsed = CommandApdu.parse(raw)
    except WireError:
        return
    assert parsed.to_bytes() == raw  # every accepted encoding is canonical


@given(apdu=commands, max_data=st.integers(1, 255))
def test_command_chaining_split(apdu: CommandApdu, max_data: int) -> None:
    parts = list(apdu.chained(max_data))
    assert b"".join(p.data for p in parts) == apdu.data
    assert parts[-1].cla == apdu.cla and parts[-1].le == apdu.le
    for part in parts[:-1]:
        assert part.cla == apdu.cla | CLA_CHAINING
        assert part.le is None
        assert len(part.data) == max_data
        assert part.is_chained
        assert (part.ins, part.p1, part.p2) == (apdu.ins, apdu.p1, apdu.p2)
    assert len(parts[-1].data) <= max_data or len(parts) == 1
    assert len(parts) == max(1, -(-len(apdu.data) // max_data))


def test_response_parse_and_serialize() -> None:
    resp = ResponseApdu.parse(bytes.fromhex("01029000"))
    assert resp == ResponseApdu(b"\x01\x02", SW.OK)
    assert resp.ok and (resp.sw1, resp.sw2) == (0x90, 0x00)
    assert bytes(resp) == bytes.fromhex("01029000")
    assert ResponseApdu.of(0x6A82) == ResponseApdu(b"", SW.NOT_FOUND)
    assert not ResponseApdu.of(SW.NOT_FOUND).ok
    odd = ResponseApdu.parse(bytes.fromhex("6FAB"))
    assert odd.sw == 0x6FAB and odd.sw.name == "SW_6FAB"


@given(raw=st.binary(max_size=600))
def test_response_round_trip_or_wire_error(raw: bytes) -> None:
    try:
        resp = ResponseApdu.parse(raw)
    except WireError:
        assert len(raw) < 2
        return
    assert resp.to_bytes() == raw
    assert resp.sw.to_bytes() == raw[-2:]
