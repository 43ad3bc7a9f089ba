"""The operator with real devices, over its REST API: ``tenantcard operator serve`` as a process, devices
manufactured by the operator and served on the stores it wrote, providers with contracts, placements, the
provider's side of taking ownership, and the staff's views of jobs, audit log and registry."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenantcard.client.container import ContainerSession
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device import Device
from tenantcard.keyvault import open_vault
from tenantcard.transport.tcp_client import connect
from tenantcard.transport.tcp_server import DeviceServerThread

ADMIN = "staff-credential-for-integration-tests"


@pytest.fixture
def operators() -> Iterator[list[OperatorProcess]]:
    """The operator processes a test starts (append them); stopped at its end."""
    started: list[OperatorProcess] = []
    yield started
    for op in started:
        op.stop()


class OperatorProcess:
    """``tenantcard operator serve`` on ``db_url`` with the staff credential ADMIN; ``env`` adds or overrides
    ``TENANTCARD_OPERATOR_*`` settings. Its stderr goes to a ``.log`` file in ``workdir``."""

    def __init__(self, db_url: str, workdir: Path, **env: str) -> None:
        self.db_url = db_url
        self.workdir = workdir
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.starts = 0

    def start(self) -> OperatorProcess:
        env = {
            **os.environ,
            "TENANTCARD_OPERATOR_ADMIN_TOKEN": ADMIN,
            "TENANTCARD_OPERATOR_DEVICE_STORE_DIR": str(self.workdir / "devices"),
            "TENANTCARD_OPERATOR_JOB_POLL_SECONDS": "0.1",
            "TENANTCARD_OPERATOR_JOB_RETRY_BASE_SECONDS": "0.2",
            "TENANTCARD_OPERATOR_JOB_RETRY_MAX_SECONDS": "1.0",
            **self.env,
        }
        cmd = [sys.executable, "-m", "tenantcard.cli.main", "operator", "serve", "--db", self.db_url]
        cmd += ["--vault", f"file:{self.workdir / 'master.key'}", "--listen", "127.0.0.1:0"]
        self.starts += 1
        log_path = self.workdir / f"operator-{self.starts}.log"
        with log_path.open("a") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening (http://\S+)", line)
        if match is None:
            self.kill()
            raise AssertionError(f"operator did not start: {line!r} {log_path.read_text()[-2000:]}")
        self.url = match.group(1)
        return self

    def client(self, credential: str = ADMIN) -> httpx.Client:
        """An HTTP client with ``credential`` (staff's by default)."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {credential}"}, timeout=120)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class FleetDevice:
    """A device the operator manufactured; ``serve`` starts it (in a thread, on its store) and checks it in."""

    device_id: str
    serial: str
    store_path: str
    vault_uri: str
    info: dict[str, Any] = field(default_factory=dict)
    device: Device | None = None
    server: DeviceServerThread | None = None
    address: str = ""

    def serve(self, admin: httpx.Client, port: int = 0) -> None:
        self.device = Device.open(Path(self.store_path), open_vault(self.vault_uri))
        self.server = DeviceServerThread(self.device, "127.0.0.1", port).start()
        self.address = self.server.address
        r = admin.post(f"/v1/devices/{self.device_id}/checkin", json={"address": self.address})
        assert r.status_code == 200, r.text
        assert r.json()["address"] == self.address

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.device is not None:
            self.device.close()
            self.device = None


def manufacture(
    admin: httpx.Client, containers: int = 2, *, quota: int = 8192, serial: str | None = None, serve: bool = True
) -> FleetDevice:
    """Manufacture over REST; unless ``serve`` is False, start the device on the store the operator wrote and
    check it in."""
    body: dict[str, Any] = {"containers": [{"quota": quota} for _ in range(containers)]}
    if serial:
        body["serial"] = serial
    r = admin.post("/v1/admin/devices", json=body)
    assert r.status_code == 201, r.text
    info = r.json()
    made = FleetDevice(info["id"], info["serial"], info["store_path"], info["vault_uri"], info)
    if serve:
        made.serve(admin)
    return made


def provider_with_contract(
    admin: httpx.Client, name: str, *, quota: int = 1024, option: str = "A"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A registered provider (with its credential) and a contract of it."""
    r = admin.post("/v1/admin/providers", json={"name": name})
    assert r.status_code == 201, r.text
    provider: dict[str, Any] = r.json()
    r = admin.post("/v1/admin/contracts", json={"provider_id": provider["id"], "option": option, "quota": quota})
    assert r.status_code == 201, r.text
    contract: dict[str, Any] = r.json()
    return provider, contract


def request(client: httpx.Client, contract_id: str, device: dict[str, str], key: str | None = None) -> httpx.Response:
    """A provider's request for a container on ``device`` (one of device_id, serial, idp_pointer)."""
    body = {"contract_id": contract_id, "device": device, "idempotency_key": key or uuid.uuid4().hex}
    return client.post("/v1/authorizations", json=body)


def take_ownership(bundle: dict[str, Any]) -> StaticKeys:
    """What a provider does with the bundle: SCP03 with the initial keys, PUT KEY of its own key set."""
    keys = bundle["keys"]
    initial = StaticKeys(
        bytes.fromhex(keys["enc"]), bytes.fromhex(keys["mac"]), bytes.fromhex(keys["dek"]), bundle["kvn"]
    )
    own = StaticKeys.generate(0x01)
    with connect(bundle["device_address"]) as conn:
        session = ContainerSession(conn, bytes.fromhex(bundle["container_aid"]))
        session.select()
        session.take_ownership(initial, own)
    return own


def wait_job(
    admin: httpx.Client, job_id: str, timeout: float = 60.0, *, done: int | None = None, interval: float = 0.1
) -> dict[str, Any]:
    """The job once it finished or, with ``done``, once that many of its items are done."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = admin.get(f"/v1/admin/jobs/{job_id}").json()
        if (job["status"] != "running") if done is None else (job["done"] >= done):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job did not get there: {job}")
        time.sleep(interval)


def audit_entries(admin: httpx.Client) -> list[dict[str, Any]]:
    """The whole audit log, page by page."""
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        r = admin.get("/v1/admin/audit", params={"after": after, "limit": 1000})
        assert r.status_code == 200, r.text
        page: list[dict[str, Any]] = r.json()
        out.extend(page)
        if len(page) < 1000:
            return out
        after = page[-1]["seq"]


def device_states(admin: httpx.Client, device_id: str) -> dict[int, tuple[str, str | None]]:
    """Each container's (state, provider id) in the registry, once reconciled with the device."""
    r = admin.post(f"/v1/admin/devices/{device_id}/reconcile")
    assert r.status_code == 200, r.text
    return {c["index"]: (c["state"], c["provider_id"]) for c in r.json()["containers"]}
