"""Faults under load (loopback only): SIGKILL of the device, of the operator and of the IdP at random moments;
PostgreSQL crashed and restarted under a running operator; a device unreachable in the middle of a
contract-end job. After each recovery: the device store opens and passes its integrity check with every
container before or after the interrupted command (invariant 6), the audit log verifies, and every device
agrees with the operator's registry.

The random moments come from a seeded generator (the seed is in the test name's output on failure).
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tenantcard.client.container import ContainerSession
from tenantcard.device import Device
from tenantcard.device.store import ContainerState
from tenantcard.keyvault import FileKeyVault, open_vault
from tenantcard.transport.base import LocalConnection, TransportError
from tenantcard.transport.tcp_client import TcpConnection
from tenantcard.transport.tcp_server import DeviceServerThread
from tenantcard.wire.gp import container_aid
from tenantcard.wire.tenant import Access
from tests.hardening.workload import FLEET_QUOTA, JOB_TIMEOUT, DeviceLoad, provider_keys
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

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261129


# ------------------------------------------------------------------------------------------ device


class Writer:
    """Provider sessions writing numbered objects to one container until the device goes away. ``acked`` are the
    objects whose STORE DATA was answered 9000, ``tried`` every object sent."""

    def __init__(self, load: DeviceLoad, index: int) -> None:
        self.load = load
        self.index = index
        self.acked: dict[bytes, bytes] = {}
        self.tried: dict[bytes, bytes] = {}
        self.n = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn = TcpConnection(self.load.server.host, self.load.server.port, timeout=10)
            except (OSError, TransportError):
                return  # the device is gone
            try:
                session = ContainerSession(conn, container_aid(self.index))
                session.select()
                session.authenticate(provider_keys(self.index))
                for _ in range(5):
                    self.n += 1
                    name, value = f"o{self.n}".encode(), self.n.to_bytes(4, "big") * 8
                    self.tried[name] = value
                    session.put_object(name, value, Access.PROVIDER)
                    self.acked[name] = value
            except Exception:
                return  # the device was killed under this session
            finally:
                conn.close()


def test_device_sigkill_under_load_keeps_every_container_before_or_after(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    containers = 6
    load = DeviceLoad(tmp_path, containers)
    vault = FileKeyVault(tmp_path / "vault.key")
    writers = [Writer(load, i) for i in range(containers)]
    for _ in range(4):
        load.server = ServeProcess(load.store, log_path=tmp_path / "device-serve.log", extra=load.server.extra)
        load.start()
        stop = threading.Event()
        threads = [threading.Thread(target=w.run, args=(stop,)) for w in writers]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 1.0))
        load.server.kill()  # SIGKILL at a random moment, sessions in flight
        stop.set()
        for t in threads:
            t.join(60)
        # Invariant 6: the store opens, every sealed record opens, each container holds every acknowledged
        # object and otherwise only the one object whose STORE DATA was in flight.
        device = Device.open(load.store, vault)
        try:
            device.check()
            for w in writers:
                session = ContainerSession(LocalConnection(device.connect()), container_aid(w.index))
                session.select()
                session.authenticate(provider_keys(w.index))
                present = {o.name for o in session.list_objects()}
                assert set(w.acked) <= present <= set(w.tried), w.index
                assert len(present - set(w.acked)) <= 1
                for name in present:
                    assert session.get_object(name) == w.tried[name]
                w.acked = {name: w.tried[name] for name in present}
        finally:
            device.close()
    assert sum(len(w.acked) for w in writers) > 0


# ------------------------------------------------------------------------------------------ operator

STATE_NAMES = {
    ContainerState.AVAILABLE: "available",
    ContainerState.AUTHORIZED: "authorized",
    ContainerState.OWNED: "owned",
    ContainerState.LOCKED: "locked",
}


def assert_devices_agree(admin: httpx.Client, fleet: list[FleetDevice]) -> None:
    """The registry, once reconciled, says for each container what the device's own store says."""
    for d in fleet:
        registry = device_states(admin, d.device_id)
        assert d.device is not None
        with d.device.lock:
            rows = d.device.store.containers()
        on_device = {row.index: (STATE_NAMES[row.state], row.provider_id) for row in rows}
        assert registry == on_device, d.device_id


@pytest.fixture
def fleet_stop() -> Iterator[list[FleetDevice]]:
    fleet: list[FleetDevice] = []
    yield fleet
    for d in fleet:
        d.stop()


