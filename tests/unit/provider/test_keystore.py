"""The provider keystore: passphrase-encrypted file (scrypt + AES-GCM, atomic, 0600) and PKCS#11 on SoftHSM2."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.provider.errors import KeystoreError, UnknownContainerError
from tenantcard.provider.keystore import ContainerRecord, FileKeystore, Pkcs11Keystore
from tests.support.services import SoftHsmToken

FAST_N = 2**10  # the KDF cost is a parameter; tests keep it low to stay fast


def record(name: str = "dev1/F07463000001", kvn: int = 0x30, length: int = 16) -> ContainerRecord:
    keys = StaticKeys.generate(kvn, length)
    return ContainerRecord(name, "0102030405060708090A", "127.0.0.1:35963", bytes.fromhex("F07463000001"), keys, "p1")


def test_file_keystore_roundtrip_and_nothing_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    ks = FileKeystore.create(path, "correct horse", n=FAST_N)
    rec = record(length=32)
    ks.save(rec)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    for secret in (rec.keys.enc, rec.keys.mac, rec.keys.dek):
        assert secret.hex().encode() not in raw and secret not in raw
    assert b"correct horse" not in raw
    again = FileKeystore.open(path, "correct horse")
    loaded = again.load(rec.name)
    assert loaded.keys == rec.keys and loaded.aid == rec.aid and loaded.device_address == rec.device_address
    assert again.names() == [rec.name]
    assert rec.keys.enc.hex() not in repr(loaded) and "correct horse" not in repr(again)
    again.delete(rec.name)
    assert FileKeystore.open(path, "correct horse").names() == []
    assert [p.name for p in tmp_path.iterdir()] == ["ks.json"]  # no temporary file left behind


def test_file_keystore_wrong_passphrase_and_tampering(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    FileKeystore.create(path, "right", n=FAST_N).save(record())
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        FileKeystore.open(path, "wrong")
    body = json.loads(path.read_text())
    body["header"]["n"] = FAST_N * 2  # KDF parameters are authenticated
    path.write_text(json.dumps(body))
    os.chmod(path, 0o600)
    with pytest.raises(KeystoreError):
        FileKeystore.open(path, "right")


def test_file_keystore_refuses_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    with pytest.raises(KeystoreError, match="no keystore"):
        FileKeystore.open(path, "x")
    FileKeystore.create(path, "x", n=FAST_N)
    with pytest.raises(KeystoreError, match="exists"):
        FileKeystore.create(path, "x", n=FAST_N)
    os.chmod(path, 0o644)
    with pytest.raises(KeystoreError, match="0600"):
        FileKeystore.open(path, "x")
    other = tmp_path / "other.json"
    other.write_text("not json")
    os.chmod(other, 0o600)
    with pytest.raises(KeystoreError):
        FileKeystore.open(other, "x")
    with pytest.raises(KeystoreError, match="empty passphrase"):
        FileKeystore.create(tmp_path / "new.json", "", n=FAST_N)


def test_file_keystore_unknown_entry(tmp_path: Path) -> None:
    ks = FileKeystore.create(tmp_path / "ks.json", "x", n=FAST_N)
    with pytest.raises(UnknownContainerError):
        ks.load("nope")
    with pytest.raises(UnknownContainerError):
        ks.delete("nope")


def test_pkcs11_keystore_on_softhsm(softhsm: SoftHsmToken) -> None:
    ks = Pkcs11Keystore(softhsm.module, softhsm.label, softhsm.user_pin)
    rec = record("provider-keystore-test", kvn=0x31, length=16)
    ks.save(rec)
    assert "provider-keystore-test" in ks.names()
    loaded = ks.load(rec.name)
    assert loaded.keys == rec.keys and loaded.keys.kvn == 0x31 and loaded.device_id == rec.device_id
    replaced = ContainerRecord(rec.name, rec.device_id, rec.device_address, rec.aid, StaticKeys.generate(0x32, 32))
    ks.save(replaced)  # rotation replaces the objects
    assert ks.load(rec.name).keys == replaced.keys
    ks.delete(rec.name)
    with pytest.raises(UnknownContainerError):
        ks.load(rec.name)
    with pytest.raises(KeystoreError):
        ks.save(record("bad:name"))


def test_pkcs11_keystore_wrong_pin_and_token(softhsm: SoftHsmToken) -> None:
    with pytest.raises(KeystoreError):
        Pkcs11Keystore(softhsm.module, softhsm.label, "0000wrong").names()
    with pytest.raises(KeystoreError):
        Pkcs11Keystore(softhsm.module, "no-such-token", softhsm.user_pin)
