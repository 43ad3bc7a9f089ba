"""Drives one ``ContainerFunction`` over a real sealed store (SQLite + file key vault), the way a container
does: one transaction per command, an ``ApduError`` answered as its status word and rolled back."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tenantcard.device.functions.base import ContainerFunction, FunctionContext, Rights
from tenantcard.device.store import Store
from tenantcard.keyvault import FileKeyVault
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.sw import ApduError

PROVIDER = Rights(provider=True, holder=False, security_level=0x33)
PROVIDER_MAC_ONLY = Rights(provider=True, holder=False, security_level=0x01)
HOLDER = Rights(provider=False, holder=True, security_level=0)
NOBODY = Rights(provider=False, holder=False, security_level=0)


class FunctionHarness:
    def __init__(
        self,
        directory: Path,
        function: ContainerFunction,
        *,
        quota: int = 64 * 1024,
        now: Callable[[], float] | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        directory = directory / function.name
        directory.mkdir()
        self.store = Store.create(directory / "device.db", FileKeyVault(directory / "vault.key"), b"\x01" * 10)
        with self.store.transaction():
            self.store.add_container(1, quota, 0)
            self.store.authorize_container(1, "provider-a", 2**40)
        self.function = function
        self.clock: float = 1_700_000_000.0
        self.now = now or (lambda: self.clock)
        self.random = random
        self.sessions: dict[str, object] = {}

    def context(self, rights: Rights) -> FunctionContext:
        return FunctionContext(1, rights, self.store.objects(1), self.random, self.now, self.sessions)

    def send(self, rights: Rights, command: CommandApdu) -> ResponseApdu:
        assert self.function.handles(command.ins)
        try:
            with self.store.transaction():
                return self.function.process(self.context(rights), command)
        except ApduError as exc:
            return ResponseApdu.of(exc.sw)

    def snapshot(self) -> dict[tuple[str, bytes], bytes | None]:
        """Every object of the function's kinds, to show that a refused command changed nothing."""
        objects = self.store.objects(1)
        out: dict[tuple[str, bytes], bytes | None] = {}
        for kind in ("otp", "challenge", "pki.key", "pki.cert"):
            for name in objects.names(kind):
                out[(kind, name)] = objects.get(kind, name)
        return out