def test_operator_sigkill_under_load_then_registry_and_devices_agree(
    tmp_path: Path, postgres_url: str, fleet_stop: list[FleetDevice], operators: list[OperatorProcess]
) -> None:
    rng = random.Random(SEED + 1)
    # The per-device lease a killed operator leaves behind runs out after DEVICE_LOCK_SECONDS; until then the
    # device answers 409 device_busy (a defined, retryable error). A short lease keeps the test short.
    lease = {"TENANTCARD_OPERATOR_DEVICE_LOCK_SECONDS": "5"}
    op = OperatorProcess(postgres_url, tmp_path, **lease).start()
    operators.append(op)
    admin = op.client()
    for _ in range(2):
        d = manufacture(admin, 10, quota=FLEET_QUOTA)
        fleet_stop.append(d)
    providers = []
    for p in range(4):
        provider, contract = provider_with_contract(admin, f"P{p}")
        providers.append((provider, contract))
    keys = [f"kill-{i}-{uuid.uuid4().hex}" for i in range(16)]
    acked: dict[str, str] = {}
    lock = threading.Lock()

    def client(i: int) -> None:
        provider, contract = providers[i % len(providers)]
        with op.client(provider["credential"]) as c:
            try:
                r = request(c, contract["id"], {"device_id": fleet_stop[i % 2].device_id}, keys[i])
            except httpx.HTTPError:
                return
            if r.status_code == 201:
                with lock:
                    acked[keys[i]] = r.json()["id"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(keys))]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.05, 0.6))
    op.kill()
    for t in threads:
        t.join(120)

    op2 = OperatorProcess(postgres_url, tmp_path, **lease).start()
    operators.append(op2)
    admin = op2.client()
    for d in fleet_stop:  # the restarted operator learns nothing new: the devices kept their addresses
        assert admin.get(f"/v1/admin/devices/{d.device_id}").json()["address"] == d.address
    # Every request is retried with its idempotency key: those answered before the kill keep their id, the
    # others complete now; nothing is placed twice.
    for i, key in enumerate(keys):
        provider, contract = providers[i % len(providers)]
        with op2.client(provider["credential"]) as c:
            deadline = time.monotonic() + 120
            while True:
                r = request(c, contract["id"], {"device_id": fleet_stop[i % 2].device_id}, key)
                if r.status_code != 409 or r.json()["error"]["code"] != "device_busy":
                    break
                assert time.monotonic() < deadline, "the dead operator's device lease never ran out"
                time.sleep(0.5)
            assert r.status_code in (200, 201), (r.status_code, r.text, key in acked)
            if key in acked:
                assert r.json()["id"] == acked[key]
            bundle = r.json()["bundle"]
            assert bundle is not None
            take_ownership(bundle)
            assert c.post(f"/v1/authorizations/{r.json()['id']}/ownership").status_code == 200
    assert_devices_agree(admin, fleet_stop)
    owned = sum(
        1
        for d in fleet_stop
        for c in admin.get(f"/v1/admin/devices/{d.device_id}").json()["containers"]
        if c["state"] == "owned"
    )
    assert owned == len(keys)
    assert admin.get("/v1/admin/audit/verify").json()["ok"] is True


def test_device_unreachable_mid_job_then_job_completes(
    tmp_path: Path, postgres_url: str, fleet_stop: list[FleetDevice], operators: list[OperatorProcess]
) -> None:
    op = OperatorProcess(postgres_url, tmp_path, TENANTCARD_OPERATOR_JOB_ITEM_DELAY_SECONDS="0.2").start()
    operators.append(op)
    admin = op.client()
    for _ in range(2):
        d = manufacture(admin, 4, quota=FLEET_QUOTA)
        fleet_stop.append(d)
    provider, contract = provider_with_contract(admin, "Leaving")
    containers = []
    with op.client(provider["credential"]) as c:
        for i in range(6):
            r = request(c, contract["id"], {"device_id": fleet_stop[i % 2].device_id}, uuid.uuid4().hex)
            assert r.status_code == 201, r.text
            take_ownership(r.json()["bundle"])
            containers.append(r.json()["bundle"]["container_id"])
    away = fleet_stop[1]
    away.stop()  # unreachable: its items must stay pending, not fail and not be half-done
    job = admin.post(f"/v1/admin/contracts/{contract['id']}/end").json()
    progress = wait_job(admin, job["id"], 120, done=3)
    assert progress["status"] == "running" and progress["failed"] == 0, progress
    away.serve(admin)  # back, at a new address, checked in
    finished = wait_job(admin, job["id"], JOB_TIMEOUT)
    assert (finished["status"], finished["done"], finished["failed"]) == ("done", 6, 0), finished
    revoked = [e["subject"] for e in audit_entries(admin) if e["action"] == "container.revoked"]
    assert sorted(revoked) == sorted(containers)  # each exactly once
    assert_devices_agree(admin, fleet_stop)
    assert admin.get("/v1/admin/audit/verify").json()["ok"] is True


