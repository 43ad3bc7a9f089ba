"""The card OS: ATR, class and length checks, SELECT routing, command chaining, GET RESPONSE, sessions per
connection, threads, and failures that must still answer a status word."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.errors import DeviceError, StoreError
from tenantcard.device.os import ATR, Device
from tenantcard.keyvault import FileKeyVault
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.gp import ISD_AID, container_aid
from tenantcard.wire.sw import SW
from tests.unit.device.hostkit import Clock, Host, own

Hosts = Callable[..., Host]


def sw(answer: bytes) -> int:
    return int.from_bytes(answer[-2:], "big")


def test_atr_is_well_formed(device: Device) -> None:
    assert device.atr == ATR
    assert ATR[0] == 0x3B
    tck = 0
    for b in ATR[1:]:
        tck ^= b
    assert tck == 0  # ISO 7816-3 §8.2.5: XOR of T0..TCK is zero
    card = device.connect()
    assert card.power_on() == ATR
    assert card.reset() == ATR


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        (b"", SW.WRONG_LENGTH),
        (b"\x00\xa4", SW.WRONG_LENGTH),
        (b"\x00\xa4\x04\x00\x05\x01", SW.WRONG_LENGTH),
        (b"\x00\xa4\x04\x00\x00\x00", SW.WRONG_LENGTH),
        (b"\x01\xa4\x04\x00", SW.LOGICAL_CHANNEL_NOT_SUPPORTED),
        (b"\xff\xca\x00\x00\x00", SW.CLA_NOT_SUPPORTED),
        (b"\xa0\xa4\x04\x00", SW.CLA_NOT_SUPPORTED),
        (b"\x00\xa4\x00\x00\x02\x3f\x00", SW.INCORRECT_P1P2),
        (b"\x00\xa4\x04\x00\x05\xa0\x00\x00\x00\x09", SW.NOT_FOUND),
        (b"\x00\xc0\x00\x00\x00", SW.CONDITIONS_NOT_SATISFIED),
        (b"\x80\x00\x00\x00", SW.INS_NOT_SUPPORTED),
        (b"\x84\xca\x00\x66\x08" + bytes(8), SW.SECURITY_STATUS_NOT_SATISFIED),
    ],
)
def test_bad_commands_get_defined_status_words(host: Hosts, apdu: bytes, expected: SW) -> None:
    h = host()
    assert sw(h.raw(apdu)) == expected


def test_isd_is_selected_by_default_and_by_empty_select(host: Hosts) -> None:
    h = host()
    assert sw(h.raw(bytes.fromhex("80CA00CF00"))) == SW.OK
    assert h.select_container(0) == SW.OK
    assert sw(h.raw(bytes.fromhex("80CA00CF00"))) == SW.CONDITIONS_NOT_SATISFIED  # an AVAILABLE container
    assert sw(h.raw(bytes.fromhex("00A40400"))) == SW.OK
    assert sw(h.raw(bytes.fromhex("80CA00CF00"))) == SW.OK
    assert h.select(ISD_AID[:-1]) == SW.NOT_FOUND
    assert sw(h.raw(bytes.fromhex("80CA00CF00"))) == SW.COMMAND_NOT_ALLOWED  # nothing selected after a miss


def test_select_without_fci(host: Hosts) -> None:
    h = host()
    assert h.raw(b"\x00\xa4\x04\x0c\x08" + ISD_AID) == b"\x90\x00"


def test_response_chaining_with_get_response(host: Hosts, clock: Clock) -> None:
    _, prov = own(host, 0, clock)
    value = bytes(range(256)) * 3
    from tenantcard.wire.tenant import Access

    assert prov.put_object(b"big", value, Access.PUBLIC) == SW.OK
    h = host()
    h.select_container(0)
    first = h.raw(bytes.fromhex("80CB0000058003626967") + b"\x00")
    assert first[-2] == 0x61 and len(first) == 258
    got = first[:-2]
    remaining = first[-1]
    while True:
        answer = h.raw(bytes([0x00, 0xC0, 0x00, 0x00, remaining]))
        got += answer[:-2]
        if answer[-2] != 0x61:
            assert sw(answer) == SW.OK
            break
        remaining = answer[-1]
    assert got == value
    # Extended Le gets it at once.
    whole = h.raw(bytes.fromhex("80CB000000000580036269670000"))
    assert whole[:-2] == value and sw(whole) == SW.OK
    # Any other command discards what was waiting.
    assert h.raw(bytes.fromhex("80CB0000058003626967") + b"\x00")[-2] == 0x61
    assert sw(h.raw(bytes.fromhex("80CA00CF00"))) != 0x6100
    assert sw(h.raw(b"\x00\xc0\x00\x00\x00")) == SW.CONDITIONS_NOT_SATISFIED


def test_command_chaining(host: Hosts) -> None:
    h = host()
    challenge = bytes(range(40))
    assert h.raw(b"\x10\x88\x00\x00\x14" + challenge[:20]) == b"\x90\x00"
    answer = h.raw(b"\x00\x88\x00\x00\x14" + challenge[20:] + b"\x00")
    assert sw(answer) == SW.OK and len(answer) > 60
    # A chain interrupted by another instruction is refused and forgotten.
    assert h.raw(b"\x10\x88\x00\x00\x10" + bytes(16)) == b"\x90\x00"
    assert sw(h.raw(b"\x00\xca\x00\xcf\x00")) == SW.LAST_COMMAND_EXPECTED
    assert sw(h.raw(b"\x00\xca\x00\xcf\x00")) == SW.OK


def test_sessions_are_per_connection(host: Hosts, operator_keys: StaticKeys) -> None:
    a, b = host(), host()
    a.select_isd()
    assert a.authenticate(operator_keys) == SW.OK
    assert b.select_container(1) == SW.OK
    assert a.get_status().sw == SW.OK  # b's SELECT did not touch a's selection or channel


def test_power_off_drops_the_session(device: Device, operator_keys: StaticKeys) -> None:
    from tenantcard.transport.base import LocalConnection

    conn = LocalConnection(device.connect())
    h = Host(conn)
    h.select_isd()
    assert h.authenticate(operator_keys) == SW.OK
    stolen = h.scp.wrap(CommandApdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", le=256))  # type: ignore[union-attr]
    conn.close()
    conn._card.power_on()
    assert sw(conn.transmit(stolen.to_bytes())) == SW.SECURITY_STATUS_NOT_SATISFIED


def test_commands_from_many_threads(device: Device, host: Hosts, clock: Clock) -> None:
    _, prov = own(host, 0, clock)
    from tenantcard.wire.tenant import Access

    assert prov.put_object(b"shared", b"v" * 100, Access.PUBLIC) == SW.OK
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            h = host()
            for _ in range(30):
                assert h.select_container(0) == SW.OK
                assert h.get_object(b"shared").data == b"v" * 100
                assert h.select_isd() == SW.OK
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    device.check()


def test_connect_errors(device: Device) -> None:
    with pytest.raises(DeviceError):
        device.connect(99)
    card = device.connect()
    scoped = device.connect(0)
    device.close()
    with pytest.raises(DeviceError):
        device.connect()
    assert sw(card.execute(b"\x80\xca\x00\xcf\x00")) == SW.MEMORY_FAILURE
    assert scoped.power_on() == ATR  # a store failure at power-on selects nothing, and raises nothing
    assert sw(scoped.execute(b"\x80\xca\x00\xcf\x00")) == SW.COMMAND_NOT_ALLOWED


def test_open_errors(tmp_path: Path, store_path: Path) -> None:
    with pytest.raises(StoreError):
        Device.open(tmp_path / "missing.db", FileKeyVault(tmp_path / "k"))
    with pytest.raises(StoreError):
        Device.open(store_path, FileKeyVault(tmp_path / "other"))


def test_container_indexes(device: Device) -> None:
    assert device.container_indexes() == [0, 1, 2]
    assert container_aid(2) == bytes.fromhex("F07463000002")
