"""Card side of PC/SC: the device (or one of its containers) dials a vsmartcard vpcd reader slot.

vsmartcard vpcd (vpcd.c, vsmartcard 3.3) listens on one TCP port per reader slot; the virtual card connects to
it and then answers what pcscd forwards: control messages (power off / on / reset / "send your ATR") and
C-APDUs, in the framing of ``framing``. While a card is connected, pcscd reports the slot's card present;
when the card closes its connection, the card is gone. A ``VpcdBridge`` is that card for one slot:

* it dials vpcd and, when vpcd goes away (pcscd restarted), dials again every ``retry_interval``;
* it asks ``present()`` whether its card exists (for a container: owned and not revoked); while not, it stays
  disconnected, so PC/SC sees an empty reader; when a connected card stops being present it hangs up;
* it sets TCP_QUICKACK before every receive (vpcd writes the length and the payload in two writes with Nagle on,
  which otherwise costs a delayed ACK per APDU) and sends each reply in one write with TCP_NODELAY.

Each vpcd connection is one card session from ``slot.connect()``: PC/SC power cycles and resets map to
``Card.power_on`` / ``reset`` / ``power_off``.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tenantcard.transport.base import Card, CardSlot, TransportError
from tenantcard.transport.framing import (
    MAX_PAYLOAD,
    Control,
    ControlMessage,
    FrameDecoder,
    FramingError,
    decode_message,
    encode_frame,
)
from tenantcard.wire.sw import SW

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_POLL_INTERVAL = 0.1
DEFAULT_RETRY_INTERVAL = 0.25
CONNECT_TIMEOUT = 2.0
REAPPEAR_DELAY = 0.6

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class BridgeError(TransportError):
    """A bridge was misconfigured (bad address, started twice)."""


def _always_present() -> bool:
    return True


def _quickack(sock: socket.socket) -> None:
    # PCSC-NOTES gotcha 1 / tcp(7): TCP_QUICKACK is not sticky, so it is set again before every receive.
    if _QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


class _CardSession:
    """One vpcd connection bound to one card session: maps vpcd control messages onto ``Card``."""

    def __init__(self, card: Card, present: Callable[[], bool], label: str) -> None:
        self.card = card
        self._present = present
        self._label = label
        self.atr: bytes | None = None

    def handle(self, payload: bytes) -> bytes | None:
        """The reply payload for one payload from vpcd, or None when the message gets no reply."""
        message = decode_message(payload)
        if isinstance(message, ControlMessage):
            return self._control(message.control)
        return self._apdu(message.payload)

    def _control(self, control: Control) -> bytes | None:
        if control == Control.POWER_ON:
            self.atr = self.card.power_on()
        elif control == Control.POWER_OFF:
            self.card.power_off()
            self.atr = None
        elif control == Control.RESET:
            self.atr = self.card.reset()
        elif control == Control.ATR:
            # vpcd: a 0-length answer means "no card" (a container revoked in the meantime).
            if not self._present():
                return b""
            if self.atr is None:
                self.atr = self.card.power_on()
            return self.atr
        else:
            log.debug("%s: ignoring unknown control message %d", self._label, int(control))
        return None

    def _apdu(self, apdu: bytes) -> bytes:
        if self.atr is None:
            self.atr = self.card.power_on()
        try:
            response = self.card.execute(apdu)
        except Exception:
            # Card.execute answers every input with a status word; this is a defect of the card. The log
            # names the instruction only, never the APDU's content.
            log.exception("%s: card failed on INS %s", self._label, f"{apdu[1]:02X}" if len(apdu) > 1 else "-")
            response = SW.UNKNOWN.to_bytes()
        if len(response) > MAX_PAYLOAD:
            log.error("%s: response of %d bytes does not fit a vpcd frame", self._label, len(response))
            response = SW.UNKNOWN.to_bytes()
        if log.isEnabledFor(logging.DEBUG):
            # Header and status word only: command and response data may carry PINs and keys.
            log.debug(
                "%s: %s -> %s len=%d", self._label, apdu[:4].hex().upper(), response[-2:].hex().upper(), len(response)
            )
        return response


class VpcdBridge:
    """Serves the cards of ``slot`` to one vpcd reader slot at ``host:port``, in a background thread.

    ``present`` says whether the card exists right now; it is polled every ``poll_interval`` seconds while
    connected and while waiting, and ``refresh()`` makes the bridge look again at once.
    """

    def __init__(
        self,
        slot: CardSlot,
        port: int,
        host: str = DEFAULT_HOST,
        *,
        present: Callable[[], bool] = _always_present,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        name: str = "",
    ) -> None:
        if not 0 < port <= 0xFFFF:
            raise BridgeError(f"vpcd port {port} out of range")
        if poll_interval <= 0 or retry_interval <= 0:
            raise BridgeError("poll and retry intervals must be positive")
        self.slot = slot
        self.host = host
        self.port = port
        self.name = name or f"vpcd {host}:{port}"
        self._present = present
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._disconnected.set()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.sessions = 0  # vpcd connections served so far

    # -- control ----------------------------------------------------------------------------------------

    def start(self) -> VpcdBridge:
        if self._thread is not None:
            raise BridgeError("bridge already started")
        self._thread = threading.Thread(target=self._run, name=f"tenantcard-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Hang up (PC/SC sees the card removed) and end the thread."""
        self._stopping.set()
        self.refresh()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for sock in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()

    def refresh(self) -> None:
        """Re-check ``present()`` now (e.g. right after a container was revoked or taken over)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_disconnected(self, timeout: float) -> bool:
        return self._disconnected.wait(timeout)

    def __enter__(self) -> VpcdBridge:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- thread -----------------------------------------------------------------------------------------

    def _is_present(self) -> bool:
        try:
            return bool(self._present())
        except Exception:
            log.exception("%s: presence check failed; treating the card as absent", self.name)
            return False

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_r.recv(64):
                pass

    def _pause(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass, ``refresh()`` or ``stop()``."""
        with contextlib.suppress(OSError, ValueError):
            select.select([self._wake_r], [], [], seconds)
        self._drain_wake()

    def _hold_off(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._pause(left)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._is_present():
                self._pause(self.poll_interval)
                continue
            try:
                sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
            except OSError:
                # vpcd not (yet / any more) listening: pcscd stopped or restarting.
                self._pause(self.retry_interval)
                continue
            try:
                self._serve(sock)
            finally:
                with contextlib.suppress(OSError):
                    sock.close()
                self._connected.clear()
                self._disconnected.set()
            # Stay away long enough for pcscd to see this card leave before the next one comes: it polls its
            # readers about every 0.4 s, and a card swapped within one poll looks like the old one to it.
            self._hold_off(max(self.retry_interval, REAPPEAR_DELAY))

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            card = self.slot.connect()
        except Exception:
            log.exception("%s: no card session available", self.name)
            return
        session = _CardSession(card, self._is_present, self.name)
        decoder = FrameDecoder()
        self.sessions += 1
        self._disconnected.clear()
        self._connected.set()
        log.info("%s: card connected", self.name)
        try:
            while not self._stopping.is_set():
                _quickack(sock)
                readable, _, _ = select.select([sock, self._wake_r], [], [], self.poll_interval)
                if self._wake_r in readable:
                    self._drain_wake()
                if sock not in readable:
                    if self._stopping.is_set() or not self._is_present():
                        log.info("%s: card withdrawn", self.name)
                        return
                    continue
                _quickack(sock)
                data = sock.recv(MAX_PAYLOAD + 2)
                if not data:
                    log.info("%s: vpcd closed the connection", self.name)
                    return
                for payload in decoder.feed(data):
                    reply = session.handle(payload)
                    if reply is not None:
                        sock.sendall(encode_frame(reply))
        except FramingError as exc:
            log.warning("%s: %s; hanging up", self.name, exc)
        except OSError:
            log.info("%s: connection to vpcd lost", self.name)
        finally:
            try:
                card.power_off()
            except Exception:
                log.exception("%s: power off failed", self.name)


@dataclass(frozen=True, slots=True)
class Exposure:
    """What one vpcd slot shows: a card source and whether its card exists right now."""

    slot: CardSlot
    present: Callable[[], bool] = _always_present
    name: str = ""


class BridgeSet:
    """Several bridges started and stopped together, e.g. the device on the first port and one container on
    each following port (``tenantcard device serve --pcsc``)."""

    def __init__(
        self,
        exposures: Sequence[Exposure],
        ports: Sequence[int],
        host: str = DEFAULT_HOST,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        if len(ports) < len(exposures):
            raise BridgeError(f"{len(exposures)} cards to expose but only {len(ports)} vpcd ports")
        self.bridges = [
            VpcdBridge(
                e.slot,
                port,
                host,
                present=e.present,
                name=e.name or f"vpcd {host}:{port}",
                poll_interval=poll_interval,
                retry_interval=retry_interval,
            )
            for e, port in zip(exposures, ports, strict=False)
        ]

    def start(self) -> BridgeSet:
        for bridge in self.bridges:
            bridge.start()
        return self

    def stop(self) -> None:
        for bridge in self.bridges:
            bridge.stop()

    def refresh(self) -> None:
        for bridge in self.bridges:
            bridge.refresh()

    def __enter__(self) -> BridgeSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_pcsc_target(spec: str) -> tuple[str, list[int]]:
    """``HOST:PORT[,PORT...]`` or ``PORT[,PORT...]`` (host 127.0.0.1) -> (host, ports)."""
    host, sep, ports_part = spec.rpartition(":")
    if not sep:
        host, ports_part = DEFAULT_HOST, spec
    host = host.strip("[]") or DEFAULT_HOST
    try:
        ports = [int(p) for p in ports_part.split(",") if p.strip()]
    except ValueError:
        raise BridgeError(f"bad vpcd port list {ports_part!r}") from None
    if not ports or any(not 0 < p <= 0xFFFF for p in ports):
        raise BridgeError(f"bad vpcd port list {ports_part!r}")
    return host, ports