def test_device_process_sigkilled_during_contract_end_job(
    tmp_path: Path, postgres_url: str, fleet_stop: list[FleetDevice], operators: list[OperatorProcess]
) -> None:
    """The device as its own process (``tenantcard device serve``), SIGKILLed at a random moment while the
    operator's contract-end job revokes its containers; restarted on its store, checked in at its new address,
    the job finishes with each container revoked once, and the store agrees with the registry."""
    rng = random.Random(SEED + 3)
    op = OperatorProcess(postgres_url, tmp_path, TENANTCARD_OPERATOR_JOB_ITEM_DELAY_SECONDS="0.1").start()
    operators.append(op)
    admin = op.client()
    d = manufacture(admin, 8, quota=FLEET_QUOTA, serve=False)
    serve = ServeProcess(Path(d.store_path), log_path=tmp_path / "device-proc.log", extra=("--vault", d.vault_uri))
    serve.start()
    try:
        assert admin.post(f"/v1/devices/{d.device_id}/checkin", json={"address": serve.address}).status_code == 200
        provider, contract = provider_with_contract(admin, "Leaving")
        containers = []
        with op.client(provider["credential"]) as c:
            for _ in range(8):
                r = request(c, contract["id"], {"device_id": d.device_id}, uuid.uuid4().hex)
                assert r.status_code == 201, r.text
                take_ownership(r.json()["bundle"])
                containers.append(r.json()["bundle"]["container_id"])
        job = admin.post(f"/v1/admin/contracts/{contract['id']}/end").json()
        time.sleep(rng.uniform(0.0, 0.8))
        serve.kill()
        serve = ServeProcess(Path(d.store_path), log_path=tmp_path / "device-proc.log", extra=serve.extra).start()
        assert admin.post(f"/v1/devices/{d.device_id}/checkin", json={"address": serve.address}).status_code == 200
        finished = wait_job(admin, job["id"], JOB_TIMEOUT)
        assert (finished["status"], finished["done"], finished["failed"]) == ("done", 8, 0), finished
        revoked = [e["subject"] for e in audit_entries(admin) if e["action"] == "container.revoked"]
        assert sorted(revoked) == sorted(containers)
        registry = device_states(admin, d.device_id)
        assert admin.get("/v1/admin/audit/verify").json()["ok"] is True
    finally:
        serve.kill()
    device = Device.open(Path(d.store_path), open_vault(d.vault_uri))
    try:
        device.check()
        on_device = {row.index: (STATE_NAMES[row.state], row.provider_id) for row in device.store.containers()}
    finally:
        device.close()
    assert registry == on_device
    assert all(state == "available" for state, _ in on_device.values())


# ------------------------------------------------------------------------------------------ PostgreSQL


def _pg_crash() -> None:
    """Crash the real cluster that scripts/services runs (pg_ctl stop -m immediate: no shutdown checkpoint)."""
    subprocess.run([str(ROOT / "scripts" / "services"), "pg-crash"], check=True, capture_output=True, timeout=60)


def _pg_start() -> None:
    subprocess.run([str(ROOT / "scripts" / "services"), "start"], check=True, capture_output=True, timeout=120)


@pytest.fixture
def pg_restored() -> Iterator[None]:
    """Whatever happens in the test, the cluster runs again at the end."""
    try:
        yield
    finally:
        _pg_start()


