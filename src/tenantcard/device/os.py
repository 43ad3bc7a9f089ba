"""The card OS: power, ATR, SELECT routing by AID, per-connection card sessions, command and response
chaining, and the one rule of the device: every command is one transaction and every failure a status word.

A ``Device`` is a ``transport.base.CardSlot``: each ``connect()`` is one card session with its own selected
application and secure channel. ``connect(container=i)`` scopes a session to one container (SELECT reaches
only that container and its functions' applets), to present that container as a card of its own.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tenantcard.device.container import ContainerApp, FunctionApplet
from tenantcard.device.domain import Application, DeviceContext
from tenantcard.device.errors import DeviceError, StoreError
from tenantcard.device.functions.base import ContainerFunction
from tenantcard.device.functions.registry import load_functions
from tenantcard.device.isd import IsdApp
from tenantcard.device.store import Store
from tenantcard.keyvault import KeyVault
from tenantcard.wire.apdu import CLA_CHAINING, MAX_EXTENDED_LC, CommandApdu, ResponseApdu
from tenantcard.wire.apdu import CLA_SECURE_MESSAGING as CLA_SECURE_MESSAGING
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import ISD_AID, Ins, container_aid, container_index
from tenantcard.wire.sw import SW, ApduError

log = logging.getLogger(__name__)

# ISO 7816-3 §8: TS 3B (direct), T0 8A (TD1, 10 historical bytes), TD1 80 (T=0, TD2), TD2 01 (T=1), then the
# historical bytes and TCK (XOR of T0..the last historical byte).
_HISTORICAL = b"tenantcard"


def _atr() -> bytes:
    body = bytes([0x80 | len(_HISTORICAL), 0x80, 0x01]) + _HISTORICAL
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


ATR = _atr()
SHORT_RESPONSE = 256


class CardSession:
    """One connection's card session (transport.base.Card). ``execute`` never raises."""

    def __init__(self, device: Device, scope: int | None) -> None:
        self._device = device
        self._scope = scope
        self._app: Application | None = None
        self._chain: CommandApdu | None = None
        self._chain_data = bytearray()
        self._pending = b""
        self._pending_sw = SW.OK
        self._default_selection()

    def __repr__(self) -> str:
        return f"CardSession(scope={self._scope})"

    @property
    def selected(self) -> Application | None:
        return self._app

    # ---------------------------------------------------------------- power

    def _clear(self) -> None:
        if self._app is not None:
            self._app.deselect()
        self._app = None
        self._chain = None
        self._chain_data = bytearray()
        self._pending = b""

    def _default_selection(self) -> None:
        """GP 2.3.1 §7.1: the ISD is implicitly selected; a container-scoped session selects its container."""
        ctx = self._device.context
        if self._scope is None:
            self._app = IsdApp(ctx)
            return
        try:
            if ctx.store.container(self._scope) is not None:
                self._app = ContainerApp(ctx, self._scope)
        except (StoreError, sqlite3.Error):
            log.exception("store failure at power-on; nothing selected")  # commands will answer 6581

    def power_on(self) -> bytes:
        with self._device.lock:
            self._clear()
            self._default_selection()
        return ATR

    def reset(self) -> bytes:
        return self.power_on()

    def power_off(self) -> None:
        with self._device.lock:
            self._clear()

    # ---------------------------------------------------------------- commands

    def execute(self, apdu: bytes) -> bytes:
        with self._device.lock:
            try:
                return self._execute(bytes(apdu))
            except ApduError as exc:
                return exc.sw.to_bytes()
            except (StoreError, sqlite3.Error, OSError):
                log.exception("store failure while processing a command")
                return SW.MEMORY_FAILURE.to_bytes()
            except Exception:
                log.exception("unexpected failure while processing a command")
                return SW.UNKNOWN.to_bytes()

    def _execute(self, apdu: bytes) -> bytes:
        try:
            cmd = CommandApdu.parse(apdu)
        except WireError:
            self._pending = b""
            return SW.WRONG_LENGTH.to_bytes()
        cla = cmd.cla
        if cla & ~(CLA_CHAINING | CLA_SECURE_MESSAGING | 0x03) not in (0x00, 0x80):
            raise ApduError(SW.CLA_NOT_SUPPORTED, "class not supported")
        if cla & 0x03:
            raise ApduError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED, "logical channels not supported")
        if cmd.ins == Ins.GET_RESPONSE and not cla & (CLA_SECURE_MESSAGING | CLA_CHAINING):
            return self._get_response(cmd)
        self._pending = b""
        if cla & CLA_CHAINING or self._chain is not None:
            joined = self._chained(cmd)
            if joined is None:
                return SW.OK.to_bytes()
            cmd = joined
        if cmd.ins == Ins.SELECT and not cmd.cla & CLA_SECURE_MESSAGING:
            return self._respond(self._select(cmd), cmd)
        app = self._app
        if app is None:
            raise ApduError(SW.COMMAND_NOT_ALLOWED, "no application selected")
        with self._device.context.store.transaction():
            response = app.process(cmd)
        return self._respond(response, cmd)

    def _chained(self, cmd: CommandApdu) -> CommandApdu | None:
        """ISO 7816-4 §5.1.1.1 command chaining: collect, then process the whole command once."""
        first = self._chain
        if first is not None and (first.ins, first.p1, first.p2, first.cla | CLA_CHAINING) != (
            cmd.ins,
            cmd.p1,
            cmd.p2,
            cmd.cla | CLA_CHAINING,
        ):
            self._chain = None
            self._chain_data = bytearray()
            raise ApduError(SW.LAST_COMMAND_EXPECTED, "chain interrupted by another command")
        if len(self._chain_data) + len(cmd.data) > MAX_EXTENDED_LC:
            self._chain = None
            self._chain_data = bytearray()
            raise ApduError(SW.WRONG_LENGTH, "chained command too long")
        self._chain_data += cmd.data
        if cmd.cla & CLA_CHAINING:
            self._chain = cmd if first is None else first
            return None
        data = bytes(self._chain_data)
        self._chain = None
        self._chain_data = bytearray()
        return CommandApdu(
            cmd.cla & ~CLA_CHAINING, cmd.ins, cmd.p1, cmd.p2, data, cmd.le, extended=len(data) > 0xFF or cmd.extended
        )

    def _select(self, cmd: CommandApdu) -> ResponseApdu:
        """SELECT by AID (ISO 7816-4 §7.1.1, GP 2.3.1 §11.9): P1 04, P2 00 (first or only occurrence)."""
        if cmd.p1 != 0x04 or cmd.p2 not in (0x00, 0x0C):
            raise ApduError(SW.INCORRECT_P1P2, "only SELECT by AID")
        aid = cmd.data
        if self._app is not None:
            self._app.deselect()  # the secure channel is bound to the selection (GP 2.3.1 §10.2.3)
        self._app = None
        ctx = self._device.context
        app: Application | None = None
        if self._scope is None:
            if aid in (ISD_AID, b""):
                app = IsdApp(ctx)
            else:
                index = container_index(aid)
                if index is not None and ctx.store.container(index) is not None:
                    app = ContainerApp(ctx, index)
        elif ctx.store.container(self._scope) is not None:
            if aid == container_aid(self._scope):
                app = ContainerApp(ctx, self._scope)
            else:
                for function in ctx.functions:
                    if aid and aid in getattr(function, "aids", ()):
                        applet = FunctionApplet(ContainerApp(ctx, self._scope), function, aid)
                        with ctx.store.transaction():
                            response = applet.on_select(cmd)
                        self._app = applet
                        return response
        if app is None:
            raise ApduError(SW.NOT_FOUND, "application not found")
        self._app = app
        response = app.select_response()
        return ResponseApdu.of(SW.OK) if cmd.p2 == 0x0C else response

    def _respond(self, response: ResponseApdu, cmd: CommandApdu) -> bytes:
        """ISO 7816-4 §5.3.4: answers longer than the command allows wait for GET RESPONSE (61xx)."""
        data = response.data
        limit = len(data) if (cmd.extended or (cmd.le or 0) > SHORT_RESPONSE) else SHORT_RESPONSE
        if len(data) <= limit:
            return response.to_bytes()
        self._pending = data[SHORT_RESPONSE:]
        self._pending_sw = response.sw
        return data[:SHORT_RESPONSE] + SW.bytes_remaining(len(self._pending)).to_bytes()

    def _get_response(self, cmd: CommandApdu) -> bytes:
        if not self._pending:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no response data waiting")
        if cmd.p1 or cmd.p2:
            raise ApduError(SW.INCORRECT_P1P2, "GET RESPONSE P1 P2 = 00 00")
        n = cmd.le or SHORT_RESPONSE
        chunk, self._pending = self._pending[:n], self._pending[n:]
        if self._pending:
            return chunk + SW.bytes_remaining(len(self._pending)).to_bytes()
        return chunk + self._pending_sw.to_bytes()


