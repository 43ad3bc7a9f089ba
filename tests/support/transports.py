"""One test API over every transport: the same test talks to a card in-process, over TCP and through PC/SC.

A test asks for the ``card_connect`` fixture and calls it with anything that hands out card sessions (a
``CardSlot``: a device, or the ``EchoSlot`` below) to get a host-side ``Connection``::

    def test_select(device, card_connect):
        with closing(card_connect(device)) as conn:
            assert conn.transmit(SELECT_ISD).endswith(b"\\x90\\x00")

The fixture is parametrized over ``TRANSPORTS``; ``card_connect.name`` says which one is running. Connections
and servers are closed at the end of the test. A transport is added by registering a ``HostTransport`` class
in ``TRANSPORTS`` with the marks its tests need.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tenantcard.transport.base import Card, CardSlot, Connection, LocalConnection, TransportError
from tenantcard.transport.pcsc_bridge import VpcdBridge
from tenantcard.transport.pcsc_client import PcscConnection, wait_for_card, wait_for_removal
from tenantcard.transport.tcp_client import TcpConnection, parse_address
from tenantcard.transport.tcp_server import DeviceServerThread
from tenantcard.wire.sw import SW
from tests.integration.pcsc.vpcd import claim_ports, reader_name


class HostTransport(Protocol):
    """How one transport reaches a slot's card sessions from the host side."""

    name: str

    def open(self, slot: CardSlot) -> Connection: ...

    def close(self) -> None: ...


class InProcessTransport:
    """``LocalConnection`` straight on ``slot.connect()``: no bytes leave the process."""

    name = "inprocess"

    def open(self, slot: CardSlot) -> Connection:
        return LocalConnection(slot.connect())

    def close(self) -> None:
        return None


class TcpTransport:
    """The device's TCP endpoint: one ``DeviceServerThread`` per slot on 127.0.0.1:0, ``TcpConnection``s to it."""

    name = "tcp"

    def __init__(self, **server_options: object) -> None:
        self._options = server_options
        self._servers: dict[int, tuple[CardSlot, DeviceServerThread]] = {}

    def server(self, slot: CardSlot) -> DeviceServerThread:
        entry = self._servers.get(id(slot))
        if entry is None:
            entry = (slot, DeviceServerThread(slot, "127.0.0.1", 0, **self._options).start())
            self._servers[id(slot)] = entry
        return entry[1]

    def address(self, slot: CardSlot) -> str:
        return self.server(slot).address

    def open(self, slot: CardSlot) -> Connection:
        server = self.server(slot)
        return TcpConnection(server.host, server.port, timeout=30.0)

    def close(self) -> None:
        for _, server in self._servers.values():
            server.stop()
        self._servers.clear()


class PcscTransport:
    """PC/SC through the machine's pcscd: each ``open`` claims a free vpcd slot, dials it with a ``VpcdBridge``
    (one card session of ``slot``, as on TCP) and connects to that reader by name with ``PcscConnection``."""

    name = "pcsc"

    def __init__(self) -> None:
        self._claims = contextlib.ExitStack()
        self._bridges: list[tuple[VpcdBridge, str]] = []

    def open(self, slot: CardSlot) -> Connection:
        (port,) = self._claims.enter_context(claim_ports(1))
        reader = reader_name(port)
        self._bridges.append((VpcdBridge(slot, port, poll_interval=0.05).start(), reader))
        if not wait_for_card(reader, 10.0):
            raise TransportError(f"no card in {reader!r}")
        return PcscConnection(reader, connect_timeout=5.0)

    def close(self) -> None:
        for bridge, reader in self._bridges:
            bridge.stop()
            # pcscd polls its readers: the slot is free again once it has seen this card go.
            wait_for_removal(reader, 10.0)
        self._bridges.clear()
        self._claims.close()


# name -> (factory, marks of the tests that use it)
TRANSPORTS: dict[str, tuple[Callable[[], HostTransport], tuple[pytest.MarkDecorator, ...]]] = {
    "inprocess": (InProcessTransport, ()),
    "tcp": (TcpTransport, ()),
    "pcsc": (PcscTransport, (pytest.mark.pcsc,)),
}


class CardConnector:
    """``card_connect(slot) -> Connection`` over one transport; closes everything it opened."""

    def __init__(self, transport: HostTransport) -> None:
        self.transport = transport
        self._opened: list[Connection] = []

    @property
    def name(self) -> str:
        return self.transport.name

    def __call__(self, slot: CardSlot) -> Connection:
        conn = self.transport.open(slot)
        self._opened.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._opened:
            conn.close()
        self._opened.clear()
        self.transport.close()


