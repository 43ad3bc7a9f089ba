"""Status words (ISO 7816-4 §5.6) and the card-side ApduError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.wire.sw import SW, ApduError


def test_known_values() -> None:
    assert SW(0x9000) is SW.OK
    assert SW.OK.to_bytes() == b"\x90\x00"
    assert (SW.NOT_FOUND.sw1, SW.NOT_FOUND.sw2) == (0x6A, 0x82)


def test_retries_and_remaining() -> None:
    assert SW.retries(3) == 0x63C3
    assert SW.retries(-2) == 0x63C0 and SW.retries(99) == 0x63CF
    assert SW.bytes_remaining(0x10) == 0x6110
    assert SW.bytes_remaining(256) == 0x6100 and SW.bytes_remaining(1000) == 0x6100


@given(value=st.integers(0, 0xFFFF))
def test_every_value_parses(value: int) -> None:
    sw = SW(value)
    assert int(sw) == value
    assert sw.to_bytes() == value.to_bytes(2, "big")
    assert (sw.sw1 << 8) | sw.sw2 == value
    assert sw.name


@pytest.mark.parametrize("value", [-1, 0x10000, "9000"])
def test_out_of_range(value: object) -> None:
    with pytest.raises(ValueError):
        SW(value)  # type: ignore[arg-type]


def test_apdu_error() -> None:
    err = ApduError(0x6982)
    assert err.sw is SW.SECURITY_STATUS_NOT_SATISFIED
    assert str(err) == "SECURITY_STATUS_NOT_SATISFIED"
    assert str(ApduError(SW.WRONG_LENGTH, "host challenge length")) == "host challenge length"
