"""tenantcard's own data formats (wire.tenant): round trips, and garbage that raises only WireError."""

from __future__ import annotations

import contextlib

import hypothesis.strategies as st
import pytest
from hypothesis import given

from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import LifeCycle, container_aid
from tenantcard.wire.tenant import (
    Access,
    Authorization,
    ContainerInfo,
    ContainerStatus,
    DataObject,
    encode_entries,
    object_name_query,
    parse_object_list,
    parse_object_name_query,
    parse_status_entries,
)

names = st.binary(min_size=1, max_size=64)
provider_ids = st.text(min_size=1, max_size=16)


@given(provider_ids, st.integers(0, 2**40), st.binary(min_size=1, max_size=200))
def test_authorization_round_trip(provider: str, expires: int, key_data: bytes) -> None:
    auth = Authorization(provider, expires, key_data)
    assert Authorization.parse(auth.to_bytes()) == auth
    assert repr(key_data) not in repr(auth)


@given(names, st.sampled_from(list(Access)), st.binary(max_size=300))
def test_data_object_round_trip(name: bytes, access: Access, value: bytes) -> None:
    obj = DataObject(name, access, value)
    assert DataObject.parse(obj.to_bytes()) == obj
    listed = DataObject(name, access, size=len(value))
    assert parse_object_list(listed.to_bytes() * 2) == [listed, listed]
    assert parse_object_name_query(object_name_query(name)) == name


@given(
    st.integers(0, 0xFFFF),
    st.sampled_from(list(LifeCycle)),
    st.one_of(st.none(), provider_ids),
    st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)
def test_status_entry_round_trip(index: int, lc: LifeCycle, provider: str | None, quota: int | None) -> None:
    info = ContainerInfo(container_aid(index), lc, provider, quota, quota, quota)
    assert parse_status_entries(encode_entries([info, info])) == [info, info]
    assert info.index == index


def test_container_status_round_trip() -> None:
    status = ContainerStatus(container_aid(3), LifeCycle.PERSONALIZED, 4096, 100, True, 2, 3)
    assert ContainerStatus.parse(status.to_bytes()) == status


@given(st.binary(max_size=120))
def test_garbage_raises_only_wire_error(data: bytes) -> None:
    for parse in (
        Authorization.parse,
        DataObject.parse,
        parse_object_list,
        parse_object_name_query,
        parse_status_entries,
        ContainerStatus.parse,
    ):
        with contextlib.suppress(WireError):  # anything else escaping fails the test
            parse(data)


@pytest.mark.parametrize(
    "bad",
    [
        Authorization("", 1, b"k"),
        Authorization("x" * 65, 1, b"k"),
        Authorization("p", -1, b"k"),
        DataObject(b"", Access.PUBLIC, b"v"),
        DataObject(b"n" * 65, Access.PUBLIC, b"v"),
    ],
)
def test_out_of_range_values_do_not_serialize(bad: Authorization | DataObject) -> None:
    with pytest.raises(WireError):
        bad.to_bytes()


def test_authorization_rejects_unknown_or_missing_fields() -> None:
    good = Authorization("p", 10, b"k").to_bytes()
    with pytest.raises(WireError):
        Authorization.parse(good[:-1])
    with pytest.raises(WireError):
        Authorization.parse(bytes([0xA1, good[1] + 3]) + good[2:] + b"\x83\x01\x00")
    with pytest.raises(WireError):
        Authorization.parse(b"\xa2" + good[1:])
    with pytest.raises(WireError, match="UTF-8"):
        Authorization.parse(bytes.fromhex("A1 11 8002FFFE 81080000000000000001 8201AA"))
