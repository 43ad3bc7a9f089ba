"""The device's network address: an asyncio TCP server speaking the vpcd framing (see ``framing``).

Each TCP connection gets its own card session from ``slot.connect()``. The event loop only reads and decodes
frames; every card call (connect, power, execute) runs in a worker thread, because device calls block
(SQLite), and the device serializes them itself. A connection has one worker at a time, so its commands run
in the order they arrived. Whatever a peer sends, the server keeps serving the others: an oversized frame,
a stalled peer or a failing card closes that one connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from tenantcard.transport.base import Card, CardSlot, TransportError
from tenantcard.transport.framing import (
    MAX_EXTENDED_APDU,
    MAX_PAYLOAD,
    ApduMessage,
    Control,
    ControlMessage,
    FrameDecoder,
    FramingError,
    Message,
    decode_message,
    encode_frame,
)
from tenantcard.wire.sw import SW

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_WORKERS = 4
REFUSE_LINGER = 1.0  # seconds a refused peer has to read the "no card" answer and hang up
MAX_QUEUED_FRAMES = 4  # frames read ahead of the one executing before reading pauses

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)

Reply = bytes | None


class ServerError(TransportError):
    """The server could not start (address in use, bad address or option)."""


def _quickack(sock: Any) -> None:
    # vsmartcard vpcd 3.3 writes length and payload in two send() calls with Nagle on: without an immediate
    # ACK each message waits for the delayed-ACK timer (~40 ms). TCP_QUICKACK is not sticky (tcp(7)), so it
    # is set again before every read.
    if sock is not None and _QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


class _Workers:
    """Threads that run card work (a connection's ``_drain`` or ``_finish``) off the event loop.

    Lighter than ``run_in_executor``: no future, no task, no loop wake-up when the work is done.
    """

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"tenantcard-card-{i}", daemon=True) for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:
                log.exception("card worker failed")

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)


class _Connection(asyncio.Protocol):
    """One TCP connection bound to one card session.

    The event loop decodes frames into ``_pending``; one worker at a time drains it (``_drain``): it runs each
    message on the card and writes the answer to the socket itself, so that a command costs one thread
    hand-off and no loop wake-up. ``_lock`` guards ``_pending``, ``_busy`` and ``_closed``; the socket is
    written only under it and only while the connection is open (asyncio closes the socket after
    ``connection_lost``, which takes the lock), so an answer never reaches a reused descriptor.
    """

    def __init__(self, server: DeviceServer) -> None:
        self._server = server
        self._loop = server.loop
        self._transport: asyncio.Transport | None = None
        self._fd = -1
        self._sock: Any = None
        self.peer = "?"
        self._decoder = FrameDecoder(server.max_payload)
        self._lock = threading.Lock()
        self._pending: deque[bytes] = deque()
        self._busy = False  # a worker is draining _pending
        self._closed = False
        self._loop_writes = False  # after a partial direct write, answers go through the transport (ordered)
        self._paused = False
        self._refused = False
        self._card: Card | None = None
        self._atr: bytes | None = None  # None while the card is powered off
        self._last_activity = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None

    # --- event loop side -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        self._sock = transport.get_extra_info("socket")
        if self._sock is not None:
            self._fd = self._sock.fileno()
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self._server.admit(self):
            self._refuse()
            return
        log.info("connection from %s", self.peer)
        self._timer = self._loop.call_later(self._server.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        _quickack(self._sock)
        if self._refused:
            return
        try:
            frames = self._decoder.feed(data)
        except FramingError as exc:
            log.warning("%s: %s; closing", self.peer, exc)
            self._close_transport()
            return
        if not frames:
            return
        self._last_activity = self._loop.time()
        with self._lock:
            if self._closed:
                return
            self._pending.extend(frames)
            start = not self._busy
            self._busy = True
            # _paused is set and cleared under the lock: the worker that clears it schedules the resume, which
            # the loop then runs after this pause (reading stays paused until then: no data_received between).
            pause = len(self._pending) > MAX_QUEUED_FRAMES and not self._paused
            if pause:
                self._paused = True
        if pause and self._transport is not None:
            self._transport.pause_reading()
        if start:
            self._server.workers.submit(self._drain)

    def eof_received(self) -> bool:
        if self._decoder.pending and not self._refused:
            log.warning("%s: connection closed mid-frame", self.peer)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._refused:
            self._server.lingering.discard(self)
            return
        with self._lock:
            self._closed = True
            self._pending.clear()
            draining = self._busy
        log.info("%s: connection %s", self.peer, "lost" if exc else "closed")
        if not draining:  # else the draining worker powers the card off when it sees _closed
            self._server.workers.submit(self._finish)

    def _resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _refuse(self) -> None:
        # vpcd protocol: a 0-length answer means "no card". The peer's first messages are read and dropped
        # until it hangs up (at most REFUSE_LINGER s), so that closing does not turn into a reset that could
        # discard the answer before the peer reads it.
        self._refused = True
        self._server.lingering.add(self)
        log.warning("refusing connection from %s: %d connections open", self.peer, self._server.active_connections)
        if self._transport is not None:
            self._transport.write(encode_frame(b""))
            self._timer = self._loop.call_later(REFUSE_LINGER, self._transport.close)

    def _check_idle(self) -> None:
        timeout = self._server.idle_timeout
        idle_for = self._loop.time() - self._last_activity
        if self._busy or idle_for < timeout:
            self._timer = self._loop.call_later(timeout if self._busy else timeout - idle_for, self._check_idle)
            return
        log.info("%s: idle for %.1f s, closing", self.peer, idle_for)
        self._close_transport()

    def _close_transport(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _write_on_loop(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def abort(self) -> None:
        """Server stopping: drop the connection now."""
        if self._transport is not None:
            self._transport.abort()

    # --- worker side ---------------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Runs in a worker thread: answer every pending message, in order, then return."""
        while True:
            with self._lock:
                if self._closed or not self._pending:
                    self._busy = False
                    closed = self._closed
                    break
                payload = self._pending.popleft()
                resume = self._paused and len(self._pending) <= MAX_QUEUED_FRAMES // 2
                if resume:
                    self._paused = False
            if resume:
                self._loop.call_soon_threadsafe(self._resume_reading)
            try:
                reply = self._handle(decode_message(payload))
            except Exception as exc:
                log.error("%s: card session failed (%s); closing", self.peer, type(exc).__name__)
                with self._lock:
                    self._pending.clear()  # nothing more is executed for this connection
                self._loop.call_soon_threadsafe(self._close_transport)
                continue
            if reply is not None:
                self._send(reply)
            self._last_activity = self._loop.time()
        if closed:
            self._finish()

    def _handle(self, message: Message) -> Reply:
        """The reply payload for one message, or None for a message that gets no reply."""
        if self._card is None:
            self._card = self._server.slot.connect()
        card = self._card
        if isinstance(message, ControlMessage):
            return self._control(card, message.control)
        return self._apdu(card, message)

    def _control(self, card: Card, control: Control) -> Reply:
        if control == Control.POWER_ON:
            self._atr = card.power_on()
        elif control == Control.POWER_OFF:
            card.power_off()
            self._atr = None
        elif control == Control.RESET:
            self._atr = card.reset()
        elif control == Control.ATR:
            # vpcd asks for the ATR to see whether a card is present; ours always is.
            if self._atr is None:
                self._atr = card.power_on()
            return self._atr
        else:
            log.debug("%s: ignoring unknown control message %d", self.peer, int(control))
        return None

    def _apdu(self, card: Card, message: ApduMessage) -> bytes:
        apdu = message.payload
        if self._atr is None:
            self._atr = card.power_on()  # a host that skipped POWER ON gets the card powered on for it
        try:
            response = card.execute(apdu)
        except Exception:
            # Card.execute must answer every input with a status word; this is a defect of the card.
            # The traceback names the failing code, never the APDU's content.
            log.exception("%s: card failed on INS %s", self.peer, f"{apdu[1]:02X}" if len(apdu) > 1 else "-")
            response = SW.UNKNOWN.to_bytes()
        if log.isEnabledFor(logging.DEBUG):
            # Header and status word only: command and response data may carry keys.
            log.debug(
                "%s: %s +%d bytes -> %s +%d bytes",
                self.peer,
                apdu[:4].hex().upper(),
                max(len(apdu) - 4, 0),
                response[-2:].hex().upper(),
                max(len(response) - 2, 0),
            )
        return response

    def _send(self, reply: bytes) -> None:
        try:
            frame = encode_frame(reply)
        except FramingError as exc:
            log.error("%s: card answer not framable (%s); closing", self.peer, exc)
            self._loop.call_soon_threadsafe(self._close_transport)
            return
        with self._lock:
            if self._closed:
                return
            if not self._loop_writes and self._fd >= 0:
                try:
                    sent = os.write(self._fd, frame)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    return  # the peer is gone; the loop sees it on its side
                if sent == len(frame):
                    return
                frame = frame[sent:]
                self._loop_writes = True
            self._loop.call_soon_threadsafe(self._write_on_loop, frame)

    def _finish(self) -> None:
        """Runs in a worker thread once the connection is closed and drained: power the card off."""
        card, self._card = self._card, None
        if card is not None:
            try:
                card.power_off()
            except Exception as exc:
                log.error("%s: power off failed (%s)", self.peer, type(exc).__name__)
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(self._server.release, self)


class DeviceServer:
    """A listening TCP endpoint for a ``CardSlot``. Create it with ``serve_device``."""

    def __init__(
        self,
        slot: CardSlot,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_frame: int = MAX_EXTENDED_APDU,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        if max_frame < 4:
            raise ValueError("max_frame must admit a 4-byte APDU header")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.slot = slot
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_payload = min(max_frame, MAX_PAYLOAD)
        self._worker_count = workers
        self.loop = asyncio.get_running_loop()
        self.workers = _Workers(workers)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self.lingering: set[_Connection] = set()  # refused, waiting for the peer to hang up
        self._all_released = asyncio.Event()
        self._all_released.set()
        self.host = ""
        self.port = 0

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    def admit(self, conn: _Connection) -> bool:
        if len(self._connections) >= self.max_connections or (self._server is not None and not self.serving):
            return False
        self._connections.add(conn)
        self._all_released.clear()
        return True

    def release(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if not self._connections:
            self._all_released.set()

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self, host: str, port: int) -> None:
        try:
            self._server = await self.loop.create_server(lambda: _Connection(self), host, port)
        except (OSError, ValueError) as exc:
            self.workers.stop()
            reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
            raise ServerError(f"cannot listen on {host}:{port}: {reason}") from None
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = str(sockname[0]), int(sockname[1])
        log.info("listening %s", self.address)

    def close(self) -> None:
        """Stop accepting and drop every open connection (each card session is powered off)."""
        if self._server is not None:
            self._server.close()
        for conn in [*self._connections, *self.lingering]:
            conn.abort()

    async def wait_closed(self) -> None:
        """Wait until every card session is powered off, then stop the worker threads."""
        if self._server is not None:
            await self._server.wait_closed()
        await self._all_released.wait()
        self.workers.stop()
        await asyncio.to_thread(self.workers.join, 10.0)

    async def serve_forever(self) -> None:
        if self._server is None:
            raise ServerError("server not started")
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.serve_forever()


async def serve_device(
    slot: CardSlot,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_frame: int = MAX_EXTENDED_APDU,
    workers: int = DEFAULT_WORKERS,
) -> DeviceServer:
    """Start listening on ``host:port`` (port 0: any free port; read ``.port``). ``max_frame`` bounds the
    payload of one frame; a peer that announces more is disconnected. Raises ``ServerError``."""
    try:
        server = DeviceServer(
            slot, max_connections=max_connections, idle_timeout=idle_timeout, max_frame=max_frame, workers=workers
        )
    except ValueError as exc:
        raise ServerError(str(exc)) from None
    await server.start(host, port)
    return server


class DeviceServerThread:
    """A ``DeviceServer`` running its own event loop in a background thread, for tests, the CLI and the demo.

    ``start()`` returns once the socket listens (or raises ``ServerError``); ``stop()`` closes every
    connection, powers off their card sessions and joins the thread. Also a context manager.
    """

    def __init__(self, slot: CardSlot, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self._slot = slot
        self._bind = (host, port)
        self._options = options
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.server: DeviceServer | None = None

    @property
    def port(self) -> int:
        return self._running().port

    @property
    def host(self) -> str:
        return self._running().host

    @property
    def address(self) -> str:
        return self._running().address

    def _running(self) -> DeviceServer:
        if self.server is None:
            raise ServerError("server not started")
        return self.server

    def start(self, timeout: float = 10.0) -> DeviceServerThread:
        if self._thread is not None:
            raise ServerError("server already started")
        self._thread = threading.Thread(target=self._run, name="tenantcard-tcp", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ServerError("server did not start in time")
        if self._error is not None:
            self._thread.join(timeout)
            if isinstance(self._error, ServerError):
                raise self._error
            raise ServerError(f"server failed to start: {type(self._error).__name__}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> DeviceServerThread:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await serve_device(self._slot, *self._bind, **self._options)
        self.server = server
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            await server.wait_closed()
