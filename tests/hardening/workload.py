"""Load workloads shared by tests/hardening/test_load.py (correctness under load) and bench/bench_load.py
(latency under load against the same requests issued sequentially in the same run). Loopback only.

``DeviceLoad``: one device process (``tenantcard device serve``) with one container per provider, each owned
(its own key set, a P-256 key); a provider session is TCP connect, SELECT, SCP03 at level 33, STORE DATA of an
object, GET DATA of it, and a signature checked with the container's public key.

``OperatorLoad``: the operator as a process (``tenantcard operator serve``) on a database, a fleet of device
servers, an "ending" provider whose containers a contract-end job revokes while REST clients of other
providers place authorizations (each sent twice with the same idempotency key) and read their state.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.client.pki import PkiClient
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device import Device, create_device_store, dev_spec
from tenantcard.device.provision import ContainerSpec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection
from tenantcard.transport.tcp_client import TcpConnection, connect
from tenantcard.wire.gp import container_aid
from tenantcard.wire.tenant import Access
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
from tests.support.transports import ServeProcess

FLEET_QUOTA = 2048
JOB_TIMEOUT = 240.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Latencies:
    seconds: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        return percentile(self.seconds, 99)

    def line(self, name: str) -> str:
        return f"{name}: {len(self.seconds)} requests, p50 {self.p50 * 1000:.1f} ms, p99 {self.p99 * 1000:.1f} ms"


def run_clients(count: int, work: Callable[[int], None], *, concurrent: bool) -> list[BaseException]:
    """Run ``work(i)`` for i in 0..count-1 in threads started together (or one after the other); the
    exceptions raised."""
    errors: list[BaseException] = []
    lock = threading.Lock()

    def guarded(i: int, barrier: threading.Barrier | None) -> None:
        if barrier is not None:
            barrier.wait()
        try:
            work(i)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    if not concurrent:
        for i in range(count):
            guarded(i, None)
        return errors
    barrier = threading.Barrier(count)
    threads = [threading.Thread(target=guarded, args=(i, barrier)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return errors


# ------------------------------------------------------------------------------------------ device


def provider_keys(i: int) -> StaticKeys:
    seed = i.to_bytes(2, "big")
    return StaticKeys(seed * 8, seed[::-1] * 8, (seed + b"\x5a\xa5") * 4, 0x31)


class DeviceLoad:
    """``providers`` containers on one device process, container i owned by provider i."""

    def __init__(self, workdir: Path, providers: int) -> None:
        self.workdir = workdir
        self.providers = providers
        vault_path = workdir / "vault.key"
        vault = FileKeyVault(vault_path)
        self.store = workdir / "device.db"
        create_device_store(self.store, dev_spec([ContainerSpec(quota_bytes=8192) for _ in range(providers)]), vault)
        self.public: dict[int, ec.EllipticCurvePublicKey] = {}
        device = Device.open(self.store, vault)
        try:
            isd = IsdSession(LocalConnection(device.connect()))
            isd.select()
            isd.authenticate(gp_test_keys())
            for i in range(providers):
                initial = StaticKeys.generate(0x01)
                isd.place_authorization(container_aid(i), f"provider-{i}", initial, int(time.time()) + 3600)
                session = ContainerSession(LocalConnection(device.connect()), container_aid(i))
                session.select()
                session.take_ownership(initial, provider_keys(i))
                key = PkiClient(session).generate_key(1, "p256", access=Access.PROVIDER)
                assert isinstance(key, ec.EllipticCurvePublicKey)
                self.public[i] = key
        finally:
            device.close()
        self.server = ServeProcess(
            self.store, log_path=workdir / "device-serve.log", extra=("--vault", f"file:{vault_path}")
        )
        self.written: dict[int, list[bytes]] = {i: [] for i in range(providers)}
        self.latencies: list[float] = []
        self._lock = threading.Lock()

    def start(self) -> DeviceLoad:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def session(self, i: int, round_: int = 0) -> None:
        """One provider transaction; raises on any failure."""
        name = f"obj-{i}-{round_}".encode()
        value = os.urandom(32)
        start = time.perf_counter()
        conn = TcpConnection(self.server.host, self.server.port, timeout=60)
        try:
            s = ContainerSession(conn, container_aid(i))
            s.select()
            s.authenticate(provider_keys(i))
            s.put_object(name, value, Access.PROVIDER)
            if s.get_object(name) != value:
                raise AssertionError(f"container {i} read back another value")
            message = b"load " + name
            signature = PkiClient(s).sign(1, message)
        finally:
            conn.close()
        elapsed = time.perf_counter() - start
        self.public[i].verify(signature, message, ec.ECDSA(hashes.SHA256()))
        with self._lock:
            self.written[i].append(name)
            self.latencies.append(elapsed)

    def check_state(self) -> None:
        """Every container holds exactly the objects its own sessions wrote: none lost, none doubled, none of
        another container's."""
        for i in range(self.providers):
            with connect(self.server.address) as conn:
                s = ContainerSession(conn, container_aid(i))
                s.select()
                s.authenticate(provider_keys(i))
                names = sorted(o.name for o in s.list_objects())
            if names != sorted(self.written[i]):
                raise AssertionError(f"container {i}: objects {names!r}, written {sorted(self.written[i])!r}")


