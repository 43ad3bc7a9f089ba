"""Containers: lifecycle, one-time authorization, expiry, isolation, access rules, quota, holder PIN."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import gp_test_keys
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.gp import ISD_AID, LifeCycle, container_aid
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access, ContainerStatus, parse_object_list
from tests.unit.device.hostkit import Clock, Host, authorize, own

Hosts = Callable[..., Host]


def revoke(host: Hosts, index: int) -> None:
    op = host()
    op.select_isd()
    assert op.authenticate(gp_test_keys()) == SW.OK
    assert op.aid_command(0xE4, 0x00, 0x00, container_aid(index)) == SW.OK


def lock(host: Hosts, index: int, locked: bool = True) -> None:
    op = host()
    op.select_isd()
    assert op.authenticate(gp_test_keys()) == SW.OK
    assert op.aid_command(0xF0, 0x40, 0x80 if locked else 0x00, container_aid(index), tlv=False) == SW.OK


def status(h: Host) -> ContainerStatus:
    resp = h.send(CommandApdu(0x80, 0xF2, 0x80, 0x02, le=256))
    assert resp.sw == SW.OK
    return ContainerStatus.parse(resp.data)


# ------------------------------------------------------------------------------------------- lifecycle


def test_available_container_answers_nothing(host: Hosts) -> None:
    h = host()
    assert h.select_container(0) == SW.OK
    assert h.authenticate(StaticKeys.generate(1)) == SW.CONDITIONS_NOT_SATISFIED
    assert h.get_object(b"x").sw == SW.CONDITIONS_NOT_SATISFIED
    assert h.select_container(9) == SW.NOT_FOUND


def test_authorized_accepts_only_put_key_at_level_33(host: Hosts, clock: Clock) -> None:
    initial = StaticKeys.generate(1)
    authorize(host, 0, initial, int(clock()) + 600)
    h = host()
    h.select_container(0)
    assert h.authenticate(initial, level=0x03) == SW.OK
    assert h.put_key(initial, StaticKeys.generate(0x31)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert h.authenticate(initial) == SW.OK
    assert h.put_object(b"n", b"v") == SW.CONDITIONS_NOT_SATISFIED
    assert h.send(CommandApdu(0x80, 0xF2, 0x80, 0x02, le=256)).sw == SW.CONDITIONS_NOT_SATISFIED
    assert h.send(CommandApdu(0x00, 0x20, 0x00, 0x80, b"1234")).sw == SW.CONDITIONS_NOT_SATISFIED
    new = StaticKeys.generate(0x31)
    resp = h.put_key(initial, new)
    assert resp.sw == SW.OK
    assert resp.data == bytes([0x31]) + b"".join(new.kcvs())
    assert status(h).lifecycle == LifeCycle.PERSONALIZED


def test_after_ownership_no_operator_or_initial_key_opens_the_container(host: Hosts, clock: Clock) -> None:
    initial = StaticKeys.generate(1)
    authorize(host, 0, initial, int(clock()) + 600)
    h = host()
    h.select_container(0)
    assert h.authenticate(initial) == SW.OK
    new = StaticKeys.generate(0x31)
    assert h.put_key(initial, new).sw == SW.OK
    for attempt in (initial, initial.with_kvn(0), gp_test_keys(), gp_test_keys().with_kvn(0)):
        other = host()
        other.select_container(0)
        assert other.authenticate(attempt) != SW.OK
    other = host()
    other.select_container(0)
    assert other.authenticate(new) == SW.OK


def test_authorization_is_one_time(host: Hosts, clock: Clock) -> None:
    initial = StaticKeys.generate(1)
    authorize(host, 0, initial, int(clock()) + 600)
    first, second = host(), host()
    for h in (first, second):
        h.select_container(0)
        assert h.authenticate(initial) == SW.OK
    assert first.put_key(initial, StaticKeys.generate(0x31)).sw == SW.OK
    # The other session opened with the initial keys is gone with them.
    assert second.put_key(initial, StaticKeys.generate(0x32)).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    third = host()
    third.select_container(0)
    assert third.authenticate(initial) != SW.OK


def test_authorization_is_bound_to_its_container(host: Hosts, clock: Clock) -> None:
    initial = StaticKeys.generate(1)
    authorize(host, 0, initial, int(clock()) + 600)
    authorize(host, 1, StaticKeys.generate(1), int(clock()) + 600, provider="provider-b")
    h = host()
    h.select_container(1)
    assert h.authenticate(initial) != SW.OK


def test_expired_authorization_is_refused(host: Hosts, clock: Clock) -> None:
    initial = StaticKeys.generate(1)
    authorize(host, 0, initial, int(clock()) + 60)
    h = host()
    h.select_container(0)
    assert h.authenticate(initial) == SW.OK
    clock.now += 61
    assert h.put_key(initial, StaticKeys.generate(0x31)).sw == SW.CONDITIONS_NOT_SATISFIED
    assert h.authenticate(initial) == SW.CONDITIONS_NOT_SATISFIED
    # The operator can place a fresh one.
    fresh = StaticKeys.generate(2)
    authorize(host, 0, fresh, int(clock()) + 60)
    assert h.select_container(0) == SW.OK
    assert h.authenticate(fresh) == SW.OK
    assert h.put_key(fresh, StaticKeys.generate(0x31)).sw == SW.OK


def test_authorization_dies_with_revocation(host: Hosts, clock: Clock) -> None:
    initial = StaticKeys.generate(1)
    authorize(host, 0, initial, int(clock()) + 600)
    h = host()
    h.select_container(0)
    assert h.authenticate(initial) == SW.OK
    revoke(host, 0)
    assert h.put_key(initial, StaticKeys.generate(0x31)).sw != SW.OK
    again = host()
    again.select_container(0)
    assert again.authenticate(initial) == SW.CONDITIONS_NOT_SATISFIED


def test_revocation_without_provider_key_and_reuse(host: Hosts, clock: Clock, device: Device) -> None:
    keys, prov = own(host, 0, clock)
    assert prov.put_object(b"name", b"value", Access.PUBLIC) == SW.OK
    revoke(host, 0)
    assert prov.get_object(b"name").sw == SW.SECURITY_STATUS_NOT_SATISFIED  # its channel died with the keys
    reader = host()
    reader.select_container(0)
    assert reader.authenticate(keys) != SW.OK
    _, newcomer = own(host, 0, clock, provider="provider-c")
    assert newcomer.get_object(b"name").sw == SW.REFERENCED_DATA_NOT_FOUND
    assert status(newcomer).used == 0
    device.check()


def test_locked_container_answers_6283_but_selects(host: Hosts, clock: Clock) -> None:
    keys, prov = own(host, 0, clock)
    assert prov.put_object(b"n", b"v") == SW.OK
    lock(host, 0)
    assert prov.get_object(b"n").sw == SW.SELECTED_FILE_INVALIDATED
    h = host()
    assert h.select_container(0) == SW.OK
    assert h.authenticate(keys) == SW.SELECTED_FILE_INVALIDATED
    assert h.get_object(b"n").sw == SW.SELECTED_FILE_INVALIDATED
    assert h.send(CommandApdu(0x00, 0x20, 0x00, 0x80)).sw == SW.SELECTED_FILE_INVALIDATED
    lock(host, 0, locked=False)
    assert prov.get_object(b"n").data == b"v"


def test_provider_rotation(host: Hosts, clock: Clock) -> None:
    keys, prov = own(host, 0, clock)
    new = StaticKeys.generate(0x32, 24)
    assert prov.put_key(keys, new).sw == SW.OK
    assert prov.put_object(b"n", b"v") == SW.OK
    h = host()
    h.select_container(0)
    assert h.authenticate(keys) != SW.OK
    assert h.authenticate(new) == SW.OK


# ------------------------------------------------------------------------------------------- isolation


def test_channel_is_bound_to_container_and_connection(host: Hosts, clock: Clock) -> None:
    _, a = own(host, 0, clock)
    own(host, 1, clock, provider="provider-b")
    # A wrapped command of a's channel sent on another connection finds no channel there.
    stolen = a.scp.wrap(CommandApdu(0x80, 0xCB, 0x00, 0x00, b"\x80\x01n", le=256))  # type: ignore[union-attr]
    other = host()
    other.select_container(0)
    assert other.raw(stolen.to_bytes())[-2:] == SW.SECURITY_STATUS_NOT_SATISFIED.to_bytes()
    # Selecting another container drops the channel: the wrapped command no longer passes.
    assert a.raw(bytes.fromhex("00A4040006") + container_aid(1))[-2:] == b"\x90\x00"
    assert a.raw(stolen.to_bytes())[-2:] == SW.SECURITY_STATUS_NOT_SATISFIED.to_bytes()


def test_provider_keys_do_not_open_another_container(host: Hosts, clock: Clock) -> None:
    keys_a, _ = own(host, 0, clock)
    _, b = own(host, 1, clock, provider="provider-b")
    assert b.put_object(b"b-secret", b"b-value", Access.PROVIDER) == SW.OK
    h = host()
    h.select_container(1)
    assert h.authenticate(keys_a) != SW.OK
    assert h.authenticate(keys_a.with_kvn(0)) != SW.OK


def test_listing_shows_only_own_objects(host: Hosts, clock: Clock) -> None:
    _, a = own(host, 0, clock)
    _, b = own(host, 1, clock, provider="provider-b")
    assert a.put_object(b"a-object", b"1") == SW.OK
    assert b.put_object(b"b-object", b"2") == SW.OK
    listed = parse_object_list(a.send(CommandApdu(0x80, 0xF2, 0x40, 0x02, le=256)).data)
    assert [o.name for o in listed] == [b"a-object"]
    assert a.get_object(b"b-object").sw == SW.REFERENCED_DATA_NOT_FOUND


def test_scoped_session_reaches_only_its_container(device: Device, host: Hosts, clock: Clock) -> None:
    keys, _ = own(host, 0, clock)
    scoped = host(0)
    assert scoped.authenticate(keys) == SW.OK  # implicitly selected
    assert scoped.select(ISD_AID) == SW.NOT_FOUND
    assert scoped.select_container(1) == SW.NOT_FOUND
    assert scoped.select_container(0) == SW.OK
    with pytest.raises(Exception, match="no such container"):
        device.connect(42)


# ------------------------------------------------------------------------------------------- objects


def test_objects_and_access_rules(host: Hosts, clock: Clock) -> None:
    _, prov = own(host, 0, clock)
    for name, access in (
        (b"pub", Access.PUBLIC),
        (b"hold", Access.HOLDER),
        (b"prov", Access.PROVIDER),
        (b"either", Access.HOLDER_OR_PROVIDER),
    ):
        assert prov.put_object(name, b"value-" + name, access) == SW.OK
    assert prov.send(CommandApdu(0x80, 0x24, 0x01, 0x80, b"\x03" + b"123456")).sw == SW.OK
    for name in (b"pub", b"prov", b"either"):
        assert prov.get_object(name).data == b"value-" + name
    assert prov.get_object(b"hold").sw == SW.SECURITY_STATUS_NOT_SATISFIED

    anyone = host()
    anyone.select_container(0)
    assert anyone.get_object(b"pub").data == b"value-pub"
    for name in (b"hold", b"prov", b"either"):
        assert anyone.get_object(name).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert anyone.put_object(b"x", b"y") == SW.SECURITY_STATUS_NOT_SATISFIED
    assert anyone.delete_object(b"pub") == SW.SECURITY_STATUS_NOT_SATISFIED
    listed = parse_object_list(anyone.send(CommandApdu(0x80, 0xF2, 0x40, 0x02, le=256)).data)
    assert [o.name for o in listed] == [b"pub"]

    holder = host()
    holder.select_container(0)
    assert holder.send(CommandApdu(0x00, 0x20, 0x00, 0x80, b"123456")).sw == SW.OK
    assert holder.get_object(b"hold").data == b"value-hold"
    assert holder.get_object(b"either").data == b"value-either"
    assert holder.get_object(b"prov").sw == SW.SECURITY_STATUS_NOT_SATISFIED
    listed = parse_object_list(holder.send(CommandApdu(0x80, 0xF2, 0x40, 0x02, le=256)).data)
    assert sorted(o.name for o in listed) == [b"either", b"hold", b"pub"]
    assert all(o.value == b"" and o.size is not None for o in listed)
    # Re-selecting forgets the PIN.
    holder.select_container(0)
    assert holder.get_object(b"hold").sw == SW.SECURITY_STATUS_NOT_SATISFIED

    assert prov.delete_object(b"pub") == SW.OK
    assert prov.delete_object(b"pub") == SW.REFERENCED_DATA_NOT_FOUND
    assert prov.get_object(b"pub").sw == SW.REFERENCED_DATA_NOT_FOUND


def test_malformed_object_commands(host: Hosts, clock: Clock) -> None:
    _, prov = own(host, 0, clock)
    assert prov.send(CommandApdu(0x80, 0xE2, 0x90, 0x00, b"\xa2\x03\x80\x01n")).sw == SW.INCORRECT_DATA
    assert prov.send(CommandApdu(0x80, 0xE2, 0x90, 0x00, b"\xff\xff")).sw == SW.INCORRECT_DATA
    assert prov.send(CommandApdu(0x80, 0xE2, 0x90, 0x05, b"\xa2\x00")).sw == SW.INCORRECT_P1P2
    assert prov.send(CommandApdu(0x80, 0xCB, 0x00, 0x00, b"\x81\x01n", le=256)).sw == SW.INCORRECT_DATA
    assert prov.send(CommandApdu(0x80, 0xCB, 0x01, 0x00, b"\x80\x01n", le=256)).sw == SW.INCORRECT_P1P2
    assert prov.send(CommandApdu(0x80, 0x77, 0x00, 0x00)).sw == SW.INS_NOT_SUPPORTED


def test_store_data_in_blocks(host: Hosts, clock: Clock) -> None:
    from tenantcard.wire.tenant import DataObject

    _, prov = own(host, 0, clock)
    blob = DataObject(b"big", Access.PUBLIC, bytes(range(256)) * 3).to_bytes()
    parts = [blob[i : i + 200] for i in range(0, len(blob), 200)]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        assert prov.send(CommandApdu(0x80, 0xE2, 0x90 if last else 0x10, i, part)).sw == SW.OK
    assert prov.get_object(b"big").data == bytes(range(256)) * 3


def test_quota_is_enforced(host: Hosts, clock: Clock, device: Device) -> None:
    op = host()
    op.select_isd()
    assert op.authenticate(gp_test_keys()) == SW.OK
    assert op.install(container_aid(5), quota=1000).sw == SW.OK
    _, prov = own(host, 5, clock)
    assert prov.put_object(b"a", bytes(600)) == SW.OK
    assert prov.put_object(b"b", bytes(600)) == SW.NOT_ENOUGH_MEMORY
    assert prov.get_object(b"b").sw == SW.REFERENCED_DATA_NOT_FOUND
    assert prov.put_object(b"a", bytes(900)) == SW.OK
    st = status(prov)
    assert st.quota == 1000 and st.used == len("obj") + 1 + (1 + 900) + 16  # kind, name, access + value, overhead


# ------------------------------------------------------------------------------------------- holder PIN


def verify(h: Host, pin: bytes) -> SW:
    return h.send(CommandApdu(0x00, 0x20, 0x00, 0x80, pin)).sw


def pad(pin: bytes) -> bytes:
    return pin + b"\xff" * (16 - len(pin))


def test_pin_lifecycle(host: Hosts, clock: Clock) -> None:
    _, prov = own(host, 0, clock)
    holder = host()
    holder.select_container(0)
    assert holder.send(CommandApdu(0x00, 0x20, 0x00, 0x80)).sw == SW.REFERENCED_DATA_NOT_FOUND
    assert verify(holder, b"1234") == SW.REFERENCED_DATA_NOT_FOUND
    # Only the provider sets it, 1..15 retries, 4..16 bytes.
    assert holder.send(CommandApdu(0x00, 0x24, 0x01, 0x80, b"\x03" + b"1234")).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert prov.send(CommandApdu(0x00, 0x24, 0x01, 0x80, b"\x00" + b"1234")).sw == SW.INCORRECT_DATA
    assert prov.send(CommandApdu(0x00, 0x24, 0x01, 0x80, b"\x03" + b"123")).sw == SW.INCORRECT_DATA
    assert prov.send(CommandApdu(0x00, 0x24, 0x01, 0x80, b"\x03" + b"1234")).sw == SW.OK
    assert holder.send(CommandApdu(0x00, 0x20, 0x00, 0x80)).sw == SW.retries(3)
    assert verify(holder, b"9999") == SW.retries(2)
    assert verify(holder, b"1234") == SW.OK
    assert holder.send(CommandApdu(0x00, 0x20, 0x00, 0x80)).sw == SW.OK
    assert verify(holder, b"0000") == SW.retries(2)  # counter was reset by the success
    assert verify(holder, b"0000") == SW.retries(1)
    assert verify(holder, b"0000") == SW.retries(0)
    assert verify(holder, b"1234") == SW.AUTH_METHOD_BLOCKED
    assert status(prov).pin_tries_left == 0
    # The provider unblocks with a new PIN.
    assert holder.send(CommandApdu(0x00, 0x2C, 0x02, 0x80, b"5678")).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert prov.send(CommandApdu(0x00, 0x2C, 0x02, 0x80, b"5678")).sw == SW.OK
    assert verify(holder, b"5678") == SW.OK
    # The holder changes it.
    assert holder.send(CommandApdu(0x00, 0x24, 0x00, 0x80, pad(b"0000") + pad(b"24680"))).sw == SW.retries(2)
    assert holder.send(CommandApdu(0x00, 0x24, 0x00, 0x80, pad(b"5678") + pad(b"24680"))).sw == SW.OK
    assert verify(holder, b"5678") == SW.retries(2)
    assert verify(holder, b"24680") == SW.OK
    assert holder.send(CommandApdu(0x00, 0x24, 0x00, 0x80, b"short")).sw == SW.WRONG_LENGTH
    assert holder.send(CommandApdu(0x00, 0x24, 0x00, 0x80, pad(b"") + pad(b"1234"))).sw == SW.INCORRECT_DATA
    assert verify(holder, b"12") == SW.INCORRECT_DATA
    assert holder.send(CommandApdu(0x00, 0x20, 0x00, 0x81, b"1234")).sw == SW.INCORRECT_P1P2


def test_pin_counter_survives_reopen(host: Hosts, clock: Clock, device: Device, store_path, vault) -> None:
    _, prov = own(host, 0, clock)
    assert prov.send(CommandApdu(0x00, 0x24, 0x01, 0x80, b"\x05" + b"1234")).sw == SW.OK
    holder = host()
    holder.select_container(0)
    assert verify(holder, b"0000") == SW.retries(4)
    device.close()
    reopened = Device.open(store_path, vault, clock=clock, functions=[])
    from tenantcard.transport.base import LocalConnection

    h = Host(LocalConnection(reopened.connect()))
    h.select_container(0)
    assert verify(h, b"0000") == SW.retries(3)
    reopened.close()


def test_no_key_or_pin_in_logs_or_errors(host: Hosts, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    keys, prov = own(host, 0, clock)
    assert prov.send(CommandApdu(0x00, 0x24, 0x01, 0x80, b"\x03" + b"735911")).sw == SW.OK
    holder = host()
    holder.select_container(0)
    assert verify(holder, b"864297") == SW.retries(2)
    intruder = host()
    intruder.select_container(0)
    assert intruder.authenticate(StaticKeys.generate(0x31)) == SW.VERIFY_FAILED
    text = caplog.text + " ".join(repr(r.args) for r in caplog.records)
    for secret in (keys.enc, keys.mac, keys.dek):
        assert secret.hex() not in text and secret.hex().upper() not in text
    assert "735911" not in text and "864297" not in text
    assert "failed authentication" in text  # the failure itself is logged, without what was tried
