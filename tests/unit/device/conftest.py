"""Fixtures of the device tests: a development device on a real sealed store (SQLite + file key vault)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import DeviceSpec, create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection
from tests.unit.device.hostkit import Clock, Host


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def vault(tmp_path: Path) -> FileKeyVault:
    return FileKeyVault(tmp_path / "vault.key")


@pytest.fixture(scope="session")
def spec() -> DeviceSpec:
    return dev_spec(3, device_id=bytes.fromhex("0102030405060708090A"), serial="TC-TEST-1")


@pytest.fixture
def store_path(tmp_path: Path, spec: DeviceSpec, vault: FileKeyVault) -> Path:
    path = tmp_path / "device.db"
    create_device_store(path, spec, vault)
    return path


@pytest.fixture
def device(store_path: Path, vault: FileKeyVault, clock: Clock) -> Iterator[Device]:
    dev = Device.open(store_path, vault, clock=clock, functions=[])
    yield dev
    dev.close()


@pytest.fixture
def host(device: Device) -> Callable[..., Host]:
    """``host()`` opens a new in-process connection (a card session) to the device."""

    def make(container: int | None = None) -> Host:
        return Host(LocalConnection(device.connect(container)))

    return make


@pytest.fixture
def operator_keys() -> StaticKeys:
    return gp_test_keys()