# ------------------------------------------------------------------------------------------ operator


@dataclass
class OperatorLoad:
    """The fleet, the providers and the ending contract, set up through the operator's REST API."""

    op: OperatorProcess
    devices: int = 4
    containers: int = 12
    active_providers: int = 8
    ending_containers: int = 8
    fleet: list[FleetDevice] = field(default_factory=list)
    providers: list[dict[str, Any]] = field(default_factory=list)
    contracts: list[dict[str, Any]] = field(default_factory=list)
    ending: dict[str, Any] = field(default_factory=dict)
    ending_contract: dict[str, Any] = field(default_factory=dict)
    ending_container_ids: list[str] = field(default_factory=list)
    placed: dict[str, list[str]] = field(default_factory=dict)  # provider id -> idempotency keys used
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def setup(self) -> None:
        admin = self.op.client()
        self.fleet.extend(manufacture(admin, self.containers, quota=FLEET_QUOTA) for _ in range(self.devices))
        self.ending, self.ending_contract = provider_with_contract(admin, "Ending")
        ec_client = self.op.client(self.ending["credential"])
        for n in range(self.ending_containers):
            d = self.fleet[n % self.devices]
            r = request(ec_client, self.ending_contract["id"], {"device_id": d.device_id})
            assert r.status_code == 201, r.text
            bundle = r.json()["bundle"]
            take_ownership(bundle)
            assert ec_client.post(f"/v1/authorizations/{r.json()['id']}/ownership").status_code == 200
            self.ending_container_ids.append(bundle["container_id"])
        for p in range(self.active_providers):
            provider, contract = provider_with_contract(admin, f"Active {p}")
            self.providers.append(provider)
            self.contracts.append(contract)
            self.placed[provider["id"]] = []

    def stop(self) -> None:
        for d in self.fleet:
            d.stop()

    def _timed(self, client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
        start = time.perf_counter()
        r = client.request(method, path, **kw)
        elapsed = time.perf_counter() - start
        with self._lock:
            self.latencies.append(elapsed)
            self.statuses[r.status_code] += 1
        return r

    def _fail(self, message: str) -> None:
        with self._lock:
            self.failures.append(message)

    def client_work(self, i: int, placements: int) -> None:
        """Client ``i``: the first ``placements`` clients each place one authorization (sent twice with one
        idempotency key); the others read their provider's state five times."""
        p = i % self.active_providers
        provider, contract = self.providers[p], self.contracts[p]
        with self.op.client(provider["credential"]) as c:
            if i < placements:
                key = f"load-{i}-{uuid.uuid4().hex}"
                d = self.fleet[i % self.devices]
                body = {"contract_id": contract["id"], "device": {"device_id": d.device_id}, "idempotency_key": key}
                first = self._timed(c, "POST", "/v1/authorizations", json=body)
                again = self._timed(c, "POST", "/v1/authorizations", json=body)
                if first.status_code != 201 or again.status_code not in (200, 201):
                    self._fail(f"placement {i}: {first.status_code} then {again.status_code}")
                    return
                if first.json()["id"] != again.json()["id"]:
                    self._fail(f"placement {i}: the same idempotency key gave two authorizations")
                with self._lock:
                    self.placed[provider["id"]].append(first.json()["id"])
                return
            for _ in range(5):
                for path in ("/v1/me", "/v1/contracts", "/v1/containers", "/v1/authorizations"):
                    r = self._timed(c, "GET", path)
                    if r.status_code != 200:
                        self._fail(f"client {i}: GET {path} -> {r.status_code}")

    def start_contract_end(self) -> dict[str, Any]:
        r = self.op.client().post(f"/v1/admin/contracts/{self.ending_contract['id']}/end")
        assert r.status_code in (200, 201, 202), r.text
        job: dict[str, Any] = r.json()
        return job

    def check_state(self, job_id: str) -> None:
        """No lost or duplicated state: the job revoked each container of the ending contract exactly once,
        every placement is recorded once, the registry agrees with every device, the audit chain verifies."""
        admin = self.op.client()
        job = wait_job(admin, job_id, JOB_TIMEOUT)
        assert (job["status"], job["done"], job["failed"]) == ("done", self.ending_containers, 0), job
        entries = audit_entries(admin)
        revoked = Counter(e["subject"] for e in entries if e["action"] == "container.revoked")
        assert revoked == Counter({c: 1 for c in self.ending_container_ids}), revoked
        for provider in self.providers:
            with self.op.client(provider["credential"]) as c:
                listed = sorted(a["id"] for a in c.get("/v1/authorizations").json())
            assert listed == sorted(self.placed[provider["id"]]), (provider["id"], listed)
        registry: dict[tuple[str, int], str | None] = {}
        names = {p["id"] for p in self.providers} | {self.ending["id"]}
        for d in self.fleet:
            for index, (state, owner) in device_states(admin, d.device_id).items():
                registry[(d.device_id, index)] = owner
                if owner is not None:
                    assert owner in names and owner != self.ending["id"], (d.device_id, index, state, owner)
        held = Counter(owner for owner in registry.values() if owner is not None)
        assert held == Counter({pid: len(ids) for pid, ids in self.placed.items() if ids}), held
        assert admin.get("/v1/admin/audit/verify").json()["ok"] is True
