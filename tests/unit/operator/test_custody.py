"""Key custody: secrets wrapped under the master key of a file vault or a PKCS#11 (SoftHSM2) token."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.keyvault import PIN_ENV
from tenantcard.operator.services.custody import Custody, CustodyError, credential_hash, derive_pepper
from tests.support.services import SoftHsmToken


def _round_trips(custody: Custody) -> None:
    keys = StaticKeys.generate(0x30)
    blob = custody.wrap_keys("isd:00112233445566778899:48", keys)
    assert keys.enc not in blob and keys.mac not in blob and keys.dek not in blob
    assert custody.unwrap_keys("isd:00112233445566778899:48", blob) == keys
    with pytest.raises(CustodyError) as err:  # bound to its owner: another row's purpose does not open it
        custody.unwrap_keys("isd:99887766554433221100:48", blob)
    assert keys.enc.hex() not in str(err.value)
    ca = ec.generate_private_key(ec.SECP256R1())
    wrapped = custody.wrap_private_key("secret:ca", ca)
    assert custody.unwrap_private_key("secret:ca", wrapped).private_numbers() == ca.private_numbers()
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(CustodyError):
        custody.unwrap_keys("isd:00112233445566778899:48", bytes(tampered))


def test_file_vault_custody(tmp_path: Path) -> None:
    custody = Custody.open(f"file:{tmp_path / 'master.key'}")
    _round_trips(custody)
    assert os.stat(tmp_path / "master.key").st_mode & 0o777 == 0o600
    other = Custody.open(f"file:{tmp_path / 'other.key'}")
    with pytest.raises(CustodyError):
        other.unwrap("secret:x", custody.wrap("secret:x", b"data"))


def test_pkcs11_vault_custody(softhsm: SoftHsmToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, softhsm.user_pin)
    label = f"operator-master-{uuid.uuid4().hex[:8]}"
    uri = f"pkcs11:module={softhsm.module};token={softhsm.label};key={label}"
    custody = Custody.open(uri)
    _round_trips(custody)
    blob = custody.wrap("secret:ca", b"ca key bytes")
    assert Custody.open(uri).unwrap("secret:ca", blob) == b"ca key bytes"  # same key on the token, found again


def test_unusable_vault_is_a_custody_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CustodyError):
        Custody.open("nonsense")
    monkeypatch.delenv(PIN_ENV, raising=False)
    with pytest.raises(CustodyError):
        Custody.open("pkcs11:module=/nonexistent.so;token=t;key=k")


def test_credential_hash_is_keyed() -> None:
    a, b = derive_pepper(b"\x01" * 32), derive_pepper(b"\x02" * 32)
    assert credential_hash(a, "secret") != credential_hash(b, "secret")
    assert credential_hash(a, "secret") == credential_hash(a, "secret")