@pytest.fixture(params=[pytest.param(name, marks=marks, id=name) for name, (_, marks) in TRANSPORTS.items()])
def card_connect(request: pytest.FixtureRequest) -> Iterator[CardConnector]:
    """A factory ``card_connect(slot) -> Connection``, once per transport in ``TRANSPORTS``."""
    factory, _ = TRANSPORTS[request.param]
    connector = CardConnector(factory())
    try:
        yield connector
    finally:
        connector.close()


# --- a tiny card for transport tests --------------------------------------------------------------------

ECHO_ATR = bytes.fromhex("3B80800101")
INS_ECHO = 0x01
INS_FAIL = 0xEE  # EchoCard.execute raises: a defective card
INS_SLOW = 0x5A  # EchoCard.execute sleeps P1 x 10 ms first


class EchoCard:
    """Answers each C-APDU with its session number (2 bytes), the number of commands this session has
    run since power on / reset (2 bytes), the command's data, and 9000."""

    def __init__(self, slot: EchoSlot, session: int) -> None:
        self._slot = slot
        self.session = session
        self.count = 0
        self.powered = False
        self.power_offs = 0

    def power_on(self) -> bytes:
        self.powered = True
        self.count = 0
        return ECHO_ATR

    def reset(self) -> bytes:
        self.count = 0
        return ECHO_ATR

    def power_off(self) -> None:
        self.powered = False
        self.power_offs += 1
        self._slot.powered_off.set()

    def execute(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW.WRONG_LENGTH.to_bytes()
        if apdu[1] == INS_FAIL:
            raise RuntimeError("defective card")
        if apdu[1] == INS_SLOW:
            threading.Event().wait(apdu[2] / 100)
        self.count += 1
        body = apdu[5:] if len(apdu) > 5 else b""
        return self.session.to_bytes(2, "big") + self.count.to_bytes(2, "big") + body + SW.OK.to_bytes()


class EchoSlot:
    """A ``CardSlot`` handing out numbered ``EchoCard`` sessions."""

    def __init__(self) -> None:
        self.cards: list[EchoCard] = []
        self._lock = threading.Lock()
        self.powered_off = threading.Event()

    def connect(self) -> Card:
        with self._lock:
            card = EchoCard(self, len(self.cards))
            self.cards.append(card)
            return card


def echo_apdu(data: bytes = b"", ins: int = INS_ECHO, p1: int = 0) -> bytes:
    """A short case-1 or case-3 C-APDU for ``EchoCard``."""
    return bytes([0x80, ins, p1, 0x00]) + (bytes([len(data)]) + data if data else b"")


def parse_echo(response: bytes) -> tuple[int, int, bytes, int]:
    """(session, count, data, SW) of an ``EchoCard`` answer."""
    return (
        int.from_bytes(response[0:2], "big"),
        int.from_bytes(response[2:4], "big"),
        response[4:-2],
        int.from_bytes(response[-2:], "big"),
    )


# --- the real command line, as a subprocess -------------------------------------------------------------

CLI = [sys.executable, "-m", "tenantcard.cli.main"]


def run_cli(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``tenantcard ARGS`` in a subprocess; never raises for a non-zero exit (tests assert on it)."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


class ServeProcess:
    """``tenantcard device serve --store STORE --listen 127.0.0.1:0`` in a subprocess; ``start()`` waits for its
    "listening tcp://HOST:PORT" line. Its stderr (logs) goes to ``log_path``."""

    def __init__(self, store: Path, *, log_path: Path | None = None, extra: tuple[str, ...] = ()) -> None:
        self.store = store
        self.log_path = log_path or store.with_suffix(".serve.log")
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.host = ""
        self.port = 0

    @property
    def address(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServeProcess:
        args = ["device", "serve", "--store", str(self.store), "--listen", "127.0.0.1:0", *self.extra]
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("listening "):
            self.kill()
            raise RuntimeError(f"device serve did not start: {line!r}; log: {self.log_path.read_text()[-2000:]}")
        self.host, self.port = parse_address(line.removeprefix("listening "))
        return self

    def connect(self, timeout: float = 30.0) -> TcpConnection:
        return TcpConnection(self.host, self.port, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)
            self._close_pipes()

    def stop(self, timeout: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> int:
        """SIGTERM (or ``sig``), then the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._close_pipes()
        return code

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ServeProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.kill()
