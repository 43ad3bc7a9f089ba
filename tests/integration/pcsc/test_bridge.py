"""The vpcd bridge against the real pcscd + vsmartcard vpcd, with pyscard and OpenSC on the host side."""

from __future__ import annotations

import logging
import socket
import statistics
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tenantcard.transport.pcsc_bridge import BridgeError, VpcdBridge, parse_pcsc_target
from tenantcard.transport.pcsc_client import (
    PcscConnection,
    PcscError,
    card_present,
    list_readers,
    wait_for_card,
    wait_for_removal,
)
from tests.integration.pcsc.vpcd import claim_ports, reader_name
from tests.support.services import vpcd_ports
from tests.support.transports import ECHO_ATR, INS_FAIL, CardConnector, EchoSlot, echo_apdu, parse_echo

pytestmark = pytest.mark.pcsc

CARD_TIMEOUT = 5.0


@pytest.fixture
def port() -> Iterator[int]:
    with claim_ports(1) as ports:
        yield ports[0]


@pytest.fixture
def echo(port: int) -> Iterator[tuple[EchoSlot, VpcdBridge, str]]:
    slot = EchoSlot()
    with VpcdBridge(slot, port, poll_interval=0.05) as bridge:
        reader = reader_name(port)
        assert wait_for_card(reader, CARD_TIMEOUT)
        yield slot, bridge, reader
    # pcscd polls its readers: let it see this card gone before the next test puts another in the slot.
    assert wait_for_removal(reader, CARD_TIMEOUT)


def test_opensc_lists_the_readers() -> None:
    out = subprocess.run(["opensc-tool", "-l"], capture_output=True, text=True, timeout=30).stdout
    for port in vpcd_ports():
        assert reader_name(port) in out
    assert set(map(reader_name, vpcd_ports())) <= set(list_readers())


def test_pyscard_exchanges_apdus_with_a_bridged_card(echo: tuple[EchoSlot, VpcdBridge, str]) -> None:
    slot, _, reader = echo
    with PcscConnection(reader) as conn:
        assert conn.atr == ECHO_ATR
        first = parse_echo(conn.transmit(echo_apdu(b"hello")))
        second = parse_echo(conn.transmit(echo_apdu(b"world")))
    assert first[1:] == (1, b"hello", 0x9000)
    assert second[1:] == (2, b"world", 0x9000)
    assert first[0] == second[0] == len(slot.cards) - 1


def test_extended_length_apdu_passes_through(echo: tuple[EchoSlot, VpcdBridge, str]) -> None:
    _, _, reader = echo
    data = bytes(range(256)) * 12
    apdu = b"\x80\x01\x00\x00\x00" + len(data).to_bytes(2, "big") + data
    with PcscConnection(reader) as conn:
        _, count, body, sw = parse_echo(conn.transmit(apdu))
    assert (count, sw) == (1, 0x9000)
    assert body == apdu[5:]


def test_reset_restarts_the_card_session(echo: tuple[EchoSlot, VpcdBridge, str]) -> None:
    _, _, reader = echo
    with PcscConnection(reader) as conn:
        conn.transmit(echo_apdu())
        assert parse_echo(conn.transmit(echo_apdu()))[1] == 2
        assert conn.reconnect(reset=True) == ECHO_ATR
        assert parse_echo(conn.transmit(echo_apdu()))[1] == 1


def test_a_defective_card_answers_6f00(echo: tuple[EchoSlot, VpcdBridge, str]) -> None:
    _, _, reader = echo
    with PcscConnection(reader) as conn:
        assert conn.transmit(echo_apdu(ins=INS_FAIL)) == b"\x6f\x00"
        assert parse_echo(conn.transmit(echo_apdu(b"x")))[2:] == (b"x", 0x9000)


def test_quickack_keeps_apdus_well_below_the_delayed_ack(echo: tuple[EchoSlot, VpcdBridge, str]) -> None:
    # Without TCP_QUICKACK each APDU waits for a ~40 ms delayed ACK (PCSC-NOTES gotcha 1).
    _, _, reader = echo
    with PcscConnection(reader) as conn:
        times = []
        for _ in range(50):
            start = time.perf_counter()
            conn.transmit(echo_apdu(b"ping"))
            times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.01


