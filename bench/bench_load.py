"""Latency under load, the workloads of tests/hardening/test_load.py (tests/hardening/workload.py), loopback:

- ``load.device.p50`` / ``p99``: 50 provider sessions at once on one device process over TCP (SCP03 level 33,
  STORE DATA, GET DATA, sign), two waves; baseline: the same sessions one after the other by one client, on a
  fresh device, in the same run.
- ``load.operator.p50`` / ``p99``: 200 REST clients at once on the operator (PostgreSQL) while a contract-end
  job revokes a provider's containers (32 placements, each sent twice with one idempotency key, and 168
  clients reading their state 20 times); baseline: the same requests one after the other by one client, on a
  fresh operator and fleet, in the same run.

Correctness is checked in both modes (state neither lost nor duplicated), as in the test.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from tests.hardening.workload import DeviceLoad, Latencies, OperatorLoad, run_clients
from tests.support.operator_rig import OperatorProcess
from tests.support.services import fresh_postgres_database

from bench.common import Figure

DEVICE_SESSIONS = 50
REST_CLIENTS = 200
PLACEMENTS = 32


def device_run(concurrent: bool, sessions: int) -> Latencies:
    with tempfile.TemporaryDirectory(prefix="bench-load-device-") as tmp:
        load = DeviceLoad(Path(tmp), sessions).start()
        try:
            for wave in range(2):
                errors = run_clients(sessions, functools.partial(load.session, round_=wave), concurrent=concurrent)
                if errors:
                    raise RuntimeError(f"device load: {len(errors)} failed sessions, first: {errors[0]!r}")
            load.check_state()
        finally:
            load.stop()
        return Latencies(load.latencies)


def operator_run(concurrent: bool, clients: int, placements: int) -> Latencies:
    with tempfile.TemporaryDirectory(prefix="bench-load-operator-") as tmp, fresh_postgres_database() as url:
        op = OperatorProcess(url, Path(tmp)).start()
        load = OperatorLoad(op)
        try:
            load.setup()
            job = load.start_contract_end()
            errors = run_clients(clients, lambda i: load.client_work(i, placements), concurrent=concurrent)
            if errors or load.failures:
                raise RuntimeError(f"operator load: {errors[:3]!r} {load.failures[:3]!r}")
            load.check_state(job["id"])
        finally:
            load.stop()
            op.stop()
        return Latencies(load.latencies)


def run(quick: bool) -> list[Figure]:
    sessions = 20 if quick else DEVICE_SESSIONS
    clients, placements = (60, 16) if quick else (REST_CLIENTS, PLACEMENTS)
    device_c, device_s = device_run(True, sessions), device_run(False, sessions)
    op_c, op_s = operator_run(True, clients, placements), operator_run(False, clients, placements)
    for name, lat in (
        ("device concurrent", device_c),
        ("device sequential", device_s),
        ("operator concurrent", op_c),
        ("operator sequential", op_s),
    ):
        print("   " + lat.line(name))
    device_what = f"{sessions} provider sessions at once on one device over TCP (SCP03 + write + read + sign)"
    op_what = f"{clients} REST clients at once on the operator during a contract-end job"
    return [
        Figure(
            "load.device.p50",
            device_c.p50 * 1e3,
            device_s.p50 * 1e3,
            "ms",
            f"median, {device_what}; baseline: the same sessions sequentially",
        ),
        Figure(
            "load.device.p99",
            device_c.p99 * 1e3,
            device_s.p99 * 1e3,
            "ms",
            f"99th percentile, {device_what}; baseline: the same sessions sequentially",
        ),
        Figure(
            "load.operator.p50",
            op_c.p50 * 1e3,
            op_s.p50 * 1e3,
            "ms",
            f"median, {op_what}; baseline: the same requests sequentially by one client",
        ),
        Figure(
            "load.operator.p99",
            op_c.p99 * 1e3,
            op_s.p99 * 1e3,
            "ms",
            f"99th percentile, {op_what}; baseline: the same requests sequentially by one client",
        ),
    ]
