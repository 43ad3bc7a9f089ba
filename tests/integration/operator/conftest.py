"""Fixtures of the operator's integration tests: the operator over real HTTP (uvicorn on 127.0.0.1:0),
real device processes (the TCP device server on a real sealed store), and a provider-side helper."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tenantcard.device.os import Device
from tenantcard.keyvault import open_vault
from tenantcard.operator.app import create_app
from tenantcard.operator.settings import OperatorSettings
from tenantcard.transport.tcp_server import DeviceServerThread

ADMIN = "staff-credential-for-integration-tests"


class LiveOperator:
    """create_app(settings) served by uvicorn in a thread."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveOperator:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("operator did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def client(self, credential: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def admin(self) -> httpx.Client:
        return self.client(ADMIN)


@dataclass
class RunningDevice:
    device_id: str
    serial: str
    device: Device
    server: DeviceServerThread
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.server.address

    def stop(self) -> None:
        self.server.stop()
        self.device.close()


def serve_device(store_path: str, vault_uri: str) -> tuple[Device, DeviceServerThread]:
    device = Device.open(Path(store_path), open_vault(vault_uri))
    server = DeviceServerThread(device).start()
    return device, server


def manufacture(
    admin: httpx.Client, containers: int = 2, quota: int = 8192, serial: str | None = None
) -> RunningDevice:
    """Manufacture over REST, start the device on the store the operator wrote, check it in."""
    body: dict[str, Any] = {"containers": [{"quota": quota} for _ in range(containers)]}
    if serial:
        body["serial"] = serial
    r = admin.post("/v1/admin/devices", json=body)
    assert r.status_code == 201, r.text
    info = r.json()
    device, server = serve_device(info["store_path"], info["vault_uri"])
    running = RunningDevice(info["id"], info["serial"], device, server, info)
    r = admin.post(f"/v1/devices/{info['id']}/checkin", json={"address": server.address})
    assert r.status_code == 200, r.text
    assert r.json()["address"] == server.address
    return running


def operator_settings(tmp_path: Path, db_url: str, **overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "db_url": db_url,
        "vault_uri": f"file:{tmp_path / 'master.key'}",
        "admin_token": ADMIN,
        "device_store_dir": tmp_path / "devices",
        "job_poll_seconds": 0.1,
        "job_retry_base_seconds": 0.2,
        "job_retry_max_seconds": 1.0,
        "auth_failure_limit": 5,
        "device_lock_wait_seconds": 10.0,
    }
    values.update(overrides)
    return OperatorSettings(**values)


@pytest.fixture
def live_operator(db_url: str, tmp_path: Path) -> Iterator[LiveOperator]:
    op = LiveOperator(operator_settings(tmp_path, db_url)).start()
    yield op
    op.stop()


def wait_job(admin: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = admin.get(f"/v1/admin/jobs/{job_id}").json()
        if job["status"] != "running":
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job did not finish: {job}")
        time.sleep(0.1)
