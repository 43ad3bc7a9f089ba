"""IsdSession and ContainerSession against a real device in-process: every verb, its refusals, and both link
modes (extended length, and short length with command chaining and GET RESPONSE under secure messaging)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenantcard.client.container import ContainerSession, PinError
from tenantcard.client.errors import StatusError
from tenantcard.client.isd import IsdSession, SessionError, check_put_key_response
from tenantcard.crypto.errors import SecureChannelError
from tenantcard.crypto.identity import verify_device_auth
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import DeviceSpec, create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection
from tenantcard.wire.gp import LifeCycle, container_aid
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access


@pytest.fixture(scope="module")
def spec() -> DeviceSpec:
    return dev_spec(2, device_id=bytes(range(10)))


@pytest.fixture
def device(tmp_path: Path, spec: DeviceSpec) -> Iterator[Device]:
    vault = FileKeyVault(tmp_path / "vault.key")
    create_device_store(tmp_path / "device.db", spec, vault)
    dev = Device.open(tmp_path / "device.db", vault, functions=[])
    yield dev
    dev.close()


Connect = Callable[[], LocalConnection]


@pytest.fixture
def connect(device: Device) -> Connect:
    return lambda: LocalConnection(device.connect())


def operator(connect: Connect) -> IsdSession:
    isd = IsdSession(connect())
    isd.select()
    isd.authenticate(gp_test_keys())
    return isd


def owned(connect: Connect, index: int = 0, *, extended: bool = True) -> tuple[ContainerSession, StaticKeys]:
    initial, new = StaticKeys.generate(1), StaticKeys.generate(0x31)
    aid = container_aid(index)
    operator(connect).place_authorization(aid, "provider-a", initial, int(time.time()) + 600)
    session = ContainerSession(connect(), aid, extended=extended)
    session.select()
    session.take_ownership(initial, new)
    return session, new


def test_identity_verbs(connect: Connect, spec: DeviceSpec) -> None:
    isd = IsdSession(connect())
    isd.select()
    assert isd.get_device_id() == spec.device_id
    chain = isd.get_certificates()
    assert chain == spec.certificate_chain
    challenge = b"c" * 32
    assert spec.root is not None
    verify_device_auth(chain, spec.root, spec.device_id, challenge, isd.internal_authenticate(challenge))
    assert isd.get_card_data()[0] == 0x66
    infos = isd.get_key_information()
    assert [(k.key_id, k.kvn, k.key_type, k.length) for k in infos] == [(i, 0x30, 0x88, 16) for i in (1, 2, 3)]
    with pytest.raises(StatusError) as info:
        isd.internal_authenticate(b"short")
    assert info.value.sw == SW.WRONG_LENGTH


def test_operator_verbs_need_the_channel(connect: Connect) -> None:
    isd = IsdSession(connect())
    isd.select()
    with pytest.raises(SessionError):
        isd.list_containers()
    with pytest.raises(SessionError):
        isd.revoke(container_aid(0))
    with pytest.raises(SecureChannelError):
        isd.authenticate(StaticKeys.generate(0x30))
    assert not isd.authenticated


def test_container_management(connect: Connect) -> None:
    isd = operator(connect)
    assert [c.aid for c in isd.list_containers()] == [container_aid(0), container_aid(1)]
    aid = isd.create_container(None, quota=8192, reserved=512)
    assert aid == container_aid(2)
    assert isd.create_container(9, quota=4096) == container_aid(9)
    with pytest.raises(StatusError) as info:
        isd.create_container(9, quota=4096)
    assert info.value.sw == SW.ALREADY_EXISTS
    entries = {c.aid: c for c in isd.list_containers()}
    assert entries[aid].quota == 8192 and entries[aid].reserved == 512
    assert entries[aid].lifecycle == LifeCycle.SELECTABLE
    with pytest.raises(StatusError):
        isd.lock(aid)  # not owned
    new = StaticKeys.generate(0x40)
    isd.rotate_keys(new)
    assert isd.list_containers()
    again = IsdSession(connect())
    again.select()
    again.authenticate(new)
    assert [k.kvn for k in again.get_key_information()] == [0x40] * 3


@pytest.mark.parametrize("extended", [True, False], ids=["extended", "short"])
def test_container_verbs(connect: Connect, extended: bool) -> None:
    session, keys = owned(connect, extended=extended)
    big = bytes(range(256)) * 8  # past one short APDU both ways: chaining and GET RESPONSE under SM
    session.put_object(b"big", big, Access.PUBLIC)
    session.put_object(b"mine", b"provider only", Access.PROVIDER)
    assert session.get_object(b"big") == big
    assert sorted(o.name for o in session.list_objects()) == [b"big", b"mine"]
    session.delete_object(b"mine")
    with pytest.raises(StatusError) as info:
        session.get_object(b"mine")
    assert info.value.sw == SW.REFERENCED_DATA_NOT_FOUND
    status = session.status()
    assert status.lifecycle == LifeCycle.PERSONALIZED and status.used > len(big)
    rotated = StaticKeys.generate(0x32, 32)
    session.rotate_keys(rotated)
    session.put_object(b"after", b"rotation")
    fresh = ContainerSession(connect(), container_aid(0), extended=extended)
    fresh.select()
    assert fresh.get_object(b"big") == big  # public
    with pytest.raises(StatusError):
        fresh.authenticate(keys)
    fresh.authenticate(rotated)
    assert fresh.get_object(b"after") == b"rotation"


def test_pin_verbs(connect: Connect) -> None:
    provider, _ = owned(connect)
    provider.put_object(b"h", b"holder data", Access.HOLDER)
    provider.set_pin("2468", retries=3)
    holder = ContainerSession(connect(), container_aid(0))
    holder.select()
    assert holder.pin_tries_left() == 3
    with pytest.raises(PinError) as info:
        holder.verify_pin("0000")
    assert info.value.tries_left == 2
    holder.verify_pin("2468")
    assert holder.pin_tries_left() is None
    assert holder.get_object(b"h") == b"holder data"
    holder.change_pin("2468", "13579")
    for left in (2, 1, 0):
        with pytest.raises(PinError) as info:
            holder.verify_pin("0000")
        assert info.value.tries_left == left
    with pytest.raises(PinError) as info:
        holder.verify_pin("13579")
    assert info.value.sw == SW.AUTH_METHOD_BLOCKED and info.value.tries_left is None
    provider.unblock_pin("1111")
    holder.verify_pin("1111")
    with pytest.raises(SessionError):
        holder.set_pin("1234")
    with pytest.raises(SessionError):
        holder.change_pin("1" * 17, "1234")


def test_take_ownership_checks_and_one_time(connect: Connect) -> None:
    initial = StaticKeys.generate(1)
    operator(connect).place_authorization(container_aid(1), "p", initial, int(time.time()) + 600)
    a = ContainerSession(connect(), container_aid(1))
    a.select()
    a.take_ownership(initial, StaticKeys.generate(0x31))
    b = ContainerSession(connect(), container_aid(1))
    b.select()
    with pytest.raises((StatusError, SecureChannelError)):
        b.take_ownership(initial, StaticKeys.generate(0x33))
    with pytest.raises(SessionError, match="KCV"):
        check_put_key_response(b"\x31" + bytes(9), StaticKeys.generate(0x31))


def test_locked_and_revoked_from_the_provider_side(connect: Connect) -> None:
    session, keys = owned(connect)
    session.put_object(b"x", b"y")
    isd = operator(connect)
    isd.lock(container_aid(0))
    with pytest.raises(StatusError) as info:
        session.get_object(b"x")
    assert info.value.sw == SW.SELECTED_FILE_INVALIDATED
    isd.unlock(container_aid(0))
    assert session.get_object(b"x") == b"y"
    isd.revoke(container_aid(0))
    with pytest.raises(StatusError) as info:
        session.get_object(b"x")
    assert info.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    again = ContainerSession(connect(), container_aid(0))
    again.select()
    with pytest.raises(StatusError) as info:
        again.authenticate(keys)
    assert info.value.sw == SW.CONDITIONS_NOT_SATISFIED
