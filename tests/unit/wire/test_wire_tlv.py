"""BER-TLV (ISO 7816-4 §5.2, ISO 8825-1): tags, lengths, nesting, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.wire import tlv
from tenantcard.wire.errors import WireError
from tenantcard.wire.tlv import Tlv


@pytest.mark.parametrize(
    ("length", "encoded"),
    [(0, "00"), (0x7F, "7F"), (0x80, "8180"), (0xFF, "81FF"), (0x100, "820100"), (0x10000, "83010000")],
)
def test_length_encoding(length: int, encoded: str) -> None:
    assert tlv.encode_length(length) == bytes.fromhex(encoded)


@pytest.mark.parametrize(("tag", "encoded"), [(0x4F, "4F"), (0x5F49, "5F49"), (0xBF3E, "BF3E"), (0x9F7F, "9F7F")])
def test_tag_encoding(tag: int, encoded: str) -> None:
    assert tlv.encode_tag(tag) == bytes.fromhex(encoded)
    assert Tlv.parse(bytes.fromhex(encoded) + b"\x00").tag == tag


def test_negative_or_huge_values_refused() -> None:
    with pytest.raises(WireError):
        tlv.encode_tag(-1)
    with pytest.raises(WireError):
        tlv.encode_length(-1)
    with pytest.raises(WireError):
        tlv.encode_length(1 << 32)


def test_constructed_and_children() -> None:
    key_info = Tlv.of(0xE0, Tlv.of(0xC0, b"\x01\x30\x88\x10"), Tlv.of(0xC0, b"\x02\x30\x88\x10"))
    assert key_info.constructed and not Tlv(0xC0).constructed
    assert Tlv(0xBF21).constructed and not Tlv(0x9F7F).constructed
    assert [c.value for c in key_info.children()] == [b"\x01\x30\x88\x10", b"\x02\x30\x88\x10"]
    assert Tlv.parse(bytes(key_info)) == key_info
    assert tlv.find(bytes(key_info), 0xC0) == Tlv(0xC0, b"\x01\x30\x88\x10")
    assert tlv.find(bytes(key_info), 0xC1) is None
    assert tlv.find([key_info], 0xC0) == Tlv(0xC0, b"\x01\x30\x88\x10")


def test_find_respects_depth() -> None:
    nested = Tlv.of(0xE1, Tlv.of(0xE2, Tlv(0x80, b"x")))
    assert tlv.find(bytes(nested), 0x80) == Tlv(0x80, b"x")
    assert tlv.find(bytes(nested), 0x80, depth=1) is None


def test_padding_between_objects_and_as_dict() -> None:
    buf = b"\x00" + bytes(Tlv(0x4F, b"\xa0")) + b"\xff\xff" + bytes(Tlv(0x9F70, b"\x07"))
    assert tlv.parse_all(buf) == [Tlv(0x4F, b"\xa0"), Tlv(0x9F70, b"\x07")]
    assert tlv.as_dict(buf) == {0x4F: b"\xa0", 0x9F70: b"\x07"}
    with pytest.raises(WireError):
        tlv.as_dict(bytes(Tlv(0x4F)) * 2)
    assert tlv.encode_all([Tlv(0x4F, b"\xa0"), Tlv(0x80)]) == bytes.fromhex("4F01A08000")


@pytest.mark.parametrize(
    "raw",
    ["", "4F", "4F02A0", "4F80", "4F85FFFFFFFFFF", "4F8201", "1F", "1F81", "1F818181", "1F81818101", "4F0100AA"],
    ids=[
        "empty",
        "no-length",
        "short-value",
        "indefinite",
        "5-byte-length",
        "truncated-length",
        "truncated-tag",
        "truncated-tag-2",
        "tag-too-long",
        "tag-5-bytes",
        "trailing",
    ],
)
def test_malformed(raw: str) -> None:
    with pytest.raises(WireError):
        Tlv.parse(bytes.fromhex(raw))


# ISO 7816-4 §5.2: '00' and 'FF' are padding, never the first byte of a tag.
tags = st.one_of(
    st.integers(0x01, 0xFE).filter(lambda t: t & 0x1F != 0x1F),
    st.builds(lambda a, b: (a << 8) | b, st.integers(0, 6).map(lambda c: (c << 5) | 0x1F), st.integers(0x1F, 0x7F)),
    st.builds(
        lambda a, b, c: (a << 16) | (b << 8) | c,
        st.integers(0, 6).map(lambda c: (c << 5) | 0x1F),
        st.integers(0x81, 0xFF),
        st.integers(0x00, 0x7F),
    ),
)


@pytest.mark.parametrize("size", [0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000])
def test_length_boundaries(size: int) -> None:
    obj = Tlv(0x53, bytes(size))
    assert Tlv.parse(obj.to_bytes()) == obj


@given(tag=tags, value=st.binary(max_size=300))
def test_round_trip(tag: int, value: bytes) -> None:
    obj = Tlv(tag, value)
    raw = obj.to_bytes()
    assert Tlv.parse(raw) == obj
    assert Tlv.parse_one(raw + b"\x9f", 0) == (obj, len(raw))


@given(children=st.lists(st.builds(Tlv, tags, st.binary(max_size=40)), max_size=6))
def test_nested_round_trip(children: list[Tlv]) -> None:
    parent = Tlv.of(0x70, *children)
    assert Tlv.parse(bytes(parent)).children() == children
    assert tlv.parse_all(tlv.encode_all(children)) == children


@given(raw=st.binary(max_size=200))
def test_garbage_raises_only_wire_error(raw: bytes) -> None:
    try:
        objects = tlv.parse_all(raw)
    except WireError:
        return
    for obj in objects:
        assert Tlv.parse(obj.to_bytes()) == obj
        if obj.constructed:
            try:
                children = obj.children()
            except WireError:
                continue
            assert all(Tlv.parse(c.to_bytes()) == c for c in children)
