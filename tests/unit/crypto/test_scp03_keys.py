"""Static key sets, KCVs and PUT KEY key data (GP 2.3.1 §11.8.2.3): good data round-trips, bad data is KeyDataError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.crypto.errors import KeyDataError
from tenantcard.crypto.scp03 import (
    PutKeyCommand,
    StaticKeys,
    decrypt_key_data,
    encrypt_key_data,
    kcv,
    put_key_response,
)

LENGTHS = [16, 24, 32]


def fixed_random(n: int) -> bytes:
    return bytes(range(n))


@pytest.mark.parametrize("length", LENGTHS)
def test_generate_uses_the_injected_randomness(length: int) -> None:
    keys = StaticKeys.generate(0x31, length, random=fixed_random)
    assert keys.enc == keys.mac == keys.dek == bytes(range(length))
    assert keys.kvn == 0x31 and keys.length == length


def test_generate_defaults_to_distinct_random_keys() -> None:
    a, b = StaticKeys.generate(1), StaticKeys.generate(1)
    assert a != b and len({a.enc, a.mac, a.dek}) == 3


@pytest.mark.parametrize(
    ("enc", "mac", "dek", "kvn"),
    [
        (bytes(15), bytes(16), bytes(16), 1),
        (bytes(16), bytes(24), bytes(16), 1),
        (bytes(33), bytes(33), bytes(33), 1),
        (bytes(16), bytes(16), bytes(16), 256),
        (bytes(16), bytes(16), bytes(16), -1),
    ],
)
def test_invalid_key_sets(enc: bytes, mac: bytes, dek: bytes, kvn: int) -> None:
    with pytest.raises(KeyDataError):
        StaticKeys(enc, mac, dek, kvn)


def test_equality_and_with_kvn() -> None:
    keys = StaticKeys.generate(1, random=fixed_random)
    assert keys == StaticKeys(keys.enc, keys.mac, keys.dek, 1)
    assert keys != keys.with_kvn(2)
    assert keys.with_kvn(2).kvn == 2
    assert hash(keys) == hash(StaticKeys(keys.enc, keys.mac, keys.dek, 1))


def test_repr_hides_key_bytes() -> None:
    keys = StaticKeys(b"\x11" * 16, b"\x22" * 16, b"\x33" * 16, 0x40)
    for text in (repr(keys), str(keys), f"{keys}"):
        assert "11111111" not in text and "\\x11" not in text and "\\x22" not in text
    put = PutKeyCommand.for_keys(keys, b"\x44" * 16)
    assert "\\x" not in repr(put.components[0])


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("long_form", [True, False], ids=["88-11-10", "88-10"])
def test_put_key_round_trip(length: int, long_form: bool) -> None:
    if length == 24 and not long_form:
        with pytest.raises(KeyDataError):
            PutKeyCommand.for_keys(StaticKeys.generate(0x31, 24), bytes(16), long_form=False)
        return
    old = StaticKeys.generate(0x30, length)
    new = StaticKeys.generate(0x31, length)
    cmd = PutKeyCommand.for_keys(new, old.dek, replace_kvn=0x30, long_form=long_form)
    parsed = PutKeyCommand.parse(cmd.p1, cmd.p2, cmd.to_data())
    assert parsed == cmd
    assert parsed.replaces == 0x30 and parsed.new_kvn == 0x31
    assert parsed.decrypt(old.dek) == new
    assert parsed.decrypt(old.dek, kvn=0x35).kvn == 0x35
    assert put_key_response(new) == bytes([0x31]) + kcv(new.enc) + kcv(new.mac) + kcv(new.dek)


def test_wrong_dek_is_a_kcv_mismatch() -> None:
    new = StaticKeys.generate(0x31)
    cmd = PutKeyCommand.for_keys(new, bytes(16))
    with pytest.raises(KeyDataError, match="key check value mismatch"):
        cmd.decrypt(b"\x01" * 16)


@pytest.mark.parametrize("component", [0, 1, 2])
def test_each_kcv_is_checked(component: int) -> None:
    dek = bytes(16)
    data = bytearray(PutKeyCommand.for_keys(StaticKeys.generate(0x31), dek).to_data())
    data[1 + 23 * component + 22] ^= 0x01  # last KCV byte of that component
    cmd = PutKeyCommand.parse(0, 0x81, bytes(data))
    with pytest.raises(KeyDataError):
        cmd.decrypt(dek)


@pytest.mark.parametrize(
    ("p1", "p2", "mutate"),
    [
        (0, 0x01, lambda d: d),  # P2 b8 clear: a single key
        (0x80, 0x81, lambda d: d),  # P1 out of range
        (0, 0x81, lambda d: b""),
        (0, 0x81, lambda d: b"\x00" + d[1:]),  # new KVN 00
        (0, 0x81, lambda d: d[:-1]),  # truncated KCV
        (0, 0x81, lambda d: d + b"\x00"),  # trailing byte
        (0, 0x81, lambda d: d[:47]),  # two keys only
        (0, 0x81, lambda d: d[:1] + b"\x80" + d[2:]),  # DES key type
        (0, 0x81, lambda d: d[:2] + b"\x12" + d[3:]),  # component length off
        (0, 0x81, lambda d: d[:21] + b"\x04" + d[22:]),  # KCV length 4
    ],
)
def test_malformed_put_key(p1: int, p2: int, mutate: object) -> None:
    data = PutKeyCommand.for_keys(StaticKeys.generate(0x31), bytes(16)).to_data()
    assert callable(mutate)
    with pytest.raises(KeyDataError):
        PutKeyCommand.parse(p1, p2, mutate(data)).decrypt(bytes(16))


def test_mixed_key_lengths_are_refused() -> None:
    a = PutKeyCommand.for_keys(StaticKeys.generate(0x31, 16), bytes(16))
    b = PutKeyCommand.for_keys(StaticKeys.generate(0x31, 32), bytes(16))
    data = bytes([0x31]) + a.components[0].to_bytes() + a.components[1].to_bytes() + b.components[2].to_bytes()
    with pytest.raises(KeyDataError):
        PutKeyCommand.parse(0, 0x81, data)


@given(p1=st.integers(0, 255), p2=st.integers(0, 255), data=st.binary(max_size=120))
def test_garbage_put_key_only_raises_key_data_error(p1: int, p2: int, data: bytes) -> None:
    try:
        cmd = PutKeyCommand.parse(p1, p2, data)
    except KeyDataError:
        return
    assert cmd.to_data() == data  # what parses, re-serializes to the same bytes
    with pytest.raises(KeyDataError):  # random KCVs do not match (odds 2**-72 per key set)
        cmd.decrypt(bytes(16))


@given(key=st.sampled_from(LENGTHS).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_key_data_round_trip(key: bytes) -> None:
    dek = bytes(range(16))
    encrypted = encrypt_key_data(dek, key)
    assert len(encrypted) == 16 * -(-len(key) // 16)
    assert decrypt_key_data(dek, encrypted, len(key)) == key
    assert encrypted[: len(key)] != key


@pytest.mark.parametrize("bad", [b"", bytes(15), bytes(17)])
def test_bad_key_data_lengths(bad: bytes) -> None:
    with pytest.raises(KeyDataError):
        decrypt_key_data(bytes(16), bad)
    with pytest.raises(KeyDataError):
        kcv(bad)
