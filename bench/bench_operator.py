"""Operator figures.

1. Authorization placements end to end: ``POST /v1/authorizations`` over real HTTP (uvicorn on loopback) to the
   operator, which locks the device, opens SCP03 (level 33) to the device's ISD over TCP loopback (the device is
   a ``tenantcard device serve`` process), reads GET
   STATUS, places the authorization (INSTALL [for personalization] + STORE DATA) and records it (SQLite, audit
   entry, initial keys wrapped). The floor, measured in alternating rounds of the same run, is the device work
   alone: a direct ``IsdSession`` doing the same connect, SCP03, GET STATUS and placement on an identical device,
   with no HTTP, database or custody.
2. Registry lookups on PostgreSQL (a device by serial through the operator's repository, the query every
   placement starts with) in a database of 10k devices and one of 1M (quick: 100k), bulk-loaded with
   generate_series, measured in alternating rounds; the figure's ratio is the growth between the two sizes.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import subprocess
import sys
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

from bench.common import Figure, interleaved, per_op, per_second
from tenantcard.client.isd import IsdSession
from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.operator.app import create_app
from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import ContractOption
from tenantcard.operator.db.session import Database, migrate
from tenantcard.operator.services.facade import OperatorServices
from tenantcard.operator.services.manufacturing import ContainerPlan
from tenantcard.operator.settings import OperatorSettings
from tenantcard.transport.tcp_client import connect
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


class _DeviceProcess:
    """``tenantcard device serve`` on a store the operator manufactured: its own process, as in production."""

    def __init__(self, svc: OperatorServices, containers: int) -> None:
        made = svc.manufacturing.manufacture([ContainerPlan(1024) for _ in range(containers)])
        self.device_id = made.device.id
        cmd = [sys.executable, "-m", "tenantcard.cli.main", "device", "serve", "--store", str(made.store_path)]
        cmd += ["--vault", made.vault_uri, "--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening (\S+)", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"device did not start: {line!r}")
        self.address = match.group(1)
        svc.registry.check_in(self.device_id, self.address)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


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
            dev = _DeviceProcess(svc, n)
            floor = _DeviceProcess(svc, n)
            dev_id, floor_id = dev.device_id, floor.device_id
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
                    with connect(floor.address) as conn:
                        isd = IsdSession(conn)
                        isd.select()
                        isd.authenticate(operator_keys, 0x33)
                        isd.list_containers()
                        aid = container_aid(next(floor_index))
                        isd.place_authorization(aid, provider.id, StaticKeys.generate(1), int(time.time()) + 3600)

                value, floor_s = interleaved(place_via_operator, place_direct, repeat=rounds, number=n // rounds)
                client.close()
            finally:
                dev.stop()
                floor.stop()
    return [
        Figure(
            "operator.placement_latency",
            value * 1000,
            floor_s * 1000,
            "ms/op",
            "one authorization placement end to end (REST + lock + SCP03 level 33 + GET STATUS + STORE DATA + "
            "registry and audit commit) vs the same device work by a direct ISD session over loopback",
            aim="ratio <= 3.0",
        ),
        per_second(
            "operator.placements_per_second",
            value,
            floor_s,
            "sequential placements per second through the operator vs the direct ISD floor",
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


def _lookup_round(db: Database, serials: list[str]) -> float:
    with db.sessions() as s:
        start = time.perf_counter()
        for serial in serials:
            if repo.device_by_serial(s, serial) is None:
                raise RuntimeError("lookup missed")
        return (time.perf_counter() - start) / len(serials)


def _new_database(admin: str) -> str:
    import psycopg

    base, _, _ = admin.rpartition("/")
    name = f"tc_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def _drop_database(admin: str, url: str) -> None:
    import psycopg

    name = url.rpartition("/")[2]
    with psycopg.connect(admin.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _registry(quick: bool) -> list[Figure]:
    """Two databases, 10k and 1M (quick: 100k) devices; lookups measured in alternating rounds."""
    sizes = (10_000, 100_000 if quick else 1_000_000)
    lookups, rounds = 1000, 7
    admin = _admin_pg_url()
    urls: list[str] = []
    dbs: list[Database] = []
    try:
        for size in sizes:
            url = _new_database(admin)
            urls.append(url)
            migrate(url)
            db = Database(url)
            dbs.append(db)
            _fill(db, 1, size + 1)
        rng = random.Random(7)
        serials = [[f"BENCH-{rng.randrange(1, size + 1)}" for _ in range(lookups)] for size in sizes]
        for db, keys in zip(dbs, serials, strict=True):
            _lookup_round(db, keys[:200])  # warm the pool, the statement cache and the index pages
        times: list[list[float]] = [[], []]
        for _ in range(rounds):
            for i in (0, 1):
                times[i].append(_lookup_round(dbs[i], serials[i]))
    finally:
        for db in dbs:
            db.dispose()
        for url in urls:
            _drop_database(admin, url)
    t_small, t_large = statistics.median(times[0]), statistics.median(times[1])
    small, large = sizes
    return [
        per_op(
            f"operator.registry_lookup_{large // 1000}k",
            t_large,
            t_small,
            f"device lookup by serial through the operator repository (ORM session, unique index) on PostgreSQL "
            f"with {large:,} devices vs {small:,} devices, alternating rounds (ratio = growth)",
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
