"""Host side of the device's TCP endpoint: a blocking ``Connection`` speaking the vpcd framing.

Addresses are written ``tcp://HOST:PORT`` or ``HOST:PORT`` (an IPv6 host in brackets: ``[::1]:PORT``).
"""

from __future__ import annotations

import contextlib
import socket
from types import TracebackType

from tenantcard.transport.base import TransportError
from tenantcard.transport.framing import (
    HEADER_LEN,
    MAX_PAYLOAD,
    Control,
    ControlMessage,
    decode_length,
    encode_frame,
)

DEFAULT_TIMEOUT = 30.0
SCHEME = "tcp://"

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
_RECV_SIZE = 4096


class AddressError(TransportError, ValueError):
    """A device address that does not read as ``tcp://HOST:PORT`` or ``HOST:PORT``."""


def parse_address(address: str) -> tuple[str, int]:
    """``"tcp://127.0.0.1:4000"`` / ``"127.0.0.1:4000"`` / ``"[::1]:4000"`` -> ``(host, port)``.

    Port 0 is accepted (a server asked to pick a free port)."""
    text = address.strip()
    if "://" in text:
        if not text.lower().startswith(SCHEME):
            raise AddressError(f"unsupported address scheme in {address!r} (expected tcp://HOST:PORT)")
        text = text[len(SCHEME) :]
    text = text.rstrip("/")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise AddressError(f"bad address {address!r} (expected [IPv6]:PORT)")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise AddressError(f"bad address {address!r} (expected HOST:PORT)")
    if not host:
        raise AddressError(f"missing host in address {address!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise AddressError(f"bad port in address {address!r}")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    return f"{SCHEME}[{host}]:{port}" if ":" in host else f"{SCHEME}{host}:{port}"


class TcpConnection:
    """A card session at a device's network address.

    Connecting powers the card on (vpcd POWER ON) and reads its ATR (``.atr``). ``transmit`` sends one
    C-APDU and returns the R-APDU. Every failure of the link raises ``TransportError``; after one, the
    connection is closed (the card session is gone with it).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_response: int = MAX_PAYLOAD,
    ) -> None:
        self.host = host
        self.port = port
        self._max_response = max_response
        self._buf = bytearray()
        try:
            self._sock: socket.socket | None = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise TransportError(f"cannot connect to {format_address(host, port)}: {_reason(exc)}") from None
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.atr = self._power(Control.POWER_ON)
        except TransportError:
            self.close()
            raise

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def closed(self) -> bool:
        return self._sock is None

    def transmit(self, apdu: bytes) -> bytes:
        if len(apdu) == 1:
            raise TransportError("a 1-byte C-APDU cannot be sent: the framing reads it as a control message")
        self._send(apdu)
        return self._receive()

    def reset(self) -> bytes:
        """Warm reset (drops the selected application and the secure channel); returns the new ATR."""
        self.atr = self._power(Control.RESET)
        return self.atr

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.sendall(ControlMessage(Control.POWER_OFF).to_frame())
        with contextlib.suppress(OSError):
            sock.close()

    def __enter__(self) -> TcpConnection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _power(self, control: Control) -> bytes:
        # vpcd protocol: POWER ON / RESET get no reply; the ATR request does, and 0 bytes means "no card".
        self._send(ControlMessage(control).to_payload())
        self._send(ControlMessage(Control.ATR).to_payload())
        atr = self._receive()
        if not atr:
            self.close()
            raise TransportError(f"no card at {self.address} (the device is busy or has no card session to give)")
        return atr

    def _send(self, payload: bytes) -> None:
        frame = encode_frame(payload)
        sock = self._open()
        try:
            sock.sendall(frame)
        except OSError as exc:
            self.close()
            raise TransportError(f"send to {self.address} failed: {_reason(exc)}") from None

    def _receive(self) -> bytes:
        sock = self._open()
        try:
            header = self._recv_exactly(sock, HEADER_LEN)
            length = decode_length(header, self._max_response)
            return self._recv_exactly(sock, length) if length else b""
        except TransportError:
            self.close()
            raise
        except TimeoutError:
            self.close()
            raise TransportError(f"no answer from {self.address} in time") from None
        except OSError as exc:
            self.close()
            raise TransportError(f"receive from {self.address} failed: {_reason(exc)}") from None

    def _recv_exactly(self, sock: socket.socket, n: int) -> bytes:
        # Reads whole segments into a buffer: a reply's header and payload usually arrive in one recv.
        while len(self._buf) < n:
            if _QUICKACK is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            chunk = sock.recv(max(n - len(self._buf), _RECV_SIZE))
            if not chunk:
                raise TransportError(f"{self.address} closed the connection")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _open(self) -> socket.socket:
        if self._sock is None:
            raise TransportError("connection is closed")
        return self._sock


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def connect(address: str, *, timeout: float = DEFAULT_TIMEOUT) -> TcpConnection:
    """Open a card session at ``tcp://HOST:PORT`` / ``HOST:PORT``."""
    host, port = parse_address(address)
    return TcpConnection(host, port, timeout=timeout)
