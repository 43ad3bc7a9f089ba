"""What every service is built from: database, custody, device gateway, settings, clock and randomness."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, update

from tenantcard.operator.db.models import Device
from tenantcard.operator.db.session import Database
from tenantcard.operator.services.audit import AuditLog
from tenantcard.operator.services.custody import Custody
from tenantcard.operator.services.errors import DeviceBusy, NotFound
from tenantcard.operator.services.gateway import DeviceGateway
from tenantcard.operator.settings import OperatorSettings

Clock = Callable[[], float]
RandomSource = Callable[[int], bytes]


def new_id(prefix: str, random: RandomSource) -> str:
    return f"{prefix}_{random(12).hex()}"


@dataclass
class Env:
    settings: OperatorSettings
    db: Database
    custody: Custody
    gateway: DeviceGateway
    clock: Clock = time.time
    random: RandomSource = os.urandom
    audit: AuditLog = field(init=False)
    locks: DeviceLocks = field(init=False)

    def __post_init__(self) -> None:
        self.audit = AuditLog(self.clock)
        self.locks = DeviceLocks(self)

    def now(self) -> int:
        return int(self.clock())


class DeviceLocks:
    """Never two operations on one device at once, across threads and operator processes.

    A process-local lock per device, then a lease in the device row taken by one conditional UPDATE
    (``lock_owner`` free or its lease expired). The UPDATE is atomic on SQLite (one writer) and on
    PostgreSQL (the row lock makes a concurrent UPDATE re-check its WHERE clause), so it holds for several
    operator processes on one database; a crashed holder's lease simply runs out.
    """

    def __init__(self, env: Env) -> None:
        self._env = env
        self._guard = threading.Lock()
        self._local: dict[str, threading.Lock] = {}

    def _local_lock(self, device_id: str) -> threading.Lock:
        with self._guard:
            return self._local.setdefault(device_id, threading.Lock())

    @contextmanager
    def hold(self, device_id: str) -> Iterator[None]:
        env = self._env
        wait = env.settings.device_lock_wait_seconds
        local = self._local_lock(device_id)
        if not local.acquire(timeout=max(wait, 0.001)):
            raise DeviceBusy("another operation is running on this device")
        try:
            owner = f"{os.getpid()}:{threading.get_ident()}:{env.random(6).hex()}"
            deadline = time.monotonic() + wait
            while not self._try_take(device_id, owner):
                self._check_exists(device_id)
                if time.monotonic() >= deadline:
                    raise DeviceBusy("another operation is running on this device")
                time.sleep(0.05)
            try:
                yield
            finally:
                with env.db.transaction() as s:
                    s.execute(
                        update(Device)
                        .where(Device.id == device_id, Device.lock_owner == owner)
                        .values(lock_owner=None, lock_until=None)
                    )
        finally:
            local.release()

    def _check_exists(self, device_id: str) -> None:
        with self._env.db.transaction() as s:
            if s.get(Device, device_id) is None:
                raise NotFound("no such device")

    def _try_take(self, device_id: str, owner: str) -> bool:
        env = self._env
        now = env.now()
        with env.db.transaction() as s:
            result = s.execute(
                update(Device)
                .where(
                    and_(
                        Device.id == device_id,
                        or_(Device.lock_owner.is_(None), Device.lock_until < now),
                    )
                )
                .values(lock_owner=owner, lock_until=now + int(env.settings.device_lock_seconds))
            )
            return bool(getattr(result, "rowcount", 0) == 1)
