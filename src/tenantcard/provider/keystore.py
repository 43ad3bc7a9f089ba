"""The provider's keystore: its SCP03 key set for each container it owns, never in clear on disk.

Two backends behind one interface (``Keystore``):

* ``FileKeystore``: one file, AES-256-GCM under a key derived from a passphrase with scrypt (RFC 7914), the
  KDF parameters authenticated as associated data; written atomically (temporary file, fsync, rename), mode
  0600.
* ``Pkcs11Keystore``: the three keys of each container as AES secret-key objects on a PKCS#11 token
  (SoftHSM2 in tests, an HSM in production), the container's non-secret data as a data object beside them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tenantcard.crypto.errors import KeyDataError
from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.provider.errors import KeystoreError, UnknownContainerError

FORMAT = "tenantcard-keystore-v1"
SCRYPT_N = 2**15  # RFC 7914 §2 cost; ~32 MiB with r = 8
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
NONCE_BYTES = 12  # NIST SP 800-38D §8.2


@dataclass(frozen=True, eq=False)
class ContainerRecord:
    """What a provider keeps about one container it owns. ``repr`` shows no key."""

    name: str  # the keystore entry, by default "<device id>/<container AID>" (hex)
    device_id: str
    device_address: str
    aid: bytes
    keys: StaticKeys
    provider_id: str = ""

    def __repr__(self) -> str:
        return f"ContainerRecord({self.name!r}, address={self.device_address!r}, {self.keys!r})"

    @staticmethod
    def default_name(device_id: str, aid: bytes) -> str:
        return f"{device_id.upper()}/{aid.hex().upper()}"

    def public_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "device_address": self.device_address,
            "aid": self.aid.hex().upper(),
            "kvn": self.keys.kvn,
            "provider_id": self.provider_id,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.public_json(),
            "enc": self.keys.enc.hex(),
            "mac": self.keys.mac.hex(),
            "dek": self.keys.dek.hex(),
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any], keys: StaticKeys | None = None) -> ContainerRecord:
        try:
            if keys is None:
                keys = StaticKeys(
                    bytes.fromhex(data["enc"]), bytes.fromhex(data["mac"]), bytes.fromhex(data["dek"]), int(data["kvn"])
                )
            return cls(
                name,
                str(data["device_id"]),
                str(data["device_address"]),
                bytes.fromhex(data["aid"]),
                keys,
                str(data.get("provider_id", "")),
            )
        except (KeyError, ValueError, TypeError, KeyDataError) as exc:
            raise KeystoreError(f"keystore entry {name!r} is malformed") from exc


class Keystore(Protocol):
    """Where a provider keeps its container keys."""

    def save(self, record: ContainerRecord) -> None:
        """Add or replace the record of ``record.name``."""
        ...

    def load(self, name: str) -> ContainerRecord:
        """Raises UnknownContainerError."""
        ...

    def delete(self, name: str) -> None: ...

    def names(self) -> list[str]: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text, validate=True)


class FileKeystore:
    """A passphrase-encrypted file. Create it with ``create``, open it with ``open``."""

    def __init__(self, path: Path, key: bytes, header: dict[str, Any], entries: dict[str, dict[str, Any]]) -> None:
        self._path = path
        self._aead = AESGCM(key)
        self._header = header
        self._entries = entries
        self._random: Callable[[int], bytes] = os.urandom

    def __repr__(self) -> str:
        return f"FileKeystore({str(self._path)!r}, {len(self._entries)} entries)"

    @staticmethod
    def _derive(passphrase: str, header: dict[str, Any]) -> bytes:
        if not passphrase:
            raise KeystoreError("empty passphrase")
        try:
            kdf = Scrypt(
                salt=_unb64(header["salt"]), length=32, n=int(header["n"]), r=int(header["r"]), p=int(header["p"])
            )
            return kdf.derive(passphrase.encode())
        except (KeyError, ValueError, TypeError) as exc:
            raise KeystoreError("keystore KDF parameters are malformed") from exc

    @staticmethod
    def _aad(header: dict[str, Any]) -> bytes:
        return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def create(
        cls, path: Path | str, passphrase: str, *, n: int = SCRYPT_N, random: Callable[[int], bytes] = os.urandom
    ) -> FileKeystore:
        """A new, empty keystore file; refuses to overwrite one."""
        path = Path(path)
        if path.exists():
            raise KeystoreError(f"keystore {path} exists already")
        header = {
            "format": FORMAT,
            "kdf": "scrypt",
            "salt": _b64(random(SALT_BYTES)),
            "n": n,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
        }
        store = cls(path, cls._derive(passphrase, header), header, {})
        store._random = random
        store._write()
        return store

    @classmethod
    def open(cls, path: Path | str, passphrase: str) -> FileKeystore:
        path = Path(path)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise KeystoreError(f"no keystore at {path} (create one with 'tenantcard provider keystore init')") from exc
        except (OSError, ValueError) as exc:
            raise KeystoreError(f"keystore {path} is unreadable or not a keystore") from exc
        if mode & 0o077:
            raise KeystoreError(f"keystore {path} is accessible to others (mode must be 0600)")
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("header"), dict)
            or raw["header"].get("format") != FORMAT
        ):
            raise KeystoreError(f"{path} is not a tenantcard keystore")
        header: dict[str, Any] = raw["header"]
        key = cls._derive(passphrase, header)
        try:
            nonce, ciphertext = _unb64(raw.get("nonce")), _unb64(raw.get("ciphertext"))
            plain = AESGCM(key).decrypt(nonce, ciphertext, cls._aad(header))
            entries = json.loads(plain)
        except (InvalidTag, ValueError) as exc:
            raise KeystoreError("wrong passphrase, or the keystore is corrupted") from exc
        if not isinstance(entries, dict):
            raise KeystoreError("keystore content is malformed")
        return cls(path, key, header, entries)

    def _write(self) -> None:
        nonce = self._random(NONCE_BYTES)
        plain = json.dumps(self._entries, sort_keys=True).encode()
        body = {
            "header": self._header,
            "nonce": _b64(nonce),
            "ciphertext": _b64(self._aead.encrypt(nonce, plain, self._aad(self._header))),
        }
        directory = self._path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".keystore-", dir=directory)  # created 0600
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(body, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def save(self, record: ContainerRecord) -> None:
        self._entries[record.name] = record.to_json()
        self._write()

    def load(self, name: str) -> ContainerRecord:
        data = self._entries.get(name)
        if data is None:
            raise UnknownContainerError(f"no keys for container {name!r} in the keystore")
        return ContainerRecord.from_json(name, data)

    def delete(self, name: str) -> None:
        if self._entries.pop(name, None) is None:
            raise UnknownContainerError(f"no keys for container {name!r} in the keystore")
        self._write()

    def names(self) -> list[str]:
        return sorted(self._entries)


_LABEL_PREFIX = "tenantcard:"
_KEY_PARTS = ("enc", "mac", "dek")


class Pkcs11Keystore:
    """Container keys as AES secret-key objects on a PKCS#11 token (labels ``tenantcard:<name>:enc|mac|dek``,
    CKA_ID = KVN), the container's public data as a CKO_DATA object ``tenantcard:<name>:meta``.

    The keys are token objects protected by the token (user PIN); the SDK reads a key set into memory only to
    open a secure channel, since the SCP03 computations run on the host.
    """

    def __init__(self, module: str, token_label: str, user_pin: str) -> None:
        import pkcs11
        from pkcs11.exceptions import PKCS11Error

        self._pkcs11 = pkcs11
        self._error: type[Exception] = PKCS11Error
        try:
            self._token = pkcs11.lib(module).get_token(token_label=token_label)
        except (PKCS11Error, RuntimeError, OSError) as exc:
            raise KeystoreError(f"PKCS#11 token {token_label!r} is not available") from exc
        self._pin = user_pin
        self._label = token_label

    def __repr__(self) -> str:
        return f"Pkcs11Keystore(token={self._label!r})"

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        try:
            with self._token.open(user_pin=self._pin, rw=True) as session:
                yield session
        except self._error as exc:
            raise KeystoreError(f"PKCS#11 operation failed ({type(exc).__name__})") from exc

    def _objects(self, session: Any, name: str) -> list[Any]:
        found = []
        for part in (*_KEY_PARTS, "meta"):
            found.extend(session.get_objects({self._pkcs11.Attribute.LABEL: f"{_LABEL_PREFIX}{name}:{part}"}))
        return found

    def save(self, record: ContainerRecord) -> None:
        if ":" in record.name:
            raise KeystoreError("container names in a PKCS#11 keystore cannot contain ':'")
        a = self._pkcs11.Attribute
        with self._session() as session:
            for old in self._objects(session, record.name):
                old.destroy()
            for part, value in zip(_KEY_PARTS, (record.keys.enc, record.keys.mac, record.keys.dek), strict=True):
                session.create_object(
                    {
                        a.CLASS: self._pkcs11.ObjectClass.SECRET_KEY,
                        a.KEY_TYPE: self._pkcs11.KeyType.AES,
                        a.TOKEN: True,
                        a.PRIVATE: True,
                        a.LABEL: f"{_LABEL_PREFIX}{record.name}:{part}",
                        a.ID: bytes([record.keys.kvn]),
                        a.VALUE: value,
                        a.SENSITIVE: False,
                        a.EXTRACTABLE: True,
                        a.ENCRYPT: True,
                        a.DECRYPT: True,
                        a.SIGN: True,
                    }
                )
            session.create_object(
                {
                    a.CLASS: self._pkcs11.ObjectClass.DATA,
                    a.TOKEN: True,
                    a.PRIVATE: True,
                    a.LABEL: f"{_LABEL_PREFIX}{record.name}:meta",
                    a.APPLICATION: "tenantcard",
                    a.VALUE: json.dumps(record.public_json()).encode(),
                }
            )

    def load(self, name: str) -> ContainerRecord:
        a = self._pkcs11.Attribute
        with self._session() as session:
            values: dict[str, bytes] = {}
            kvns: set[int] = set()
            meta: bytes | None = None
            for obj in self._objects(session, name):
                part = obj[a.LABEL].rsplit(":", 1)[1]
                if part == "meta":
                    meta = bytes(obj[a.VALUE])
                else:
                    values[part] = bytes(obj[a.VALUE])
                    kvns.add(bytes(obj[a.ID])[0])
        if meta is None or set(values) != set(_KEY_PARTS) or len(kvns) != 1:
            raise UnknownContainerError(f"no keys for container {name!r} on the token")
        try:
            keys = StaticKeys(values["enc"], values["mac"], values["dek"], kvns.pop())
            return ContainerRecord.from_json(name, json.loads(meta), keys)
        except (ValueError, KeyDataError) as exc:
            raise KeystoreError(f"token entry {name!r} is malformed") from exc

    def delete(self, name: str) -> None:
        with self._session() as session:
            objects = self._objects(session, name)
            if not objects:
                raise UnknownContainerError(f"no keys for container {name!r} on the token")
            for obj in objects:
                obj.destroy()

    def names(self) -> list[str]:
        a = self._pkcs11.Attribute
        with self._session() as session:
            labels = [obj[a.LABEL] for obj in session.get_objects({a.CLASS: self._pkcs11.ObjectClass.DATA})]
        return sorted(
            label[len(_LABEL_PREFIX) : -len(":meta")]
            for label in labels
            if label.startswith(_LABEL_PREFIX) and label.endswith(":meta")
        )
