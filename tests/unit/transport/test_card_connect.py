"""The ``card_connect`` fixture: the same test, once per transport, against the echo card and a real device."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tenantcard.client.isd import IsdSession
from tenantcard.device.os import ATR, Device
from tenantcard.device.provision import create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection
from tenantcard.transport.tcp_client import TcpConnection
from tenantcard.transport.tcp_server import DeviceServerThread
from tests.support.transports import TRANSPORTS, CardConnector, EchoSlot, TcpTransport, echo_apdu, parse_echo


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    vault = FileKeyVault(tmp_path / "vault")
    create_device_store(tmp_path / "device.db", dev_spec(2), vault)
    dev = Device.open(tmp_path / "device.db", vault)
    yield dev
    dev.close()


def test_every_transport_is_registered(card_connect: CardConnector) -> None:
    assert card_connect.name in TRANSPORTS
    assert {"inprocess", "tcp"} <= set(TRANSPORTS)


def test_each_connection_is_its_own_session(card_connect: CardConnector) -> None:
    slot = EchoSlot()
    first, second = card_connect(slot), card_connect(slot)
    assert parse_echo(first.transmit(echo_apdu(b"a")))[:3] == (0, 1, b"a")
    assert parse_echo(first.transmit(echo_apdu(b"b")))[:3] == (0, 2, b"b")
    assert parse_echo(second.transmit(echo_apdu(b"c")))[:3] == (1, 1, b"c")
    expected = {"inprocess": LocalConnection, "tcp": TcpConnection}.get(card_connect.name)
    assert expected is None or isinstance(first, expected)


def test_operator_channel_over_each_transport(card_connect: CardConnector, device: Device) -> None:
    conn = card_connect(device)
    assert getattr(conn, "atr", None) == ATR
    isd = IsdSession(conn)
    isd.select()
    assert isd.get_device_id() == device.device_id
    isd.authenticate(gp_test_keys())
    assert [c.index for c in isd.list_containers() if not c.is_isd] == [0, 1]
    # a second connection does not share the first one's channel
    other = IsdSession(card_connect(device))
    other.select()
    assert not other.authenticated


def test_tcp_transport_serves_each_slot_once(device: Device) -> None:
    transport = TcpTransport()
    try:
        assert transport.server(device) is transport.server(device)
        assert transport.address(device).startswith("tcp://127.0.0.1:")
        with TcpConnection(transport.server(device).host, transport.server(device).port) as conn:
            assert conn.atr == ATR
    finally:
        transport.close()


def test_concurrent_secure_channels_over_tcp(device: Device) -> None:
    """Many connections, each with its own SCP03 channel, interleaving commands on one device."""

    def operator(_: int) -> list[list[int | None]]:
        with TcpConnection(server.host, server.port) as conn:
            isd = IsdSession(conn)
            isd.select()
            isd.authenticate(gp_test_keys())
            return [[c.index for c in isd.list_containers() if not c.is_isd] for _ in range(5)]

    with DeviceServerThread(device) as server, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(operator, range(8)))
    assert results == [[[0, 1]] * 5] * 8
