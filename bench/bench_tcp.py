"""A small APDU round trip over the device's TCP endpoint, against a raw asyncio echo server with the same framing.

Each server runs in its own process on 127.0.0.1 (the device through ``tenantcard device serve``); both are
driven by the same blocking client (``TcpConnection``), one kept connection each, in interleaved rounds. The echo server is the floor
of the framing over asyncio streams on loopback: it answers each C-APDU with the same bytes, without a card.
The device answers SELECT of the issuer security domain (a routed command with an FCI answer), executed in a
worker thread, as every command is.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from bench.common import Figure, compared
from tenantcard.transport.framing import HEADER_LEN, Control, encode_frame
from tenantcard.transport.tcp_client import TcpConnection, format_address, parse_address

SELECT_ISD = bytes.fromhex("00A4040008A000000151000000")
ECHO_ATR = bytes.fromhex("3B80800101")


class EchoServerThread:
    """The floor: asyncio streams with the vpcd framing, answering each C-APDU with itself."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = int.from_bytes(await reader.readexactly(HEADER_LEN), "big")
                payload = await reader.readexactly(length)
                if len(payload) == 1:
                    if payload[0] == Control.ATR:
                        writer.write(encode_frame(ECHO_ATR))
                    continue
                writer.write(encode_frame(payload))
                await writer.drain()
        writer.close()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()

    def __enter__(self) -> EchoServerThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _serve(args: list[str]) -> subprocess.Popen[str]:
    """Start a server process that prints "listening tcp://HOST:PORT" on its first line of output."""
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _address(proc: subprocess.Popen[str]) -> tuple[str, int]:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening "):
        raise RuntimeError(f"server did not start: {line!r}")
    return parse_address(line.removeprefix("listening "))


@contextlib.contextmanager
def servers(folder: Path) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    """A development device served by ``tenantcard device serve``, and the echo server, each in its own
    process (as deployed: the client never shares an interpreter with the server)."""
    store = folder / "device.db"
    cli = [sys.executable, "-m", "tenantcard.cli.main", "device"]
    subprocess.run(
        [*cli, "init", "--store", str(store), "--containers", "2", "--dev-keys"], check=True, capture_output=True
    )
    procs = [
        _serve([*cli, "serve", "--store", str(store), "--listen", "127.0.0.1:0", "--log-level", "warning"]),
        _serve([sys.executable, "-m", "bench.bench_tcp"]),
    ]
    try:
        yield _address(procs[0]), _address(procs[1])
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def run(quick: bool) -> list[Figure]:
    repeat, number = (15, 100) if quick else (31, 300)
    with (
        tempfile.TemporaryDirectory() as tmp,
        servers(Path(tmp)) as (device, echo),
        TcpConnection(*device) as dev_conn,
        TcpConnection(*echo) as echo_conn,
    ):
        answer = dev_conn.transmit(SELECT_ISD)
        if answer[-2:] != b"\x90\x00":
            raise RuntimeError(f"SELECT of the ISD answered {answer[-2:].hex()}")
        # warm up both paths (thread pool, caches) before timing
        for _ in range(200):
            dev_conn.transmit(SELECT_ISD)
            echo_conn.transmit(SELECT_ISD)
        return [
            compared(
                "tcp.apdu_round_trip",
                lambda: dev_conn.transmit(SELECT_ISD),
                lambda: echo_conn.transmit(SELECT_ISD),
                "SELECT ISD round trip to a device over its TCP endpoint (vpcd framing, one kept connection, "
                "command run in a worker thread) vs the same APDU echoed by a raw asyncio server with the same "
                "framing; same client, same machine, interleaved rounds",
                aim="ratio <= 1.5",
                repeat=repeat,
                number=number,
            )
        ]


if __name__ == "__main__":
    # The echo server process of ``servers``: serves until terminated.
    with EchoServerThread() as echo_server:
        print(f"listening {format_address('127.0.0.1', echo_server.port)}", flush=True)
        threading.Event().wait()
