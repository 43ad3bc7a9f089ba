"""Key vaults: where the device's sealing key and the operator's master key live (DESIGN.md "Storage").

A vault seals and unseals small secrets with AES-256-GCM and associated data. The store uses it for one
thing only: the device sealing key, unsealed once when the device opens. ``FileKeyVault`` keeps a 32-byte key
in a 0600 file (development); ``Pkcs11KeyVault`` keeps a non-extractable AES key on a PKCS#11 token.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_LENGTH = 12
KEY_LENGTH = 32
PIN_ENV = "TENANTCARD_PKCS11_PIN"


class KeyVaultError(Exception):
    """The key vault cannot seal or unseal (missing or unsafe key file, token unavailable, wrong blob)."""


class KeyVault(Protocol):
    """Seal and unseal a secret bound to ``aad``; ``unseal`` raises ``KeyVaultError`` on any mismatch."""

    def seal(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def unseal(self, blob: bytes, aad: bytes) -> bytes: ...


class FileKeyVault:
    """A 32-byte AES key in a file of mode 0600, created on first use. For development and tests."""

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._aead = AESGCM(self._load_or_create())

    def __repr__(self) -> str:
        return f"FileKeyVault({str(self._path)!r})"

    def _load_or_create(self) -> bytes:
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self._load()
        except OSError as exc:
            raise KeyVaultError(f"cannot create key file {self._path}: {exc.strerror}") from exc
        key = os.urandom(KEY_LENGTH)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        return key

    def _load(self) -> bytes:
        try:
            st = os.stat(self._path)
        except OSError as exc:
            raise KeyVaultError(f"cannot read key file {self._path}: {exc.strerror}") from exc
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise KeyVaultError(f"key file {self._path} is accessible to others (mode must be 0600)")
        key = self._path.read_bytes()
        if len(key) != KEY_LENGTH:
            raise KeyVaultError(f"key file {self._path} does not hold a 32-byte key")
        return key

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_LENGTH)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def unseal(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < NONCE_LENGTH + 16:
            raise KeyVaultError("sealed blob too short")
        try:
            return self._aead.decrypt(blob[:NONCE_LENGTH], blob[NONCE_LENGTH:], aad)
        except InvalidTag as exc:
            raise KeyVaultError("sealed blob does not open with this vault") from exc


class Pkcs11KeyVault:
    """An AES-256 key on a PKCS#11 token (CKA_SENSITIVE, not CKA_EXTRACTABLE), generated on first use.

    Each seal/unseal opens a short session; the device calls it once when it opens its store.
    """

    def __init__(self, module: str, token_label: str, pin: str, key_label: str) -> None:
        import pkcs11

        self._pkcs11 = pkcs11
        self._key_label = key_label
        self._pin = pin
        try:
            lib = pkcs11.lib(module)
            self._token = lib.get_token(token_label=token_label)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise KeyVaultError(f"PKCS#11 token {token_label!r} unavailable: {type(exc).__name__}") from exc
        with self._session() as session:
            self._find_or_generate(session)

    def __repr__(self) -> str:
        return f"Pkcs11KeyVault(key_label={self._key_label!r})"

    def _session(self) -> Any:
        try:
            return self._token.open(user_pin=self._pin, rw=True)
        except self._pkcs11.PKCS11Error as exc:
            raise KeyVaultError(f"cannot log in to the PKCS#11 token: {type(exc).__name__}") from exc

    def _find_or_generate(self, session: Any) -> Any:
        pkcs11 = self._pkcs11
        try:
            return session.get_key(
                object_class=pkcs11.ObjectClass.SECRET_KEY, key_type=pkcs11.KeyType.AES, label=self._key_label
            )
        except pkcs11.NoSuchKey:
            pass
        except pkcs11.MultipleObjectsReturned as exc:
            raise KeyVaultError(f"several keys labelled {self._key_label!r} on the token") from exc
        Attribute = pkcs11.Attribute
        return session.generate_key(
            pkcs11.KeyType.AES,
            KEY_LENGTH * 8,
            label=self._key_label,
            store=True,
            template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
        )

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        pkcs11 = self._pkcs11
        nonce = os.urandom(NONCE_LENGTH)
        try:
            with self._session() as session:
                key = self._find_or_generate(session)
                ct = key.encrypt(
                    plaintext, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=pkcs11.GCMParams(nonce, aad)
                )
        except pkcs11.PKCS11Error as exc:
            raise KeyVaultError(f"PKCS#11 seal failed: {type(exc).__name__}") from exc
        return nonce + bytes(ct)

    def unseal(self, blob: bytes, aad: bytes) -> bytes:
        pkcs11 = self._pkcs11
        if len(blob) < NONCE_LENGTH + 16:
            raise KeyVaultError("sealed blob too short")
        try:
            with self._session() as session:
                key = self._find_or_generate(session)
                pt = key.decrypt(
                    blob[NONCE_LENGTH:],
                    mechanism=pkcs11.Mechanism.AES_GCM,
                    mechanism_param=pkcs11.GCMParams(blob[:NONCE_LENGTH], aad),
                )
        except pkcs11.PKCS11Error as exc:
            raise KeyVaultError("sealed blob does not open with this vault") from exc
        return bytes(pt)


def _parse_attributes(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not value:
            raise KeyVaultError(f"malformed vault URI attribute {name!r}")
        out[name.strip()] = value.strip()
    return out


def open_vault(uri: str, *, env: dict[str, str] | None = None) -> KeyVault:
    """``file:PATH`` or ``pkcs11:module=...;token=...;key=...`` (PIN from $TENANTCARD_PKCS11_PIN)."""
    environ = os.environ if env is None else env
    scheme, sep, rest = uri.partition(":")
    if not sep or not rest:
        raise KeyVaultError("vault URI must be file:PATH or pkcs11:module=...;token=...;key=...")
    if scheme == "file":
        return FileKeyVault(Path(rest))
    if scheme == "pkcs11":
        attrs = _parse_attributes(rest)
        missing = [a for a in ("module", "token", "key") if a not in attrs]
        if missing:
            raise KeyVaultError(f"pkcs11 vault URI lacks {', '.join(missing)}")
        pin = environ.get(PIN_ENV)
        if not pin:
            raise KeyVaultError(f"set {PIN_ENV} to the token's user PIN")
        return Pkcs11KeyVault(attrs["module"], attrs["token"], pin, attrs["key"])
    raise KeyVaultError(f"unknown vault scheme {scheme!r}")
