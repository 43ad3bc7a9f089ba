"""The contract-end job, with the operator as a subprocess killed by SIGKILL half-way, resumes after a restart
and revokes every container exactly once (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.support.operator_rig import (
    FleetDevice,
    OperatorProcess,
    audit_entries,
    device_states,
    manufacture,
    provider_with_contract,
    request,
    take_ownership,
    wait_job,
)

DEVICES = 3
CONTAINERS = 2
SLOW_JOB = {"TENANTCARD_OPERATOR_JOB_ITEM_DELAY_SECONDS": "0.4"}


def test_contract_end_job_survives_sigkill(db_url: str, tmp_path: Path, operators: list[OperatorProcess]) -> None:
    first = OperatorProcess(db_url, tmp_path, **SLOW_JOB).start()
    operators.append(first)
    admin = first.client()
    devices: list[FleetDevice] = [manufacture(admin, containers=CONTAINERS) for _ in range(DEVICES)]
    try:
        provider, contract = provider_with_contract(admin, "Tenant", quota=2048)
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
        progress = wait_job(admin, job["id"], done=2, interval=0.05)
        first.kill()
        assert progress["done"] < total, "the job finished before the kill: nothing to resume"

        second = OperatorProcess(db_url, tmp_path, **SLOW_JOB).start()
        operators.append(second)
        admin2 = second.client()
        finished = wait_job(admin2, job["id"])
        assert (finished["status"], finished["done"], finished["failed"]) == ("done", total, 0)

        revoked = Counter(e["subject"] for e in audit_entries(admin2) if e["action"] == "container.revoked")
        assert revoked == Counter({c: 1 for c in containers})  # each container exactly once
        for d in devices:
            assert all(state == "available" for state, _ in device_states(admin2, d.device_id).values())
        assert admin2.get("/v1/admin/audit/verify").json()["ok"] is True
    finally:
        for d in devices:
            d.stop()
