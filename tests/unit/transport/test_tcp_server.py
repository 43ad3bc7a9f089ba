"""The TCP endpoint with an echo card: sessions per connection, limits, and garbage that never stops it."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tenantcard.transport.base import TransportError
from tenantcard.transport.framing import Control, ControlMessage, encode_frame
from tenantcard.transport.tcp_client import TcpConnection
from tenantcard.transport.tcp_server import DeviceServerThread, ServerError, serve_device
from tests.support.transports import ECHO_ATR, INS_FAIL, INS_SLOW, EchoSlot, echo_apdu, parse_echo


def raw_socket(server: DeviceServerThread) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    return sock


def recv_frame(sock: socket.socket) -> bytes:
    header = recv_exactly(sock, 2)
    return recv_exactly(sock, int.from_bytes(header, "big"))


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def is_closed_by_peer(sock: socket.socket, within: float = 5.0) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def slot() -> EchoSlot:
    return EchoSlot()


def test_power_on_atr_and_echo(slot: EchoSlot) -> None:
    with DeviceServerThread(slot) as server, TcpConnection(server.host, server.port) as conn:
        assert server.address == f"tcp://127.0.0.1:{server.port}"
        assert conn.atr == ECHO_ATR
        assert parse_echo(conn.transmit(echo_apdu(b"hello"))) == (0, 1, b"hello", 0x9000)
        assert parse_echo(conn.transmit(echo_apdu(b"again"))) == (0, 2, b"again", 0x9000)
        assert conn.reset() == ECHO_ATR
        assert parse_echo(conn.transmit(echo_apdu()))[1] == 1  # reset started a new count
    assert slot.powered_off.wait(5)
    assert slot.cards[0].power_offs >= 1


def test_extended_length_apdu_round_trip(slot: EchoSlot) -> None:
    data = bytes(range(256)) * 200  # 51,200 bytes: extended Lc
    apdu = bytes([0x80, 0x01, 0, 0, 0]) + len(data).to_bytes(2, "big") + data
    with DeviceServerThread(slot) as server, TcpConnection(server.host, server.port) as conn:
        response = conn.transmit(apdu)
    assert response[-2:] == b"\x90\x00"
    assert response[4 + 2 : -2] == data  # EchoCard echoes from offset 5: the 2 length bytes lead


def test_many_concurrent_connections_each_their_own_session(slot: EchoSlot) -> None:
    clients, rounds = 24, 15

    def client(n: int) -> list[tuple[int, int, bytes, int]]:
        with TcpConnection(server.host, server.port) as conn:
            return [parse_echo(conn.transmit(echo_apdu(f"{n}:{i}".encode()))) for i in range(rounds)]

    with DeviceServerThread(slot) as server, ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    assert len(slot.cards) == clients
    sessions = set()
    for n, answers in enumerate(results):
        (session,) = {a[0] for a in answers}
        sessions.add(session)
        assert [a[1] for a in answers] == list(range(1, rounds + 1))  # nobody else's commands counted
        assert [a[2] for a in answers] == [f"{n}:{i}".encode() for i in range(rounds)]
    assert len(sessions) == clients


def test_slow_command_does_not_block_other_connections(slot: EchoSlot) -> None:
    with DeviceServerThread(slot, workers=4) as server:
        slow = TcpConnection(server.host, server.port)
        fast = TcpConnection(server.host, server.port)
        done = threading.Event()

        def run_slow() -> None:
            slow.transmit(echo_apdu(ins=INS_SLOW, p1=50))  # 0.5 s in the card
            done.set()

        thread = threading.Thread(target=run_slow)
        thread.start()
        time.sleep(0.05)
        start = time.monotonic()
        assert parse_echo(fast.transmit(echo_apdu(b"x")))[3] == 0x9000
        assert time.monotonic() - start < 0.4 and not done.is_set()
        thread.join(5)
        slow.close()
        fast.close()


def test_oversized_frame_closes_that_connection_only(slot: EchoSlot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tenantcard.transport.tcp_server")
    with DeviceServerThread(slot, max_frame=64) as server, TcpConnection(server.host, server.port) as bystander:
        sock = raw_socket(server)
        sock.sendall((65).to_bytes(2, "big") + bytes(65))
        assert is_closed_by_peer(sock)
        sock.close()
        assert any("exceeds the limit of 64" in r.getMessage() for r in caplog.records)
        assert parse_echo(bystander.transmit(echo_apdu(b"still")))[2] == b"still"
        with TcpConnection(server.host, server.port) as again:
            assert parse_echo(again.transmit(echo_apdu(bytes(59))))[3] == 0x9000  # 64-byte frame: accepted


def test_idle_timeout_closes_connection(slot: EchoSlot) -> None:
    with DeviceServerThread(slot, idle_timeout=0.3) as server:
        conn = TcpConnection(server.host, server.port)
        assert parse_echo(conn.transmit(echo_apdu()))[3] == 0x9000
        time.sleep(0.6)
        with pytest.raises(TransportError):
            conn.transmit(echo_apdu())
        assert conn.closed
        # a peer that stalls in the middle of a frame is dropped as well
        sock = raw_socket(server)
        sock.sendall(b"\x00\x10\x80\x01")
        start = time.monotonic()
        assert is_closed_by_peer(sock)
        assert time.monotonic() - start < 2.0
        sock.close()
        assert wait_for(lambda: server.server is not None and server.server.active_connections == 0)


def test_connection_limit_refuses_extra_connections(slot: EchoSlot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tenantcard.transport.tcp_server")
    with DeviceServerThread(slot, max_connections=2) as server:
        first = TcpConnection(server.host, server.port)
        second = TcpConnection(server.host, server.port)
        with pytest.raises(TransportError, match="no card"):
            TcpConnection(server.host, server.port, timeout=5)
        assert any("refusing connection" in r.getMessage() for r in caplog.records)
        assert parse_echo(first.transmit(echo_apdu(b"1")))[2] == b"1"
        first.close()
        assert wait_for(lambda: server.server is not None and server.server.active_connections == 1)
        with TcpConnection(server.host, server.port) as third:
            assert parse_echo(third.transmit(echo_apdu(b"3")))[2] == b"3"
        assert parse_echo(second.transmit(echo_apdu(b"2")))[2] == b"2"
        second.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff\xff" + bytes(100),  # announces 65535 bytes, then stalls and hangs up
        b"\x00",  # half a header
        b"\x00\x01\x09",  # unknown control message
        b"\x00\x00",  # empty APDU
        b"\x00\x03\x80\x01\x00",  # 3-byte APDU
        b"\x00\x01\x00\x00\x02\x00\x01",  # power off, then a 1-byte frame split weirdly
        bytes(range(256)) * 4,
    ],
)
def test_garbage_then_valid_apdu_on_new_connection(slot: EchoSlot, garbage: bytes) -> None:
    with DeviceServerThread(slot, max_frame=1024) as server:
        sock = raw_socket(server)
        sock.sendall(garbage)
        sock.close()
        with TcpConnection(server.host, server.port) as conn:
            assert parse_echo(conn.transmit(echo_apdu(b"ok")))[2:] == (b"ok", 0x9000)


def test_short_apdus_get_a_status_word_and_connection_goes_on(slot: EchoSlot) -> None:
    with DeviceServerThread(slot) as server:
        sock = raw_socket(server)
        for payload in (b"", b"\x80\x01", b"\x80\x01\x00"):
            sock.sendall(encode_frame(payload))
            assert recv_frame(sock) == b"\x67\x00"
        sock.sendall(encode_frame(echo_apdu(b"z")))
        assert parse_echo(recv_frame(sock))[2] == b"z"
        sock.close()


def test_vpcd_control_sequence_on_raw_socket(slot: EchoSlot) -> None:
    with DeviceServerThread(slot) as server:
        sock = raw_socket(server)
        # ATR before power on: the card is present, the request powers it on
        sock.sendall(ControlMessage(Control.ATR).to_frame())
        assert recv_frame(sock) == ECHO_ATR
        sock.sendall(encode_frame(echo_apdu()))
        assert parse_echo(recv_frame(sock))[1] == 1
        sock.sendall(ControlMessage(Control.POWER_OFF).to_frame())
        assert wait_for(lambda: not slot.cards[0].powered)
        # an APDU after power off powers the card on again: a new count
        sock.sendall(encode_frame(echo_apdu()))
        assert parse_echo(recv_frame(sock))[1] == 1
        sock.sendall(b"\x00\x01\x09" + ControlMessage(Control.RESET).to_frame())  # unknown control: no reply
        sock.sendall(encode_frame(echo_apdu()))
        assert parse_echo(recv_frame(sock))[1] == 1
        sock.close()


def test_defective_card_answers_6f00_and_keeps_serving(slot: EchoSlot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="tenantcard.transport.tcp_server")
    with DeviceServerThread(slot) as server, TcpConnection(server.host, server.port) as conn:
        assert conn.transmit(echo_apdu(b"secret", ins=INS_FAIL)) == b"\x6f\x00"
        assert parse_echo(conn.transmit(echo_apdu(b"after")))[2] == b"after"
    assert any("card failed on INS EE" in r.getMessage() for r in caplog.records)
    assert not any("secret" in r.getMessage() or "736563726574" in r.getMessage() for r in caplog.records)


def test_apdu_data_never_logged_at_info(slot: EchoSlot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tenantcard.transport.tcp_server")
    marker = bytes.fromhex("0badc0ffee0badc0ffee")
    with DeviceServerThread(slot) as server, TcpConnection(server.host, server.port) as conn:
        conn.transmit(echo_apdu(marker))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "800100" in text.replace("0A", "")  # the header is logged at DEBUG
    assert marker.hex() not in text.lower() and marker.hex().upper() not in text


def test_stop_closes_open_connections_and_powers_off(slot: EchoSlot) -> None:
    server = DeviceServerThread(slot).start()
    conn = TcpConnection(server.host, server.port)
    conn.transmit(echo_apdu())
    server.stop()
    assert slot.cards[0].power_offs == 1
    with pytest.raises(TransportError):
        conn.transmit(echo_apdu())
    with pytest.raises(TransportError, match="cannot connect"):
        TcpConnection("127.0.0.1", server.port, timeout=2)


def test_port_in_use_is_a_server_error(slot: EchoSlot) -> None:
    with (
        DeviceServerThread(slot) as first,
        pytest.raises(ServerError, match=f"cannot listen on 127.0.0.1:{first.port}"),
    ):
        DeviceServerThread(slot, port=first.port).start()


@pytest.mark.parametrize("options", [{"max_connections": 0}, {"idle_timeout": 0.0}, {"max_frame": 3}])
def test_bad_options_rejected(slot: EchoSlot, options: dict[str, float]) -> None:
    with pytest.raises(ServerError):
        DeviceServerThread(slot, "127.0.0.1", 0, **options).start()


def test_serve_device_on_caller_event_loop(slot: EchoSlot) -> None:
    async def scenario() -> tuple[bytes, bytes]:
        server = await serve_device(slot, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(ControlMessage(Control.POWER_ON).to_frame() + ControlMessage(Control.ATR).to_frame())
        atr = await reader.readexactly(int.from_bytes(await reader.readexactly(2), "big"))
        writer.write(encode_frame(echo_apdu(b"loop")))
        answer = await reader.readexactly(int.from_bytes(await reader.readexactly(2), "big"))
        writer.close()
        server.close()
        await server.wait_closed()
        return atr, answer

    atr, answer = asyncio.run(scenario())
    assert atr == ECHO_ATR
    assert parse_echo(answer)[2] == b"loop"


def extended_echo(data: bytes) -> bytes:
    return bytes([0x80, 0x01, 0, 0, 0]) + len(data).to_bytes(2, "big") + data


def test_pipelined_frames_are_answered_in_order(slot: EchoSlot) -> None:
    with DeviceServerThread(slot) as server:
        sock = raw_socket(server)
        # reading pauses while more than a few frames wait, and resumes as the worker catches up
        count = 600
        sock.sendall(b"".join(encode_frame(echo_apdu(i.to_bytes(2, "big"))) for i in range(count)))
        answers = [parse_echo(recv_frame(sock)) for _ in range(count)]
        assert [a[1] for a in answers] == list(range(1, count + 1))
        assert [a[2] for a in answers] == [i.to_bytes(2, "big") for i in range(count)]
        sock.close()


def test_large_answers_to_a_slow_reader_arrive_whole_and_in_order(slot: EchoSlot) -> None:
    # The peer reads nothing until 12 answers of ~60 KB are queued, and the server's socket buffer is made
    # small: direct writes from the worker come up short, and the rest goes out through the event loop,
    # still whole and in order.
    bodies = [bytes([i]) * 60000 for i in range(12)]
    with DeviceServerThread(slot) as server:
        sock = raw_socket(server)
        assert server.server is not None
        assert wait_for(lambda: server.server is not None and server.server.active_connections == 1)
        (conn,) = server.server._connections
        conn._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        sock.sendall(b"".join(encode_frame(extended_echo(body)) for body in bodies))
        time.sleep(0.3)
        for i, body in enumerate(bodies):
            _, count, data, sw = parse_echo(recv_frame(sock))
            assert (count, sw) == (i + 1, 0x9000)
            assert data[2:] == body
        assert conn._loop_writes  # the event-loop path was taken
        sock.sendall(encode_frame(echo_apdu(b"after")))
        assert parse_echo(recv_frame(sock))[2] == b"after"
        sock.close()


def test_stop_drops_lingering_refused_connections(slot: EchoSlot) -> None:
    server = DeviceServerThread(slot, max_connections=1).start()
    holder = TcpConnection(server.host, server.port)
    refused = raw_socket(server)
    assert recv_frame(refused) == b""  # vpcd "no card"
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 5
    assert is_closed_by_peer(refused)
    refused.close()
    with pytest.raises(TransportError):
        holder.transmit(echo_apdu())
