"""Load (loopback only, bounded in count): 50 concurrent provider sessions on one device over TCP, and 200
concurrent REST clients on the operator while a contract-end revocation job runs. No request that should
succeed fails, no state is lost or duplicated; p50/p99 latencies are printed (bench/bench_load.py measures the
same workloads against the same requests issued sequentially).

Invariants held: 2 (under concurrency each session reaches only its own container's objects), 4 (the
revocation job revokes every container of the ending contract exactly once while placements run).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hardening.workload import DeviceLoad, Latencies, OperatorLoad, run_clients
from tests.support.operator_rig import OperatorProcess

pytestmark = pytest.mark.slow

DEVICE_SESSIONS = 50
REST_CLIENTS = 200
PLACEMENTS = 32


def test_50_concurrent_provider_sessions_on_one_device(tmp_path: Path) -> None:
    load = DeviceLoad(tmp_path, DEVICE_SESSIONS).start()
    try:
        errors = run_clients(DEVICE_SESSIONS, load.session, concurrent=True)
        assert not errors, [repr(e) for e in errors[:5]]
        # A second wave, each session again on its own container while others run.
        errors = run_clients(DEVICE_SESSIONS, lambda i: load.session(i, 1), concurrent=True)
        assert not errors, [repr(e) for e in errors[:5]]
        load.check_state()
    finally:
        load.stop()
    assert len(load.latencies) == 2 * DEVICE_SESSIONS
    print(Latencies(load.latencies).line("device: 50 concurrent provider sessions (SCP03 + write + read + sign)"))


def test_200_rest_clients_while_contract_end_job_runs(tmp_path: Path, postgres_url: str) -> None:
    op = OperatorProcess(postgres_url, tmp_path).start()
    load = OperatorLoad(op)
    try:
        load.setup()
        job = load.start_contract_end()
        errors = run_clients(REST_CLIENTS, lambda i: load.client_work(i, PLACEMENTS), concurrent=True)
        assert not errors, [repr(e) for e in errors[:5]]
        assert not load.failures, load.failures[:10]
        load.check_state(job["id"])
    finally:
        load.stop()
        op.stop()
    assert sum(load.statuses.values()) == 2 * PLACEMENTS + (REST_CLIENTS - PLACEMENTS) * 20
    print(Latencies(load.latencies).line("operator: 200 concurrent REST clients during a contract-end job"))
