"""Invariant 6: a device process killed at any instant restarts with each container either before or after the
interrupted command.

A real ``tenantcard device serve`` is killed with SIGKILL at random moments while a client fires PUT KEY
(key rotation in one container) and STORE DATA / DELETE (objects in another) in a loop. After each kill the
store is opened in this process and checked: its integrity, the key set (the last acknowledged one or the one
in flight: found by trying both), and every object (fully there with its acknowledged or in-flight value, or
absent). A command answered 9000 is never lost.
"""

from __future__ import annotations

import os
import random
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tenantcard.client.container import ContainerSession
from tenantcard.client.errors import ClientError, StatusError
from tenantcard.client.isd import IsdSession
from tenantcard.crypto.errors import SecureChannelError
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection, TransportError
from tenantcard.wire.gp import container_aid
from tests.support.transports import ServeProcess, run_cli

KILLS = int(os.environ.get("TENANTCARD_CRASH_KILLS", "40"))
NAMES = [f"obj-{i}".encode() for i in range(6)]
ROTATING = 0  # container whose key set is rotated by PUT KEY
LOADING = 1  # container whose objects are written by STORE DATA and removed by DELETE


@dataclass
class Truth:
    """What the client knows: acknowledged state, plus the one command in flight (sent, no answer yet)."""

    keys: StaticKeys
    objects: dict[bytes, bytes] = field(default_factory=dict)
    pending_keys: StaticKeys | None = None
    pending_object: tuple[bytes, bytes | None] | None = None  # (name, new value or None for DELETE)
    commands: int = 0
    killed_mid_command: bool = False
    error: str | None = None  # a refusal of a valid command: a device bug


def open_device(store: Path) -> Device:
    return Device.open(store, FileKeyVault(Path(f"{store}.vault")))


def authenticate(device: Device, index: int, keys: StaticKeys) -> ContainerSession | None:
    session = ContainerSession(LocalConnection(device.connect()), container_aid(index))
    session.select()
    try:
        session.authenticate(keys)
    except (StatusError, SecureChannelError):
        return None
    return session


def prepare(store: Path, rng: random.Random) -> tuple[Truth, StaticKeys]:
    """Both containers owned by a provider; returns the rotating container's truth and the loading one's keys."""
    device = open_device(store)
    try:
        isd = IsdSession(LocalConnection(device.connect()))
        isd.select()
        isd.authenticate(gp_test_keys())
        owned: list[StaticKeys] = []
        for index in (ROTATING, LOADING):
            initial, own = (
                StaticKeys.generate(0x01, random=rng.randbytes),
                StaticKeys.generate(0x30, random=rng.randbytes),
            )
            isd.place_authorization(container_aid(index), f"provider-{index}", initial, int(time.time()) + 3600)
            session = ContainerSession(LocalConnection(device.connect()), container_aid(index))
            session.select()
            session.take_ownership(initial, own)
            owned.append(own)
    finally:
        device.close()
    return Truth(owned[0]), owned[1]


def client_loop(server: ServeProcess, truth: Truth, loading_keys: StaticKeys, rng: random.Random) -> None:
    """Fires PUT KEY and STORE DATA / DELETE until the server dies under it."""
    try:
        with closing(server.connect(timeout=10)) as conn:
            rotating = ContainerSession(conn, container_aid(ROTATING))
            loading = ContainerSession(conn, container_aid(LOADING))
            while True:
                rotating.select()
                rotating.authenticate(truth.keys)
                for _ in range(2):
                    kvn = 0x30 + (truth.keys.kvn - 0x30 + 1) % 15
                    new = StaticKeys.generate(kvn, random=rng.randbytes)
                    truth.pending_keys = new
                    rotating.rotate_keys(new)
                    truth.keys, truth.pending_keys = new, None
                    truth.commands += 1
                loading.select()
                loading.authenticate(loading_keys)
                for _ in range(4):
                    name = rng.choice(NAMES)
                    if name in truth.objects and rng.random() < 0.25:
                        truth.pending_object = (name, None)
                        loading.delete_object(name)
                        del truth.objects[name]
                    else:
                        value = rng.randbytes(rng.randrange(1, 1500))
                        truth.pending_object = (name, value)
                        loading.put_object(name, value)
                        truth.objects[name] = value
                    truth.pending_object = None
                    truth.commands += 1
    except (TransportError, OSError):
        truth.killed_mid_command = truth.pending_keys is not None or truth.pending_object is not None
    except ClientError as exc:
        truth.error = f"the device refused a valid command: {exc}"


def check_after_restart(store: Path, truth: Truth, loading_keys: StaticKeys) -> None:
    device = open_device(store)  # the store opens cleanly ...
    try:
        device.check()  # ... and every sealed record in it opens
        # the key set is the acknowledged one or the one in flight, never anything else
        session = authenticate(device, ROTATING, truth.keys)
        if session is None:
            assert truth.pending_keys is not None, "acknowledged key set lost"
            session = authenticate(device, ROTATING, truth.pending_keys)
            assert session is not None, "neither the old nor the new key set opens the container"
            truth.keys = truth.pending_keys
        truth.pending_keys = None
        # every object is whole: its acknowledged value, or the in-flight one, or absent if it never existed
        loading = authenticate(device, LOADING, loading_keys)
        assert loading is not None
        stored = {obj.name for obj in loading.list_objects()}
        expected = dict(truth.objects)
        if truth.pending_object is not None:
            name, new_value = truth.pending_object
            actual = loading.get_object(name) if name in stored else None
            assert actual in (expected.get(name), new_value), "an interrupted object is neither before nor after"
            if actual is None:
                expected.pop(name, None)
            else:
                expected[name] = actual
            truth.pending_object = None
        assert stored == set(expected)
        for name, value in expected.items():
            assert loading.get_object(name) == value
        truth.objects = expected
    finally:
        device.close()


@pytest.mark.slow
def test_sigkill_during_put_key_and_store_data(tmp_path: Path) -> None:
    seed = int(os.environ.get("TENANTCARD_CRASH_SEED", "20261129"))
    rng = random.Random(seed)
    store = tmp_path / "device.db"
    result = run_cli("device", "init", "--store", str(store), "--containers", "2", "--dev-keys")
    assert result.returncode == 0, result.stderr
    truth, loading_keys = prepare(store, rng)
    mid_command = 0
    started = time.monotonic()
    for kill in range(KILLS):
        server = ServeProcess(store, log_path=tmp_path / "serve.log").start()
        client = threading.Thread(target=client_loop, args=(server, truth, loading_keys, random.Random(rng.random())))
        client.start()
        time.sleep(rng.uniform(0.02, 0.3))
        server.kill()
        client.join(30)
        assert not client.is_alive(), f"client hung after kill {kill} (seed {seed})"
        assert truth.error is None, f"{truth.error} (seed {seed})"
        mid_command += truth.killed_mid_command
        check_after_restart(store, truth, loading_keys)
    elapsed = time.monotonic() - started
    assert truth.commands > KILLS, f"the client barely ran (seed {seed})"
    # most kills must land inside a command for this test to mean anything
    assert mid_command >= KILLS // 3, f"only {mid_command} of {KILLS} kills hit a command in flight (seed {seed})"
    assert elapsed < 120, f"crash loop took {elapsed:.0f} s"
    print(f"{KILLS} kills, {mid_command} mid-command, {truth.commands} commands answered, {elapsed:.1f} s")
    # the final store still serves
    with ServeProcess(store, log_path=tmp_path / "serve.log") as server, closing(server.connect()) as conn:
        session = ContainerSession(conn, container_aid(ROTATING))
        session.select()
        session.authenticate(truth.keys)
