"""Placement, expiry, reconciliation, rotation recovery, per-device locking and job retries, with a real
device served over TCP; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.device.os import Device
from tenantcard.keyvault import open_vault
from tenantcard.operator.app import build_services
from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import AuthorizationStatus, ContractOption, ItemStatus, JobKind
from tenantcard.operator.services.device_ops import isd_purpose
from tenantcard.operator.services.errors import Conflict, DeviceBusy, DeviceUnavailable
from tenantcard.operator.services.facade import OperatorServices
from tenantcard.operator.services.gateway import DeviceState
from tenantcard.operator.services.manufacturing import ContainerPlan
from tenantcard.operator.services.placement import Bundle, DeviceRef
from tenantcard.operator.settings import OperatorSettings
from tenantcard.transport.tcp_client import connect
from tenantcard.transport.tcp_server import DeviceServerThread
from tenantcard.wire.gp import LifeCycle, container_aid
from tests.unit.operator.conftest import Clock


@dataclass
class Served:
    device_id: str
    store: Path
    vault: str
    device: Device
    server: DeviceServerThread

    def stop(self) -> None:
        self.server.stop()
        self.device.close()


def _serve(store: Path, vault: str) -> tuple[Device, DeviceServerThread]:
    device = Device.open(store, open_vault(vault))
    return device, DeviceServerThread(device).start()


@pytest.fixture
def served(services: OperatorServices) -> Iterator[Served]:
    made = services.manufacturing.manufacture([ContainerPlan(4096), ContainerPlan(4096)], serial="UNIT-1")
    device, server = _serve(made.store_path, made.vault_uri)
    s = Served(made.device.id, made.store_path, made.vault_uri, device, server)
    services.registry.check_in(made.device.id, server.address)
    yield s
    s.stop()


def _provider(services: OperatorServices, option: ContractOption = ContractOption.PER_REQUEST) -> tuple[str, str]:
    p, _ = services.registry.register_provider(f"P{time.monotonic_ns()}")
    index = 9 if option == ContractOption.FIXED_INDEX else None
    c = services.registry.create_contract(p.id, option, 1024, container_index=index)
    return p.id, c.id


def _device_state(services: OperatorServices, served: Served) -> dict[int, LifeCycle]:
    with services.env.db.transaction() as s:
        device = repo.device(s, served.device_id)
        assert device is not None
    keys, _ = services.ops.operator_keys(device)
    with connect(served.server.address) as conn:
        isd = IsdSession(conn)
        isd.select()
        isd.authenticate(keys)
        return {c.index: c.lifecycle for c in isd.list_containers() if c.index is not None}


def _take(bundle: Bundle) -> None:
    assert bundle.keys is not None
    with connect(bundle.device_address) as conn:
        session = ContainerSession(conn, bytes.fromhex(bundle.container_aid))
        session.select()
        session.take_ownership(bundle.keys, StaticKeys.generate(0x01))


def test_option_b_creates_the_fixed_container(services: OperatorServices, served: Served) -> None:
    pid, cid = _provider(services, ContractOption.FIXED_INDEX)
    out = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "b1")
    assert out.bundle is not None and out.bundle.container_aid == container_aid(9).hex().upper()
    assert _device_state(services, served)[9] == LifeCycle.AUTHORIZED
    with pytest.raises(Conflict) as taken:  # index 9 is in use: the request fails, recorded as failed
        services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "b2")
    assert taken.value.code == "container_unavailable"
    again = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "b2")
    assert again.authorization.status == AuthorizationStatus.FAILED
    assert again.authorization.error == "container_unavailable"


def test_ownership_must_be_seen_on_the_device(services: OperatorServices, served: Served) -> None:
    pid, cid = _provider(services)
    out = services.placement.request(pid, cid, DeviceRef(device_id=served.device_id), "o1")
    assert out.bundle is not None and out.bundle.keys is not None
    with pytest.raises(Conflict) as early:
        services.placement.report_owned(pid, out.authorization.id)
    assert early.value.code == "not_owned"
    _take(out.bundle)
    owned = services.placement.report_owned(pid, out.authorization.id)
    assert owned.authorization.status == AuthorizationStatus.OWNED
    assert owned.bundle is not None and owned.bundle.keys is None
    with services.env.db.transaction() as s:
        auth = repo.authorization(s, out.authorization.id)
        assert auth is not None and auth.initial_keys_wrapped is None  # erased, not just hidden


def test_expired_authorizations_are_revoked_by_the_sweep(
    services: OperatorServices, served: Served, clock: Clock
) -> None:
    pid, cid = _provider(services)
    taken = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "e1")
    left = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "e2")
    assert taken.bundle is not None and left.bundle is not None
    _take(taken.bundle)
    assert services.placement.sweep_expired() == 0
    clock.now += services.env.settings.authorization_ttl_seconds + 1
    assert services.placement.sweep_expired() == 1
    states = _device_state(services, served)
    assert states[0] == LifeCycle.PERSONALIZED and states[1] == LifeCycle.SELECTABLE
    assert services.placement.get(pid, left.authorization.id).authorization.status == AuthorizationStatus.EXPIRED
    assert services.placement.get(pid, taken.authorization.id).authorization.status == AuthorizationStatus.OWNED


def test_unreachable_device_leaves_the_request_pending(services: OperatorServices, served: Served) -> None:
    pid, cid = _provider(services)
    served.stop()
    out = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "u1")
    assert out.authorization.status == AuthorizationStatus.APPROVED
    assert out.authorization.error == "device_unavailable" and out.bundle is None
    with services.env.db.transaction() as s:
        assert all(c.provider_id is None for c in repo.containers_of_device(s, served.device_id))
    device, server = _serve(served.store, served.vault)  # the device comes back at a new address
    served.device, served.server = device, server
    services.registry.check_in(served.device_id, server.address)
    later = services.placement.get(pid, out.authorization.id)
    assert later.authorization.status == AuthorizationStatus.PLACED and later.bundle is not None


def test_orphan_authorization_is_revoked_on_reconcile(services: OperatorServices, served: Served) -> None:
    """The operator died between STORE DATA and its commit: nobody holds those initial keys."""
    with services.env.db.transaction() as s:
        device = repo.device(s, served.device_id)
        assert device is not None
    keys, _ = services.ops.operator_keys(device)
    with services.env.gateway.open_isd(served.server.address, keys) as isd:
        isd.place_authorization(1, "prv_ghost", StaticKeys.generate(1), int(time.time()) + 600)
    assert _device_state(services, served)[1] == LifeCycle.AUTHORIZED
    with services.ops.session(served.device_id) as ctx:
        assert ctx.status[1].state == DeviceState.AVAILABLE
    assert _device_state(services, served)[1] == LifeCycle.SELECTABLE
    with services.env.db.transaction() as s:
        assert [e.action for e in services.env.audit.read(s, limit=1000)].count("container.orphan_revoked") == 1


def test_revocation_whose_reply_was_lost_is_recorded_once(services: OperatorServices, served: Served) -> None:
    """DELETE reached the device but the registry never committed it (the device died before replying): the
    next session reconciles, records the revocation once, and the retried revocation is a no-op."""
    pid, cid = _provider(services)
    out = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "lost-reply")
    assert out.bundle is not None
    _take(out.bundle)
    with services.env.db.transaction() as s:
        row = repo.container(s, out.bundle.container_id)
        device = repo.device(s, served.device_id)
        assert row is not None and device is not None
    keys, _ = services.ops.operator_keys(device)
    with services.env.gateway.open_isd(served.server.address, keys) as isd:
        isd.revoke(row.index)
    revoked = services.revocation.revoke_on_device(
        served.device_id, row.id, "operator", "contract_end", expect_contract=cid
    )
    assert revoked is False
    with services.env.db.transaction() as s:
        entries = [e for e in services.env.audit.read(s, limit=1000) if e.action == "container.revoked"]
        after = repo.container(s, row.id)
    assert [(e.subject, e.details["reason"]) for e in entries] == [(row.id, "reconciled")]
    assert after is not None and after.provider_id is None


def test_rotation_interrupted_after_put_key_recovers(services: OperatorServices, served: Served) -> None:
    """PUT KEY reached the device but the registry never committed the new keys."""
    env = services.env
    new = StaticKeys.generate(0x31)
    with env.db.transaction() as s:
        device = repo.device(s, served.device_id)
        assert device is not None
        old, _ = services.ops.operator_keys(device)
        device.next_kvn = new.kvn
        device.next_keys_wrapped = env.custody.wrap_keys(isd_purpose(device.id, new.kvn), new)
    with env.gateway.open_isd(served.server.address, old) as isd:
        isd.rotate_keys(new)
    with services.ops.session(served.device_id):
        pass
    with env.db.transaction() as s:
        device = repo.device(s, served.device_id)
        assert device is not None and device.isd_kvn == 0x31 and device.next_keys_wrapped is None
    assert services.revocation.rotate_device(served.device_id) == 0x32


def test_one_operation_per_device_across_processes(
    services: OperatorServices, served: Served, settings: OperatorSettings
) -> None:
    """A second operator (own process-local locks, same database) waits for the device lease, then gives up."""
    other = build_services(settings.model_copy(update={"device_lock_wait_seconds": 0.5}))
    try:
        inside = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with services.env.locks.hold(served.device_id):
                inside.set()
                release.wait(10)

        t = threading.Thread(target=hold)
        t.start()
        assert inside.wait(10)
        with pytest.raises(DeviceBusy), other.env.locks.hold(served.device_id):
            pass
        release.set()
        t.join()
        with other.env.locks.hold(served.device_id):
            pass
    finally:
        other.env.db.dispose()


def test_job_retries_an_unreachable_device_with_backoff(
    services: OperatorServices, served: Served, clock: Clock
) -> None:
    pid, cid = _provider(services)
    out = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "j1")
    assert out.bundle is not None
    served.stop()
    job = services.revocation.end_contract(cid)
    assert services.jobs.run_due(services.handle_item) == 1
    with services.env.db.transaction() as s:
        item = repo.job_items(s, job.id)[0]
        assert (item.status, item.attempts, item.last_error) == (ItemStatus.PENDING, 1, "device_unavailable")
        first_wait = item.next_attempt_at - clock.now
    assert services.jobs.run_due(services.handle_item) == 0  # not due yet
    clock.now += first_wait + 0.01
    assert services.jobs.run_due(services.handle_item) == 1
    with services.env.db.transaction() as s:
        item = repo.job_items(s, job.id)[0]
        assert item.attempts == 2 and item.next_attempt_at - clock.now == pytest.approx(2 * first_wait)
    device, server = _serve(served.store, served.vault)
    served.device, served.server = device, server
    services.registry.check_in(served.device_id, server.address)
    clock.now += 60
    services.jobs.run_due(services.handle_item)
    done = services.jobs.get(job.id)
    assert (done.status, done.done, done.kind) == ("done", 1, JobKind.CONTRACT_END)
    assert _device_state(services, served)[0] == LifeCycle.SELECTABLE


def test_device_refusal_is_a_conflict(services: OperatorServices, served: Served) -> None:
    pid, cid = _provider(services)
    out = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "r1")
    assert out.bundle is not None
    from tenantcard.operator.services.credentials import Principal

    with pytest.raises(Conflict) as err:
        services.revocation.set_locked(Principal("provider", pid), out.bundle.container_id, True)
    assert err.value.code == "container_state"  # an AUTHORIZED container cannot be locked
    with pytest.raises(DeviceUnavailable):
        services.registry.check_in(served.device_id, "127.0.0.1:1")


def test_option_a_never_takes_an_index_kept_for_option_b(services: OperatorServices, served: Served) -> None:
    kept_pid, _ = _provider(services, ContractOption.FIXED_INDEX)  # keeps index 9 on every device
    services.registry.create_contract(kept_pid, ContractOption.FIXED_INDEX, 1024, container_index=2)
    pid, cid = _provider(services)
    indexes = []
    for i in range(3):  # containers 0 and 1 exist; the third must be created, skipping the kept index 2
        out = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), f"a{i}")
        assert out.bundle is not None
        indexes.append(int(out.bundle.container_aid[-4:], 16))
    assert indexes == [0, 1, 3]


def test_concurrent_requests_with_one_idempotency_key_place_once(services: OperatorServices, served: Served) -> None:
    pid, cid = _provider(services)
    results: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            out = services.placement.request(pid, cid, DeviceRef(serial="UNIT-1"), "same-key")
            results.append(out.authorization.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and len(results) == 4
    states = _device_state(services, served)
    assert sum(1 for s in states.values() if s == LifeCycle.AUTHORIZED) == 1
