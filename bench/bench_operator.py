"""Operator figures.

1. Authorization placements end to end: ``POST /v1/authorizations`` over real HTTP (uvicorn on loopback) to the
   operator, which locks the device, opens SCP03 (level 33) to the device's ISD over TCP loopback, reads GET
   STATUS, places the authorization (INSTALL [for personalization] + STORE DATA) and records it (SQLite, audit
   entry, initial keys wrapped). The floor, measured in alternating rounds of the same run, is the device work
   alone: a direct ``IsdSession`` doing the same connect, SCP03, GET STATUS and placement on an identical device,
   with no HTTP, database or custody.
2. Registry lookups on PostgreSQL (a device by serial through the operator's repository, the query every
   placement starts with) at 10k devices and at 1M (quick: 100k), bulk-loaded with generate_series; the figure's
   ratio is the growth between the two sizes.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr
from sqlalchemy import text

from bench.common import Figure
from tenantcard.client.isd import IsdSession
from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.device.keyvault import open_vault
from tenantcard.device.os import Device
from tenantcard.operator.app import create_app
from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import ContractOption
from tenantcard.operator.db.session import Database, migrate
from tenantcard.operator.services.facade import OperatorServices
from tenantcard.operator.services.manufacturing import ContainerPlan
from tenantcard.operator.settings import OperatorSettings
from tenantcard.transport.tcp_client import connect
from tenantcard.transport.tcp_server import DeviceServerThread
from tenantcard.wire.gp import container_aid

REPO = Path(__file__).resolve().parents[1]
ADMIN = uuid.uuid4().hex


class _Operator:
    def __init__(self, settings: OperatorSettings) -> None:
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Operator:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    @property
    def services(self) -> OperatorServices:
        svc: OperatorServices = self.app.state.services
        return svc


def _device(svc: OperatorServices, containers: int) -> tuple[str, Device, DeviceServerThread]:
    made = svc.manufacturing.manufacture([ContainerPlan(1024) for _ in range(containers)])
    device = Device.open(made.store_path, open_vault(made.vault_uri))
    server = DeviceServerThread(device).start()
    svc.registry.check_in(made.device.id, server.address)
    return made.device.id, device, server


def _placements(quick: bool) -> list[Figure]:
    n = 24 if quick else 96
    rounds = 4 if quick else 8
    with tempfile.TemporaryDirectory() as tmp:
        settings = OperatorSettings(
            db_url=f"sqlite:///{tmp}/operator.db",
            vault_uri=f"file:{tmp}/master.key",
            admin_token=SecretStr(ADMIN),
            device_store_dir=Path(tmp) / "devices",
            run_workers=False,
        )
        with _Operator(settings) as op:
            svc = op.services
            dev_id, dev, dev_server = _device(svc, n)
            floor_id, floor_dev, floor_server = _device(svc, n)
            try:
                provider, credential = svc.registry.register_provider("Bench Provider")
                contract = svc.registry.create_contract(provider.id, ContractOption.PER_REQUEST, 1024)
                with svc.env.db.transaction() as s:
                    floor_row = repo.device(s, floor_id)
                    assert floor_row is not None
                operator_keys, _ = svc.ops.operator_keys(floor_row)
                client = httpx.Client(base_url=op.url, headers={"Authorization": f"Bearer {credential}"}, timeout=60)
                counter = iter(range(10**9))

                def place_via_operator() -> None:
                    body = {
                        "contract_id": contract.id,
                        "device": {"device_id": dev_id},
                        "idempotency_key": f"bench-{next(counter)}",
                    }
                    r = client.post("/v1/authorizations", json=body)
                    if r.status_code != 201:
                        raise RuntimeError(f"placement failed: {r.status_code} {r.text[:200]}")

                floor_index = iter(range(n))

                def place_direct() -> None:
                    with connect(floor_server.address) as conn:
                        isd = IsdSession(conn)
                        isd.select()
                        isd.authenticate(operator_keys, 0x33)
                        isd.list_containers()
                        aid = container_aid(next(floor_index))
                        isd.place_authorization(aid, provider.id, StaticKeys.generate(1), int(time.time()) + 3600)

                per_round = n // rounds
                cand: list[float] = []
                base: list[float] = []
                for _ in range(rounds):
                    for fn, out in ((place_via_operator, cand), (place_direct, base)):
                        start = time.perf_counter()
                        for _ in range(per_round):
                            fn()
                        out.append((time.perf_counter() - start) / per_round)
                client.close()
            finally:
                dev_server.stop()
                floor_server.stop()
                dev.close()
                floor_dev.close()
    value, floor = statistics.median(cand), statistics.median(base)
    return [
        Figure(
            "operator.placement_latency",
            value * 1000,
            floor * 1000,
            "ms/op",
            "one authorization placement end to end (REST + lock + SCP03 level 33 + GET STATUS + STORE DATA + "
            "registry and audit commit) vs the same device work by a direct ISD session over loopback",
            aim="ratio <= 3.0",
        ),
        Figure(
            "operator.placements_per_second",
            1 / value,
            1 / floor,
            "ops/s",
            "sequential placements per second through the operator vs the direct ISD floor",
            higher_is_better=True,
        ),
    ]


# --- registry lookups on PostgreSQL ---------------------------------------------------------------------------
def _admin_pg_url() -> str:
    if "TENANTCARD_TEST_PG_URL" not in os.environ:
        subprocess.run([str(REPO / "scripts" / "services"), "start"], check=True, cwd=REPO, capture_output=True)
        for line in (REPO / ".run" / "services.env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                os.environ[key] = value.strip('"')
    return os.environ["TENANTCARD_TEST_PG_URL"]


def _fill(db: Database, start: int, stop: int) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO devices (id, serial, status, certificate_pem, isd_kvn, isd_keys_wrapped, created_at) "
                "SELECT lpad(to_hex(g), 20, '0'), 'BENCH-' || g, 'active', '', 48, '\\x00'::bytea, 0 "
                "FROM generate_series(CAST(:a AS bigint), CAST(:b AS bigint)) AS g"
            ),
            {"a": start, "b": stop - 1},
        )
        conn.execute(text("ANALYZE devices"))


def _lookup_time(db: Database, size: int, lookups: int) -> float:
    rng = random.Random(size)
    serials = [f"BENCH-{rng.randrange(1, size)}" for _ in range(lookups)]
    with db.sessions() as s:
        for serial in serials[:200]:  # warm the cache and the connection
            repo.device_by_serial(s, serial)
        rounds = []
        for _ in range(5):
            start = time.perf_counter()
            for serial in serials:
                if repo.device_by_serial(s, serial) is None:
                    raise RuntimeError("lookup missed")
            rounds.append((time.perf_counter() - start) / lookups)
    return statistics.median(rounds)


def _registry(quick: bool) -> list[Figure]:
    import psycopg

    small, large = 10_000, (100_000 if quick else 1_000_000)
    admin = _admin_pg_url()
    base, _, _ = admin.rpartition("/")
    name = f"tc_bench_{uuid.uuid4().hex[:12]}"
    dsn = admin.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    try:
        migrate(url)
        db = Database(url)
        try:
            _fill(db, 1, small + 1)
            t_small = _lookup_time(db, small, 1000)
            _fill(db, small + 1, large + 1)
            t_large = _lookup_time(db, large, 1000)
        finally:
            db.dispose()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return [
        Figure(
            f"operator.registry_lookup_{large // 1000}k",
            t_large * 1e6,
            t_small * 1e6,
            "us/op",
            f"device lookup by serial through the operator repository on PostgreSQL with {large:,} devices vs "
            f"{small:,} devices (ratio = growth)",
            aim="ratio <= 2.0",
        )
    ]


def run(quick: bool) -> list[Figure]:
    return _placements(quick) + _registry(quick)


def _main() -> None:
    import sys

    for fig in run("--quick" in sys.argv):
        print(f"{fig.name}: {fig.value:.3f} vs {fig.baseline:.3f} {fig.unit} (ratio {fig.ratio:.2f})")


if __name__ == "__main__":
    _main()

__all__: list[Any] = ["run"]
