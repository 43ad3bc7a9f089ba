"""The contract-end job, with the operator as a subprocess killed by SIGKILL half-way, resumes after a restart
and revokes every container exactly once (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.operator.conftest import ADMIN, RunningDevice, manufacture, wait_job
from tests.integration.operator.test_operator_flow import device_states, request, take_ownership

DEVICES = 3
CONTAINERS = 2


class OperatorProcess:
    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db_url = db_url
        self.tmp_path = tmp_path
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> OperatorProcess:
        env = {
            **os.environ,
            "TENANTCARD_OPERATOR_ADMIN_TOKEN": ADMIN,
            "TENANTCARD_OPERATOR_DEVICE_STORE_DIR": str(self.tmp_path / "devices"),
            "TENANTCARD_OPERATOR_JOB_ITEM_DELAY_SECONDS": "0.4",
            "TENANTCARD_OPERATOR_JOB_POLL_SECONDS": "0.1",
        }
        cmd = [sys.executable, "-m", "tenantcard.cli.main", "operator", "serve", "--db", self.db_url]
        cmd += ["--vault", f"file:{self.tmp_path / 'master.key'}", "--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening (http://\S+)", line)
        if match is None:
            self.proc.kill()
            raise AssertionError(
                f"operator did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.url = match.group(1)
        return self

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)

    def client(self, credential: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {credential}"}, timeout=60)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def processes() -> Iterator[list[OperatorProcess]]:
    started: list[OperatorProcess] = []
    yield started
    for p in started:
        p.stop()


def test_contract_end_job_survives_sigkill(db_url: str, tmp_path: Path, processes: list[OperatorProcess]) -> None:
    first = OperatorProcess(db_url, tmp_path).start()
    processes.append(first)
    admin = first.admin()
    devices: list[RunningDevice] = [manufacture(admin, containers=CONTAINERS) for _ in range(DEVICES)]
    try:
        provider = admin.post("/v1/admin/providers", json={"name": "Tenant"}).json()
        contract = admin.post(
            "/v1/admin/contracts", json={"provider_id": provider["id"], "option": "A", "quota": 2048}
        ).json()
        pc = first.client(provider["credential"])
        containers = []
        for d in devices:
            for i in range(CONTAINERS):
                r = request(pc, contract["id"], {"device_id": d.device_id})
                assert r.status_code == 201, r.text
                if i == 0:
                    take_ownership(r.json()["bundle"])  # one owned, one still authorized, per device
                containers.append(r.json()["bundle"]["container_id"])

        job = admin.post(f"/v1/admin/contracts/{contract['id']}/end").json()
        total = DEVICES * CONTAINERS
        assert job["total"] == total
        deadline = time.monotonic() + 60
        while True:
            progress = admin.get(f"/v1/admin/jobs/{job['id']}").json()
            if progress["done"] >= 2:
                break
            assert time.monotonic() < deadline, progress
            time.sleep(0.05)
        first.kill()
        assert progress["done"] < total, "the job finished before the kill: nothing to resume"

        second = OperatorProcess(db_url, tmp_path).start()
        processes.append(second)
        admin2 = second.admin()
        finished = wait_job(admin2, job["id"])
        assert (finished["status"], finished["done"], finished["failed"]) == ("done", total, 0)

        entries = admin2.get("/v1/admin/audit", params={"limit": 1000}).json()
        revoked = Counter(e["subject"] for e in entries if e["action"] == "container.revoked")
        assert revoked == Counter({c: 1 for c in containers})  # each container exactly once
        for d in devices:
            assert all(state == "available" for state, _ in device_states(admin2, d.device_id).values())
        assert admin2.get("/v1/admin/audit/verify").json()["ok"] is True
    finally:
        for d in devices:
            d.stop()
