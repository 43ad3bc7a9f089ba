"""The store's in-memory caches (container rows, key set versions and key sets, container keys, device values)
and its lazy write transactions: every command sees what any connection committed before it, a rollback
leaves nothing cached, a read-only command writes nothing, and a commit by a foreign connection is never
overwritten from stale state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.errors import StoreError
from tenantcard.device.os import Device
from tenantcard.device.provision import gp_test_keys
from tenantcard.device.store import ContainerState, KeyRole, Store
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.gp import container_aid
from tenantcard.wire.sw import SW, ApduError
from tenantcard.wire.tenant import Access, ContainerStatus
from tests.unit.device.hostkit import Clock, Host, own

Hosts = Callable[..., Host]


def _operator(host: Hosts) -> Host:
    op = host()
    assert op.select_isd() == SW.OK
    assert op.authenticate(gp_test_keys()) == SW.OK
    return op


def _status(h: Host) -> ContainerStatus:
    resp = h.send(CommandApdu(0x80, 0xF2, 0x80, 0x02, le=256))
    assert resp.sw == SW.OK
    return ContainerStatus.parse(resp.data)


def _second_provider_session(host: Hosts, index: int, keys: StaticKeys) -> Host:
    h = host()
    assert h.select_container(index) == SW.OK
    assert h.authenticate(keys) == SW.OK
    return h


def test_a_write_on_one_connection_is_seen_by_the_next_command_of_another(host: Hosts, clock: Clock) -> None:
    keys, first = own(host, 0, clock)
    assert first.put_object(b"n", b"one", Access.PUBLIC) == SW.OK
    assert first.get_object(b"n").data == b"one"
    used = _status(first).used  # the container's row is now cached
    second = _second_provider_session(host, 0, keys)
    assert second.put_object(b"n", b"three", Access.PUBLIC) == SW.OK
    assert second.put_object(b"m", b"more", Access.PROVIDER) == SW.OK
    assert first.get_object(b"n").data == b"three"
    assert _status(first).used > used
    assert second.delete_object(b"m") == SW.OK
    assert first.get_object(b"m").sw == SW.REFERENCED_DATA_NOT_FOUND
    assert _status(first).used == used + 2  # "three" is two bytes longer than "one"


def test_revocation_from_the_isd_reaches_a_warm_container_session(host: Hosts, clock: Clock) -> None:
    keys, prov = own(host, 0, clock)
    assert prov.put_object(b"n", b"v", Access.PUBLIC) == SW.OK
    holder = host(0)  # container-scoped, no channel: its state checks hit the cache
    assert holder.get_object(b"n").data == b"v"
    assert prov.get_object(b"n").data == b"v"
    op = _operator(host)
    assert op.aid_command(0xE4, 0x00, 0x00, container_aid(0)) == SW.OK
    # The provider's channel died with its key set; the container is AVAILABLE again for everyone.
    assert prov.get_object(b"n").sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert holder.get_object(b"n").sw == SW.CONDITIONS_NOT_SATISFIED
    again = host()
    assert again.select_container(0) == SW.OK
    assert again.authenticate(keys) != SW.OK


def test_lock_and_unlock_from_the_isd_reach_a_warm_container_session(host: Hosts, clock: Clock) -> None:
    _, prov = own(host, 0, clock)
    assert prov.put_object(b"n", b"v", Access.PUBLIC) == SW.OK
    op = _operator(host)
    aid = container_aid(0)
    for _ in range(2):
        assert prov.get_object(b"n").data == b"v"
        assert op.aid_command(0xF0, 0x40, 0x80, aid, tlv=False) == SW.OK
        assert prov.get_object(b"n").sw == SW.SELECTED_FILE_INVALIDATED
        assert op.aid_command(0xF0, 0x40, 0x00, aid, tlv=False) == SW.OK


def test_rotation_on_another_connection_ends_a_warm_session(host: Hosts, clock: Clock) -> None:
    keys, first = own(host, 0, clock)
    assert first.put_object(b"n", b"v", Access.PROVIDER) == SW.OK
    second = _second_provider_session(host, 0, keys)
    new = StaticKeys.generate(0x32)
    assert second.put_key(keys, new).sw == SW.OK
    assert first.get_object(b"n").sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert second.get_object(b"n").data == b"v"


def test_failed_authentications_count_through_the_cache(host: Hosts, clock: Clock, device: Device) -> None:
    keys, _ = own(host, 0, clock)
    before = device.store.keyset(0)
    assert before is not None and before.tries_left == 10
    intruder = host()
    intruder.select_container(0)
    for left in (9, 8):
        assert intruder.authenticate(StaticKeys.generate(0x31)) == SW.VERIFY_FAILED
        cached = device.store.keyset(0)
        assert cached is not None and cached.tries_left == left
    row = device.store._conn.execute("SELECT tries_left, counter FROM keysets WHERE owner = 0").fetchone()
    assert tuple(row) == (8, device.store.keyset(0).counter)  # type: ignore[union-attr]
    assert _second_provider_session(host, 0, keys) is not None
    assert device.store.keyset(0).tries_left == 10  # type: ignore[union-attr]


def test_rollback_leaves_nothing_cached(store_path: Path, vault: FileKeyVault) -> None:
    store = Store.open(store_path, vault)
    try:
        with store.transaction():
            store.authorize_container(0, "p", 2**40)
            store.put_keyset(0, KeyRole.INITIAL, 1, b"\x01\x10" + bytes(48), 10)
        assert store.container(0).state == ContainerState.AUTHORIZED  # type: ignore[union-attr]
        version = store.keyset_version(0)
        with pytest.raises(ApduError), store.transaction():
            store.set_container_state(0, ContainerState.OWNED)
            store.put_keyset(0, KeyRole.PROVIDER, 2, b"\x02\x10" + bytes(48), 10)
            store.objects(0).put("obj", b"a", b"1")
            assert store.container(0).state == ContainerState.OWNED  # type: ignore[union-attr]
            assert store.keyset_version(0) != version
            raise ApduError(SW.INCORRECT_DATA)
        assert store.container(0).state == ContainerState.AUTHORIZED  # type: ignore[union-attr]
        assert store.container(0).used == 0  # type: ignore[union-attr]
        assert store.keyset_version(0) == version
        assert store.keyset(0).role == KeyRole.INITIAL  # type: ignore[union-attr]
        with pytest.raises(ApduError), store.transaction():
            store.wipe_container(0)
            raise ApduError(SW.INCORRECT_DATA)
        assert store.objects(0).get("obj", b"a") is None
        assert store.keyset(0) is not None and store.container(0).provider_id == "p"  # type: ignore[union-attr]
        store.check()
    finally:
        store.close()


def test_read_only_commands_write_nothing(host: Hosts, clock: Clock, device: Device, store_path: Path) -> None:
    _, prov = own(host, 0, clock)
    assert prov.put_object(b"n", b"v", Access.PUBLIC) == SW.OK
    reader = host(0)
    conn = device.store._conn
    wal = Path(f"{store_path}-wal")
    changes, size = conn.total_changes, wal.stat().st_size
    for _ in range(3):
        assert reader.get_object(b"n").data == b"v"
        assert prov.get_object(b"n").data == b"v"
        assert _status(prov).used > 0
        assert reader.select_container(0) == SW.OK
        assert reader.send(CommandApdu(0x80, 0xCA, 0x00, 0xCF, le=256)).sw == SW.INCORRECT_P1P2  # refused
        assert not conn.in_transaction
    assert (conn.total_changes, wal.stat().st_size) == (changes, size)
    assert prov.put_object(b"n", b"w", Access.PUBLIC) == SW.OK
    assert conn.total_changes > changes and not conn.in_transaction


def test_a_commit_by_a_foreign_connection_refuses_the_next_write(
    host: Hosts, clock: Clock, device: Device, store_path: Path, vault: FileKeyVault
) -> None:
    keys, prov = own(host, 0, clock)
    assert prov.put_object(b"n", b"v", Access.PUBLIC) == SW.OK
    assert _status(prov).used > 0  # warm caches
    foreign = Store.open(store_path, vault)  # a second writer on the same file (not how a device runs)
    try:
        with foreign.transaction():
            foreign.set_container_state(0, ContainerState.LOCKED)
    finally:
        foreign.close()
    # The next write of the device is refused with nothing written; then the device sees the foreign commit.
    assert prov.put_object(b"n", b"w", Access.PUBLIC) == SW.MEMORY_FAILURE
    assert prov.get_object(b"n").sw == SW.SELECTED_FILE_INVALIDATED
    assert device.store.container(0).state == ContainerState.LOCKED  # type: ignore[union-attr]
    device.check()
    reopened = LocalConnection(device.connect(0))
    assert reopened.transmit(CommandApdu(0x80, 0xCB, 0x00, 0x00, b"\x80\x01n", le=256).to_bytes())[-2:] == bytes(
        [0x62, 0x83]
    )
    assert keys is not None


def test_closed_store_refuses_commands(store_path: Path, vault: FileKeyVault) -> None:
    store = Store.open(store_path, vault)
    assert store.container(0) is not None
    store.close()
    with pytest.raises(StoreError), store.transaction():
        pass
    with pytest.raises(Exception):  # noqa: B017 - the closed connection's own error
        store.container(0)


def test_a_foreign_reader_does_not_disturb_the_device(
    host: Hosts, clock: Clock, device: Device, store_path: Path, vault: FileKeyVault
) -> None:
    _, prov = own(host, 0, clock)
    assert prov.put_object(b"n", b"v", Access.PUBLIC) == SW.OK
    reader = Store.open(store_path, vault)  # e.g. `tenantcard device info` while the device serves
    try:
        assert reader.container(0).state == ContainerState.OWNED  # type: ignore[union-attr]
        reader.check()
    finally:
        reader.close()
    assert prov.put_object(b"n", b"w", Access.PUBLIC) == SW.OK
    assert prov.get_object(b"n").data == b"w"