class Device:
    """A software secure element on one sealed store. Thread-safe: one lock serializes every command."""

    def __init__(self, store: Store, context: DeviceContext) -> None:
        self._store = store
        self.context = context
        self.lock = threading.RLock()
        self._closed = False

    def __repr__(self) -> str:
        return f"Device(device_id={self.device_id.hex()})"

    @classmethod
    def open(
        cls,
        path: Path,
        vault: KeyVault,
        *,
        random: Callable[[int], bytes] = os.urandom,
        clock: Callable[[], float] = time.time,
        functions: Sequence[ContainerFunction] | None = None,
    ) -> Device:
        """Open the device on its store file; raises StoreError when it cannot."""
        store = Store.open(Path(path), vault, random=random)
        fns = load_functions() if functions is None else list(functions)
        return cls(store, DeviceContext(store, store.device_id, random, clock, fns))

    @property
    def atr(self) -> bytes:
        return ATR

    @property
    def device_id(self) -> bytes:
        return self._store.device_id

    @property
    def store(self) -> Store:
        return self._store

    def container_indexes(self) -> list[int]:
        """Indexes of every container (their AIDs are ``wire.gp.container_aid(index)``)."""
        with self.lock:
            return [row.index for row in self._store.containers()]

    def connect(self, container: int | None = None) -> CardSession:
        """A new card session; ``container=i`` scopes it to container ``i``."""
        with self.lock:
            if self._closed:
                raise DeviceError("device is closed")
            if container is not None and self._store.container(container) is None:
                raise DeviceError("no such container")
            return CardSession(self, container)

    def check(self) -> None:
        """Integrity of the store and of every sealed record (raises StoreError)."""
        with self.lock:
            self._store.check()

    def close(self) -> None:
        with self.lock:
            if not self._closed:
                self._closed = True
                self._store.close()
