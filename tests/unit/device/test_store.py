"""The sealed store: creation, reopening, sealing at rest, transactions, quota, revocation wipe."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.domain import decode_keys, encode_keys
from tenantcard.device.errors import StoreError
from tenantcard.device.provision import ContainerSpec, DeviceSpec, create_device_store, dev_spec
from tenantcard.device.store import ISD_OWNER, ContainerState, KeyRole, Store
from tenantcard.keyvault import FileKeyVault
from tenantcard.wire.sw import SW, ApduError


def test_create_refuses_existing_store(store_path: Path, spec: DeviceSpec, vault: FileKeyVault) -> None:
    before = store_path.read_bytes()
    with pytest.raises(StoreError, match="exists"):
        create_device_store(store_path, spec, vault)
    assert store_path.read_bytes() == before


def test_bad_spec_leaves_no_file(tmp_path: Path, vault: FileKeyVault) -> None:
    spec = dev_spec([ContainerSpec(100, 200)])
    with pytest.raises(StoreError):
        create_device_store(tmp_path / "x.db", spec, vault)
    assert not (tmp_path / "x.db").exists()
    other = dev_spec(1)
    mismatched = DeviceSpec(
        spec.device_id, spec.serial, spec.isd_keys, other.identity_key, spec.certificate_chain, containers=1
    )
    with pytest.raises(StoreError, match="certify"):
        create_device_store(tmp_path / "y.db", mismatched, vault)
    assert not (tmp_path / "y.db").exists()


def test_store_settings_and_schema(store_path: Path, vault: FileKeyVault, spec: DeviceSpec) -> None:
    store = Store.open(store_path, vault)
    try:
        assert store.device_id == spec.device_id
        conn = sqlite3.connect(store_path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        conn.close()
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert [r.index for r in store.containers()] == [0, 1, 2]
        assert all(r.state == ContainerState.AVAILABLE for r in store.containers())
        store.check()
    finally:
        store.close()


def test_open_refuses_wrong_vault_missing_file_and_wrong_schema(
    store_path: Path, tmp_path: Path, vault: FileKeyVault
) -> None:
    with pytest.raises(StoreError, match="vault"):
        Store.open(store_path, FileKeyVault(tmp_path / "other.key"))
    with pytest.raises(StoreError):
        Store.open(tmp_path / "none.db", vault)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        Store.open(garbage, vault)
    conn = sqlite3.connect(store_path)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema"):
        Store.open(store_path, vault)


def test_content_is_sealed_at_rest(store_path: Path, vault: FileKeyVault) -> None:
    store = Store.open(store_path, vault)
    keys = StaticKeys(b"K" * 16, b"M" * 16, b"D" * 16, 0x31)
    with store.transaction():
        store.authorize_container(0, "provider-a", 2**40)
        store.put_keyset(0, KeyRole.PROVIDER, 0x31, encode_keys(keys), 10)
        store.objects(0).put("obj", b"object-name-xyz", b"very secret value 123")
    assert store.objects(0).get("obj", b"object-name-xyz") == b"very secret value 123"
    assert decode_keys(store.keyset(0).secret) == keys  # type: ignore[union-attr]
    store.close()
    raw = b"".join(p.read_bytes() for p in store_path.parent.glob("device.db*"))
    for secret in (b"very secret value 123", b"object-name-xyz", b"K" * 16, b"D" * 16):
        assert secret not in raw


def test_transaction_rolls_back_on_error(store_path: Path, vault: FileKeyVault) -> None:
    store = Store.open(store_path, vault)
    with store.transaction():
        store.authorize_container(0, "p", 2**40)
    with pytest.raises(ApduError), store.transaction():
        store.objects(0).put("obj", b"a", b"1")
        raise ApduError(SW.INCORRECT_DATA)
    assert store.objects(0).get("obj", b"a") is None
    assert store.objects(0).used_bytes() == 0
    store.close()


def test_quota_and_device_capacity(tmp_path: Path, vault: FileKeyVault) -> None:
    spec = dev_spec([ContainerSpec(1000, 0), ContainerSpec(1000, 900)], capacity_bytes=1500)
    create_device_store(tmp_path / "d.db", spec, vault)
    store = Store.open(tmp_path / "d.db", vault)
    with store.transaction():
        store.authorize_container(0, "a", 2**40)
        store.authorize_container(1, "b", 2**40)
    objects = store.objects(0)
    with store.transaction():
        objects.put("obj", b"n", b"x" * 500)
    used = objects.used_bytes()
    assert used == 3 + 1 + 500 + 16
    # 600 more would pass the quota (1000) but not the device: 900 is reserved for container 1.
    with pytest.raises(ApduError) as info, store.transaction():
        objects.put("obj", b"m", b"x" * 200)
    assert info.value.sw == SW.NOT_ENOUGH_MEMORY
    assert objects.used_bytes() == used
    # Rewriting an object only counts the difference; container 1 may use its reservation.
    with store.transaction():
        objects.put("obj", b"n", b"y" * 500)
        store.objects(1).put("obj", b"n", b"z" * 800)
    with pytest.raises(ApduError), store.transaction():
        store.objects(1).put("obj", b"q", b"z" * 200)
    # core.* records (PIN) are not counted.
    with store.transaction():
        store.objects(0).put("core.pin", b"holder", b"1234")
    assert objects.used_bytes() == used
    assert objects.quota_bytes() == 1000
    store.close()


def test_wipe_destroys_key_and_rows(store_path: Path, vault: FileKeyVault) -> None:
    store = Store.open(store_path, vault)
    with store.transaction():
        store.authorize_container(1, "p", 2**40)
        store.put_keyset(1, KeyRole.PROVIDER, 0x31, encode_keys(StaticKeys.generate(0x31)), 10)
        store.objects(1).put("obj", b"a", b"1")
        store.set_container_state(1, ContainerState.OWNED)
    with store.transaction():
        store.wipe_container(1)
    row = store.container(1)
    assert row is not None and row.state == ContainerState.AVAILABLE and row.provider_id is None
    assert store.keyset(1) is None
    assert store._conn.execute("SELECT COUNT(*) FROM objects WHERE idx = 1").fetchone()[0] == 0
    assert store._conn.execute("SELECT sealed_key FROM containers WHERE idx = 1").fetchone()[0] is None
    assert store.keyset(ISD_OWNER) is not None
    store.check()
    store.close()


def test_keyset_versions_never_repeat(store_path: Path, vault: FileKeyVault) -> None:
    store = Store.open(store_path, vault)
    seen = set()
    for _ in range(3):
        with store.transaction():
            store.authorize_container(2, "p", 2**40)
            store.put_keyset(2, KeyRole.INITIAL, 1, encode_keys(StaticKeys.generate(1)), 10)
        version = store.keyset_version(2)
        assert version not in seen
        seen.add(version)
        with store.transaction():
            store.wipe_container(2)
    assert store.keyset_version(2) is None
    store.close()


def test_tampered_record_is_detected(store_path: Path, vault: FileKeyVault) -> None:
    store = Store.open(store_path, vault)
    with store.transaction():
        store.authorize_container(0, "p", 2**40)
        store.objects(0).put("obj", b"a", b"value")
        obj_id, sealed = store._conn.execute("SELECT id, sealed FROM objects").fetchone()
        tampered = bytes(sealed[:-1]) + bytes([sealed[-1] ^ 1])
        store._conn.execute("UPDATE objects SET sealed = ? WHERE id = ?", (tampered, obj_id))
    with pytest.raises(StoreError):
        store.objects(0).get("obj", b"a")
    with pytest.raises(StoreError):
        store.check()
    store.close()
