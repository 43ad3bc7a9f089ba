"""Key vaults: the file vault (0600 key file) and the PKCS#11 vault on a real SoftHSM2 token."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pkcs11
import pytest

from tenantcard.keyvault import PIN_ENV, FileKeyVault, KeyVaultError, Pkcs11KeyVault, open_vault
from tests.support.services import SoftHsmToken


def test_file_vault_creates_0600_key_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "k"
    vault = FileKeyVault(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert len(path.read_bytes()) == 32
    blob = vault.seal(b"secret", b"aad")
    assert b"secret" not in blob
    assert FileKeyVault(path).unseal(blob, b"aad") == b"secret"


def test_file_vault_rejects_wrong_aad_and_tampering(tmp_path: Path) -> None:
    vault = FileKeyVault(tmp_path / "k")
    blob = vault.seal(b"secret", b"aad")
    with pytest.raises(KeyVaultError):
        vault.unseal(blob, b"other")
    with pytest.raises(KeyVaultError):
        vault.unseal(blob[:-1] + bytes([blob[-1] ^ 1]), b"aad")
    with pytest.raises(KeyVaultError):
        vault.unseal(b"short", b"aad")
    with pytest.raises(KeyVaultError):
        FileKeyVault(tmp_path / "other").unseal(blob, b"aad")


def test_file_vault_refuses_wide_permissions_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "k"
    FileKeyVault(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyVaultError, match="0600"):
        FileKeyVault(path)
    short = tmp_path / "short"
    short.write_bytes(b"x" * 31)
    os.chmod(short, 0o600)
    with pytest.raises(KeyVaultError, match="32-byte"):
        FileKeyVault(short)
    with pytest.raises(KeyVaultError):
        FileKeyVault(tmp_path / "missing-dir" / "k")


def test_file_vault_repr_has_no_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    vault = FileKeyVault(path)
    assert path.read_bytes().hex() not in repr(vault)


@pytest.mark.softhsm
def test_pkcs11_vault_round_trip_and_non_extractable(softhsm: SoftHsmToken) -> None:
    label = f"vault-{uuid.uuid4().hex[:8]}"
    vault = Pkcs11KeyVault(softhsm.module, softhsm.label, softhsm.user_pin, label)
    blob = vault.seal(b"device sealing key", b"aad")
    # A second instance finds the same key on the token.
    again = Pkcs11KeyVault(softhsm.module, softhsm.label, softhsm.user_pin, label)
    assert again.unseal(blob, b"aad") == b"device sealing key"
    with pytest.raises(KeyVaultError):
        again.unseal(blob, b"other aad")
    with pytest.raises(KeyVaultError):
        again.unseal(blob[:-1] + bytes([blob[-1] ^ 1]), b"aad")
    token = pkcs11.lib(softhsm.module).get_token(token_label=softhsm.label)
    with token.open(user_pin=softhsm.user_pin) as session:
        key = session.get_key(label=label, object_class=pkcs11.ObjectClass.SECRET_KEY)
        assert key[pkcs11.Attribute.EXTRACTABLE] is False
        assert key[pkcs11.Attribute.SENSITIVE] is True
        with pytest.raises(pkcs11.PKCS11Error):
            _ = key[pkcs11.Attribute.VALUE]


@pytest.mark.softhsm
def test_pkcs11_vault_errors_say_what_failed_without_the_pin(softhsm: SoftHsmToken) -> None:
    with pytest.raises(KeyVaultError) as info:
        Pkcs11KeyVault(softhsm.module, softhsm.label, "wrong-pin-1234", "k")
    assert "wrong-pin-1234" not in str(info.value)
    with pytest.raises(KeyVaultError):
        Pkcs11KeyVault(softhsm.module, "no-such-token", softhsm.user_pin, "k")


@pytest.mark.softhsm
def test_open_vault_uris(tmp_path: Path, softhsm: SoftHsmToken) -> None:
    file_vault = open_vault(f"file:{tmp_path / 'k'}")
    assert isinstance(file_vault, FileKeyVault)
    uri = f"pkcs11:module={softhsm.module};token={softhsm.label};key=uri-{uuid.uuid4().hex[:6]}"
    vault = open_vault(uri, env={PIN_ENV: softhsm.user_pin})
    assert vault.unseal(vault.seal(b"x", b""), b"") == b"x"
    with pytest.raises(KeyVaultError, match=PIN_ENV):
        open_vault(uri, env={})
    for bad in ("nothing", "file:", "http:x", "pkcs11:module=x", "pkcs11:module=;token=t;key=k"):
        with pytest.raises(KeyVaultError):
            open_vault(bad, env={PIN_ENV: "1234"})
