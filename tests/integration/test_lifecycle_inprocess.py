"""The whole container lifecycle through IsdSession / ContainerSession: create, authorize, take ownership,
objects, PIN, lock, unlock, revoke, reuse — and the isolation invariants along the way.

Transport-agnostic: the tests only use the ``connect`` fixture (a factory of host ``Connection``s to one
device), built on ``card_connect`` from tests/support/transports.py, so each runs in-process and over every
other transport registered there.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenantcard.client.container import ContainerSession
from tenantcard.client.errors import StatusError
from tenantcard.client.isd import IsdSession
from tenantcard.crypto.errors import SecureChannelError
from tenantcard.crypto.identity import verify_device_auth
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device import Device, DeviceSpec, create_device_store, dev_spec
from tenantcard.device.provision import gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import Connection
from tenantcard.wire.gp import LifeCycle
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access
from tests.support.transports import CardConnector

Connect = Callable[[], Connection]


@pytest.fixture(scope="module")
def spec() -> DeviceSpec:
    return dev_spec(2)


@pytest.fixture
def device(tmp_path: Path, spec: DeviceSpec) -> Iterator[Device]:
    vault = FileKeyVault(tmp_path / "vault.key")
    create_device_store(tmp_path / "device.db", spec, vault)
    dev = Device.open(tmp_path / "device.db", vault)
    yield dev
    dev.close()


@pytest.fixture
def connect(device: Device, card_connect: CardConnector) -> Connect:
    """A new host connection (= card session) to the device over the transport under test."""
    return lambda: card_connect(device)


def operator(connect: Connect, keys: StaticKeys | None = None) -> IsdSession:
    isd = IsdSession(connect())
    isd.select()
    isd.authenticate(keys or gp_test_keys())
    return isd


def refused(fn: Callable[[], object]) -> int:
    """The status word of a refusal (0 for a secure-channel failure); fails the test if ``fn`` succeeds."""
    try:
        fn()
    except StatusError as exc:
        return int(exc.sw)
    except SecureChannelError:
        return 0
    raise AssertionError("the card accepted what it should refuse")


def test_whole_lifecycle(connect: Connect, spec: DeviceSpec) -> None:
    # The verifier (the IdP) checks the device's identity before anything else.
    isd = IsdSession(connect())
    isd.select()
    challenge = b"idp-challenge-0123456789abcdef"
    signature = isd.internal_authenticate(challenge)
    assert spec.root is not None
    verify_device_auth(isd.get_certificates(), spec.root, isd.get_device_id(), challenge, signature)

    # Operator: create a container, place the authorization of communication.
    op = operator(connect)
    aid = op.create_container(None, quota=16 * 1024, reserved=1024)
    initial = StaticKeys.generate(0x01)
    op.place_authorization(aid, "provider-a", initial, int(time.time()) + 600)
    entry = {c.aid: c for c in op.list_containers()}[aid]
    assert entry.lifecycle == LifeCycle.AUTHORIZED and entry.provider_id == "provider-a"

    # Provider: take ownership, load objects, set the holder PIN.
    provider_keys = StaticKeys.generate(0x31)
    prov = ContainerSession(connect(), aid)
    prov.select()
    prov.take_ownership(initial, provider_keys)
    prov.put_object(b"greeting", b"hello holder", Access.HOLDER)
    prov.put_object(b"config", b"provider secret", Access.PROVIDER)
    prov.put_object(b"label", b"public label", Access.PUBLIC)
    prov.set_pin("4321", retries=3)
    assert {c.aid: c for c in op.list_containers()}[aid].lifecycle == LifeCycle.PERSONALIZED

    # Invariant 1: neither the operator keys nor the initial keys open the owned container any more.
    for keys in (initial, gp_test_keys()):
        intruder = ContainerSession(connect(), aid)
        intruder.select()
        assert refused(functools.partial(intruder.authenticate, keys)) in (
            0,
            SW.REFERENCED_DATA_NOT_FOUND,
            SW.VERIFY_FAILED,
        )

    # Holder: PIN, then its objects; nothing of the provider's.
    holder = ContainerSession(connect(), aid)
    holder.select()
    assert holder.get_object(b"label") == b"public label"
    assert refused(lambda: holder.get_object(b"greeting")) == SW.SECURITY_STATUS_NOT_SATISFIED
    holder.verify_pin("4321")
    assert holder.get_object(b"greeting") == b"hello holder"
    assert refused(lambda: holder.get_object(b"config")) == SW.SECURITY_STATUS_NOT_SATISFIED

    # Lock and unlock (reversible), by the operator without the provider's key.
    op.lock(aid)
    assert refused(lambda: prov.get_object(b"config")) == SW.SELECTED_FILE_INVALIDATED
    assert refused(lambda: holder.get_object(b"label")) == SW.SELECTED_FILE_INVALIDATED
    op.unlock(aid)
    assert prov.get_object(b"config") == b"provider secret"

    # Revoke (invariant 4): the operator destroys what it cannot read.
    op.revoke(aid)
    assert {c.aid: c for c in op.list_containers()}[aid].lifecycle == LifeCycle.SELECTABLE
    assert refused(lambda: prov.get_object(b"config")) == SW.SECURITY_STATUS_NOT_SATISFIED
    again = ContainerSession(connect(), aid)
    again.select()
    assert refused(lambda: again.authenticate(provider_keys)) == SW.CONDITIONS_NOT_SATISFIED
    # Invariant 3: the old authorization does not come back after revocation.
    assert refused(lambda: again.authenticate(initial)) == SW.CONDITIONS_NOT_SATISFIED

    # Reuse: a new provider gets the same container, empty.
    initial_b = StaticKeys.generate(0x02)
    op.place_authorization(aid, "provider-b", initial_b, int(time.time()) + 600)
    prov_b = ContainerSession(connect(), aid)
    prov_b.select()
    prov_b.take_ownership(initial_b, StaticKeys.generate(0x35))
    assert prov_b.list_objects() == []
    assert prov_b.status().used == 0
    assert refused(lambda: prov_b.get_object(b"label")) == SW.REFERENCED_DATA_NOT_FOUND


def test_providers_are_isolated(connect: Connect, device: Device) -> None:
    op = operator(connect)
    aids = [op.create_container(None, quota=4096) for _ in range(2)]
    sessions = []
    keys = []
    for n, aid in enumerate(aids):
        initial = StaticKeys.generate(0x01)
        op.place_authorization(aid, f"provider-{n}", initial, int(time.time()) + 600)
        s = ContainerSession(connect(), aid)
        s.select()
        k = StaticKeys.generate(0x31)
        s.take_ownership(initial, k)
        s.put_object(f"object-{n}".encode(), f"value-{n}".encode(), Access.PROVIDER)
        sessions.append(s)
        keys.append(k)
    # Invariant 2: A's keys do not open B's container; B's listing never shows A's objects.
    cross = ContainerSession(connect(), aids[1])
    cross.select()
    assert refused(lambda: cross.authenticate(keys[0])) in (0, SW.VERIFY_FAILED, SW.REFERENCED_DATA_NOT_FOUND)
    assert [o.name for o in sessions[1].list_objects()] == [b"object-1"]
    assert refused(lambda: sessions[1].get_object(b"object-0")) == SW.REFERENCED_DATA_NOT_FOUND
    # The operator's listing shows lifecycle and provider ids, never content.
    listing = {c.aid: c for c in op.list_containers()}
    assert [listing[a].provider_id for a in aids] == ["provider-0", "provider-1"]


def test_operator_key_rotation_and_blocking(connect: Connect) -> None:
    op = operator(connect)
    new = StaticKeys.generate(0x31)
    op.rotate_keys(new)
    op.create_container(None, quota=1024)  # the rotating session goes on under the new keys
    old = IsdSession(connect())
    old.select()
    assert refused(lambda: old.authenticate(gp_test_keys())) in (0, SW.REFERENCED_DATA_NOT_FOUND)
    assert len(operator(connect, new).list_containers()) == 3
