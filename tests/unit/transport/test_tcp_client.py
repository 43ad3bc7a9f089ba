"""Host side of the TCP endpoint: addresses, and links that fail."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tenantcard.transport.base import Connection, TransportError
from tenantcard.transport.framing import FramingError
from tenantcard.transport.tcp_client import AddressError, TcpConnection, connect, format_address, parse_address
from tenantcard.transport.tcp_server import DeviceServerThread
from tests.support.transports import ECHO_ATR, EchoSlot, echo_apdu, parse_echo


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp://127.0.0.1:4000", ("127.0.0.1", 4000)),
        ("TCP://device.example:1", ("device.example", 1)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("tcp://[::1]:35963", ("::1", 35963)),
        ("[fe80::1]:80/", ("fe80::1", 80)),
        ("  tcp://h:9  ", ("h", 9)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected
    host, port = expected
    assert parse_address(format_address(host, port)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "host",
        ":80",
        "tcp://:80",
        "host:",
        "host:http",
        "host:65536",
        "host:-1",
        "::1:80",
        "[::1]80",
        "[::1",
        "http://host:80",
        "udp://h:1",
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)
    assert issubclass(AddressError, TransportError) and issubclass(AddressError, ValueError)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connect_refused_is_transport_error() -> None:
    with pytest.raises(TransportError, match=r"cannot connect to tcp://127\.0\.0\.1:"):
        connect(f"127.0.0.1:{free_port()}", timeout=2)


def test_connect_and_transmit_via_address() -> None:
    slot = EchoSlot()
    with DeviceServerThread(slot) as server, connect(server.address) as conn:
        assert isinstance(conn, Connection)
        assert conn.atr == ECHO_ATR
        assert parse_echo(conn.transmit(echo_apdu(b"a")))[2] == b"a"
        with pytest.raises(TransportError, match="1-byte"):
            conn.transmit(b"\x00")
        assert parse_echo(conn.transmit(echo_apdu(b"b")))[1] == 2  # still usable
    assert conn.closed
    with pytest.raises(TransportError, match="closed"):
        conn.transmit(echo_apdu())
    conn.close()  # idempotent


class ScriptedPeer:
    """A one-connection TCP peer that answers with fixed bytes, to drive the client into failures."""

    def __init__(self, reply: bytes, *, close_after: bool = True) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._reply = reply
        self._close_after = close_after
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn, _ = self._listener.accept()
        with conn:
            received = b""
            while len(received) < 6:  # POWER ON + ATR request
                received += conn.recv(6 - len(received))
            conn.sendall(self._reply)
            if not self._close_after:
                self._done.wait(5)

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._listener.close()


@pytest.fixture
def peer_factory() -> Iterator[type[ScriptedPeer]]:
    peers: list[ScriptedPeer] = []

    class Tracked(ScriptedPeer):
        def __init__(self, reply: bytes, *, close_after: bool = True) -> None:
            super().__init__(reply, close_after=close_after)
            peers.append(self)

    yield Tracked
    for p in peers:
        p.close()


def test_zero_length_atr_means_no_card(peer_factory: type[ScriptedPeer]) -> None:
    peer = peer_factory(b"\x00\x00")
    with pytest.raises(TransportError, match="no card"):
        TcpConnection("127.0.0.1", peer.port, timeout=5)


def test_peer_closing_mid_frame(peer_factory: type[ScriptedPeer]) -> None:
    peer = peer_factory(b"\x00\x05\x3b\x00")
    with pytest.raises(TransportError, match="closed the connection"):
        TcpConnection("127.0.0.1", peer.port, timeout=5)


def test_response_above_limit_is_framing_error(peer_factory: type[ScriptedPeer]) -> None:
    peer = peer_factory(b"\x01\x00" + bytes(256), close_after=False)
    with pytest.raises(FramingError):
        TcpConnection("127.0.0.1", peer.port, timeout=5, max_response=255)


def test_silent_peer_times_out(peer_factory: type[ScriptedPeer]) -> None:
    peer = peer_factory(b"", close_after=False)
    with pytest.raises(TransportError, match="no answer"):
        TcpConnection("127.0.0.1", peer.port, timeout=0.3)