def test_a_withdrawn_card_leaves_pcsc_and_comes_back(port: int) -> None:
    slot = EchoSlot()
    present = threading.Event()
    present.set()
    reader = reader_name(port)
    with VpcdBridge(slot, port, present=present.is_set, poll_interval=0.05) as bridge:
        assert wait_for_card(reader, CARD_TIMEOUT)
        with PcscConnection(reader) as conn:
            conn.transmit(echo_apdu())
            present.clear()
            bridge.refresh()
            assert bridge.wait_disconnected(CARD_TIMEOUT)
            assert wait_for_removal(reader, CARD_TIMEOUT)
            with pytest.raises(PcscError):
                conn.transmit(echo_apdu())
        assert not card_present(reader)
        with pytest.raises(PcscError):
            PcscConnection(reader)
        present.set()
        bridge.refresh()
        assert wait_for_card(reader, CARD_TIMEOUT)
        with PcscConnection(reader, connect_timeout=CARD_TIMEOUT) as conn:
            session, count, _, sw = parse_echo(conn.transmit(echo_apdu()))
        assert (count, sw) == (1, 0x9000)
        assert session == len(slot.cards) - 1 >= 1
    assert wait_for_removal(reader, CARD_TIMEOUT)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


def _read_frame(sock: socket.socket) -> bytes:
    header = sock.recv(2, socket.MSG_WAITALL)
    (length,) = struct.unpack(">H", header)
    return sock.recv(length, socket.MSG_WAITALL) if length else b""


def test_bridge_dials_again_when_vpcd_goes_away() -> None:
    # A stand-in for vpcd's listening side (pcscd is shared by the machine and cannot be restarted here):
    # it speaks the vpcd protocol, then drops the card, then accepts it again.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(CARD_TIMEOUT)
    port = listener.getsockname()[1]
    slot = EchoSlot()
    present = threading.Event()
    with VpcdBridge(slot, port, present=present.is_set, poll_interval=0.05, retry_interval=0.05):
        for round_ in range(2):
            if round_ == 0:
                present.set()
            conn, _ = listener.accept()
            with conn:
                conn.sendall(_frame(b"\x04"))  # "send your ATR"
                assert _read_frame(conn) == ECHO_ATR
                conn.sendall(_frame(echo_apdu(b"r%d" % round_)))
                session, count, data, sw = parse_echo(_read_frame(conn))
                assert (session, count, data, sw) == (round_, 1, b"r%d" % round_, 0x9000)
                conn.sendall(_frame(b"\x00"))  # power off: no reply
                if round_ == 1:
                    present.clear()
                    conn.sendall(_frame(b"\x04"))
                    assert _read_frame(conn) == b""  # no card any more
    listener.close()
    assert [card.power_offs >= 1 for card in slot.cards] == [True, True]


def test_parse_pcsc_target() -> None:
    assert parse_pcsc_target("127.0.0.1:35963,35964") == ("127.0.0.1", [35963, 35964])
    assert parse_pcsc_target("35963") == ("127.0.0.1", [35963])
    assert parse_pcsc_target("[::1]:4000") == ("::1", [4000])
    for bad in ("host:", "host:x", "1:70000", ""):
        with pytest.raises(BridgeError):
            parse_pcsc_target(bad)


def test_every_transport_gives_each_connection_its_own_card_session(card_connect: CardConnector) -> None:
    slot = EchoSlot()
    first, second = card_connect(slot), card_connect(slot)
    a = parse_echo(first.transmit(echo_apdu(b"one")))
    b = parse_echo(second.transmit(echo_apdu(b"two")))
    assert a[1:] == (1, b"one", 0x9000) and b[1:] == (1, b"two", 0x9000)
    assert a[0] != b[0]
    assert parse_echo(first.transmit(echo_apdu()))[:2] == (a[0], 2)


def test_bridge_logs_headers_never_data(
    echo: tuple[EchoSlot, VpcdBridge, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, _, reader = echo
    secret = b"31415926"
    with caplog.at_level(logging.DEBUG, logger="tenantcard.transport.pcsc_bridge"), PcscConnection(reader) as conn:
        conn.transmit(bytes([0x00, 0x20, 0x00, 0x80, len(secret)]) + secret)
    text = caplog.text
    assert "00200080" in text
    assert secret.hex() not in text.lower() and secret.decode() not in text
