"""Host side of PC/SC: a ``Connection`` to the card in a named reader, over pyscard's WinSCard API.

Readers are addressed by name, never by index (PCSC-NOTES gotcha 6: pcscd orders readers by its config
directory listing). Only raw APDU exchange lives here; GET RESPONSE, chaining and secure messaging are the
client's processors, as for every other transport.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from smartcard import scard

from tenantcard.transport.base import TransportError


class PcscError(TransportError):
    """PC/SC refused: no such reader, no card, card removed, pcscd gone. Carries the PC/SC result code."""

    def __init__(self, what: str, code: int = 0) -> None:
        self.code = code
        detail = f": {scard.SCardGetErrorMessage(code)} (0x{code & 0xFFFFFFFF:08X})" if code else ""
        super().__init__(f"{what}{detail}")


def _check(what: str, code: int) -> None:
    if code != scard.SCARD_S_SUCCESS:
        raise PcscError(what, code)


class _Context:
    """A PC/SC resource manager context, released on close."""

    def __init__(self) -> None:
        code, self.handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _check("cannot reach pcscd", code)

    def close(self) -> None:
        scard.SCardReleaseContext(self.handle)

    def readers(self) -> list[str]:
        code, readers = scard.SCardListReaders(self.handle, [])
        if code in (scard.SCARD_E_NO_READERS_AVAILABLE, scard.SCARD_E_READER_UNAVAILABLE):
            return []
        _check("cannot list readers", code)
        return [str(r) for r in readers]

    def state(self, reader: str) -> int:
        code, states = scard.SCardGetStatusChange(self.handle, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if code == scard.SCARD_E_TIMEOUT:
            return 0
        _check(f"cannot get the state of {reader!r}", code)
        return int(states[0][1])


def list_readers() -> list[str]:
    """Names of the readers pcscd knows, in pcscd's order."""
    ctx = _Context()
    try:
        return ctx.readers()
    finally:
        ctx.close()


def card_present(reader: str) -> bool:
    ctx = _Context()
    try:
        return bool(ctx.state(reader) & scard.SCARD_STATE_PRESENT)
    finally:
        ctx.close()


def _wait(reader: str, want_present: bool, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    ctx = _Context()
    try:
        while True:
            if bool(ctx.state(reader) & scard.SCARD_STATE_PRESENT) == want_present:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
    finally:
        ctx.close()


def wait_for_card(reader: str, timeout: float) -> bool:
    """True once pcscd reports a card in ``reader`` (pcscd polls vpcd slots every ~0.4 s)."""
    return _wait(reader, True, timeout)


def wait_for_removal(reader: str, timeout: float) -> bool:
    """True once pcscd reports ``reader`` empty."""
    return _wait(reader, False, timeout)


def reader_names(readers: list[str], *, prefix: str) -> list[str]:
    """The readers whose name starts with ``prefix``, in name order."""
    return sorted(r for r in readers if r.startswith(prefix))


class PcscConnection:
    """``transport.base.Connection`` to the card in ``reader``. ``exclusive`` keeps other PC/SC clients
    (e.g. OpenSC) out while connected. ``transmit`` returns data + SW1 SW2 as the card sent them."""

    def __init__(
        self,
        reader: str,
        *,
        exclusive: bool = False,
        protocols: int = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        connect_timeout: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reader = reader
        self._ctx = _Context()
        share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        deadline = time.monotonic() + connect_timeout
        try:
            while True:
                code, self._card, self.protocol = scard.SCardConnect(self._ctx.handle, reader, share, protocols)
                if code == scard.SCARD_S_SUCCESS:
                    break
                retryable = code in (scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_TIMEOUT)
                if not retryable or time.monotonic() >= deadline:
                    raise PcscError(f"cannot connect to {reader!r}", code)
                sleep(0.05)
            code, _, _, _, atr = scard.SCardStatus(self._card)
            _check(f"cannot read the ATR in {reader!r}", code)
        except BaseException:
            self._ctx.close()
            raise
        self.atr = bytes(atr)
        self._open = True

    def transmit(self, apdu: bytes) -> bytes:
        if not self._open:
            raise PcscError("connection closed")
        code, response = scard.SCardTransmit(self._card, self.protocol, list(apdu))
        _check(f"transmit to {self.reader!r} failed", code)
        if len(response) < 2:
            raise PcscError(f"response from {self.reader!r} shorter than a status word")
        return bytes(response)

    def reconnect(self, *, reset: bool = True) -> bytes:
        """Warm reset (or just re-attach) the card; returns the ATR."""
        disposition = scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD
        code, self.protocol = scard.SCardReconnect(
            self._card, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1, disposition
        )
        _check(f"cannot reconnect to {self.reader!r}", code)
        code, _, _, _, atr = scard.SCardStatus(self._card)
        _check(f"cannot read the ATR in {self.reader!r}", code)
        self.atr = bytes(atr)
        return self.atr

    def close(self, *, reset: bool = False) -> None:
        if not self._open:
            return
        self._open = False
        try:
            scard.SCardDisconnect(self._card, scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD)
        finally:
            self._ctx.close()

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