def test_postgres_restarted_under_the_operator(
    tmp_path: Path,
    postgres_url: str,
    pg_restored: None,
    fleet_stop: list[FleetDevice],
    operators: list[OperatorProcess],
) -> None:
    op = OperatorProcess(postgres_url, tmp_path).start()
    operators.append(op)
    admin = op.client()
    d = manufacture(admin, 6, quota=FLEET_QUOTA)
    fleet_stop.append(d)
    provider, contract = provider_with_contract(admin, "Steady")
    pc = op.client(provider["credential"])
    stop = threading.Event()
    statuses: list[int] = []

    def reader() -> None:
        with op.client(provider["credential"]) as c:
            while not stop.is_set():
                try:
                    statuses.append(c.get("/v1/containers").status_code)
                except httpx.HTTPError:
                    statuses.append(0)
                time.sleep(0.02)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    before = request(pc, contract["id"], {"device_id": d.device_id}, "before-crash")
    assert before.status_code == 201, before.text
    _pg_crash()
    during = request(pc, contract["id"], {"device_id": d.device_id}, "during-outage")
    assert during.status_code >= 500 or during.status_code == 201  # refused cleanly, or served from a retry
    _pg_start()
    # The operator recovers by itself (no restart): the next requests succeed.
    deadline = time.monotonic() + 60
    while pc.get("/v1/containers").status_code != 200:
        assert time.monotonic() < deadline, "the operator did not recover from the database restart"
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(30)
    assert 200 in statuses
    for key in ("before-crash", "during-outage", "after-restart"):
        r = request(pc, contract["id"], {"device_id": d.device_id}, key)
        assert r.status_code in (200, 201), r.text
        if key == "before-crash":
            assert r.json()["id"] == before.json()["id"]
    assert_devices_agree(admin, fleet_stop)
    assert admin.get("/v1/admin/audit/verify").json()["ok"] is True


# ------------------------------------------------------------------------------------------ IdP


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class IdpProcess:
    def __init__(self, tmp_path: Path, port: int, ca_pem: Path) -> None:
        self.tmp_path = tmp_path
        self.port = port
        self.ca_pem = ca_pem
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> IdpProcess:
        command = [sys.executable, "-m", "tenantcard.cli.main", "idp", "serve", "--listen", f"127.0.0.1:{self.port}"]
        command += ["--db", f"sqlite:///{self.tmp_path / 'idp.db'}", "--operator", "http://127.0.0.1:9"]
        command += ["--operator-ca", str(self.ca_pem)]
        with (self.tmp_path / "idp-serve.log").open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, "the IdP exited"
            assert time.monotonic() < deadline, "the IdP did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def jwks(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(f"{self.url}/jwks.json", timeout=10).json()
        return doc


def test_idp_sigkill_under_load_keeps_its_keys(tmp_path: Path) -> None:
    from tests.unit.idp.idp_support import new_ca

    rng = random.Random(SEED + 2)
    pem = tmp_path / "ca.pem"
    pem.write_bytes(new_ca().cert.public_bytes(serialization.Encoding.PEM))
    idp = IdpProcess(tmp_path, _free_port(), pem).start()
    try:
        keys = idp.jwks()
        assert keys["keys"]
        for _ in range(3):
            stop = threading.Event()

            def hammer(target: IdpProcess = idp, done: threading.Event = stop) -> None:
                with httpx.Client(base_url=target.url, timeout=5) as c:
                    while not done.is_set():
                        try:
                            c.get("/.well-known/openid-configuration")
                            c.get("/jwks.json")
                        except (httpx.HTTPError, httpx.StreamError):  # the kill lands mid-response
                            return

            threads = [threading.Thread(target=hammer) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.1, 0.8))
            idp.kill()
            stop.set()
            for t in threads:
                t.join(30)
            idp.start()
            # The signing keys survive: ID tokens issued before the kill still verify.
            assert idp.jwks() == keys
    finally:
        idp.kill()


def test_device_server_thread_restarts_on_a_store_killed_mid_write(tmp_path: Path) -> None:
    """The in-process server on a store left by a SIGKILLed process (above) serves again at once."""
    load = DeviceLoad(tmp_path, 2).start()
    writer = Writer(load, 0)
    stop = threading.Event()
    t = threading.Thread(target=writer.run, args=(stop,))
    t.start()
    time.sleep(0.3)
    load.server.kill()
    stop.set()
    t.join(30)
    device = Device.open(load.store, FileKeyVault(tmp_path / "vault.key"))
    server = DeviceServerThread(device).start()
    try:
        conn = TcpConnection(server.host, server.port, timeout=10)
        session = ContainerSession(conn, container_aid(0))
        session.select()
        session.authenticate(provider_keys(0))
        names = {o.name for o in session.list_objects()}
        assert set(writer.acked) <= names <= set(writer.tried)
        conn.close()
    finally:
        server.stop()
        device.close()
