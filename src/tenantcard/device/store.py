"""The sealed store: one SQLite file per device (DESIGN.md "Storage").

* WAL journal, ``synchronous=FULL``: a command's transaction is durable once ``transaction()`` returns, so an
  answered 9000 survives power loss (invariant 6). Schema versioned by ``PRAGMA user_version``.
* A command's write transaction begins at its first write (``BEGIN IMMEDIATE``) and commits when the command
  ends: a command that changes nothing takes no lock beyond its reads', writes nothing and syncs nothing. Its
  reads need no transaction of their own: the device lock serializes commands and the device's connection is
  meant to be the store's only writer. A commit by any other connection is detected at the device's next
  write, which is refused (6581) with nothing written, and drops every cached value.
* What every command reads (container rows, key set versions, unsealed container keys, key sets, device
  values) is cached in memory and kept exact by the write path: each method that changes a row updates or
  drops its cached copy, and a rollback drops them all. No cached value expires by time; no object value is
  cached (each read opens its sealed record, so tampering is still detected).
* Key hierarchy: the vault seals the 32-byte device sealing key (DSK) once, at creation. The DSK seals the
  identity key, the ISD key set and each container key. A container key (AES-256-GCM) seals that container's
  key sets, objects and PIN. Revocation deletes the container key and every row under it.
* Object names are looked up by HMAC-SHA256 under the container key, so neither names nor kinds are stored
  in clear; only sizes are (quota accounting).
"""

from __future__ import annotations

import hmac
import os
import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenantcard.device.errors import StoreError
from tenantcard.keyvault import KeyVault, KeyVaultError
from tenantcard.wire.sw import SW, ApduError

SCHEMA_VERSION = 1
NONCE = 12
ISD_OWNER = -1
DEFAULT_CAPACITY = 1 << 20  # total non-volatile memory of a software device, bytes
OBJECT_OVERHEAD = 16  # bytes accounted per stored object beyond kind, name and value
_MAX_CACHED_IDS = 1024  # object-name ids kept per container key

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE containers (
    idx INTEGER PRIMARY KEY,
    state INTEGER NOT NULL,
    provider_id TEXT,
    quota INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    expires_at INTEGER,
    sealed_key BLOB,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE keysets (
    owner INTEGER PRIMARY KEY,
    role INTEGER NOT NULL,
    kvn INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    tries_left INTEGER NOT NULL,
    counter INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE objects (
    idx INTEGER NOT NULL,
    id BLOB NOT NULL,
    kind_id BLOB NOT NULL,
    sealed BLOB NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (idx, id)
);
"""


class ContainerState(IntEnum):
    """Container lifecycle (DESIGN.md), coded as GP 2.3.1 §11.1.1 application life cycle bytes."""

    AVAILABLE = 0x07
    AUTHORIZED = 0x17
    OWNED = 0x0F
    LOCKED = 0x83


class KeyRole(IntEnum):
    OPERATOR = 0  # the ISD key set
    INITIAL = 1  # one-time key set of an authorization of communication
    PROVIDER = 2  # the provider's own key set after PUT KEY


@dataclass(frozen=True, slots=True)
class ContainerRow:
    index: int
    state: ContainerState
    provider_id: str | None
    quota: int
    reserved: int
    expires_at: int | None
    used: int


@dataclass(frozen=True, slots=True)
class KeySetRow:
    """A stored key set. ``secret`` is the caller's serialization of the keys (never logged)."""

    owner: int
    role: KeyRole
    kvn: int
    secret: bytes
    tries_left: int
    counter: int
    version: int  # bumped on every replacement: sessions opened with an older version are dropped

    def __repr__(self) -> str:
        return f"KeySetRow(owner={self.owner}, role={self.role.name}, kvn={self.kvn:#04x}, tries={self.tries_left})"


def _seal(key: bytes | AESGCM, plaintext: bytes, aad: bytes, random: Callable[[int], bytes]) -> bytes:
    nonce = random(NONCE)
    return nonce + (AESGCM(key) if isinstance(key, bytes) else key).encrypt(nonce, plaintext, aad)


def _unseal(key: bytes | AESGCM, blob: bytes, aad: bytes) -> bytes:
    try:
        return (AESGCM(key) if isinstance(key, bytes) else key).decrypt(blob[:NONCE], blob[NONCE:], aad)
    except (InvalidTag, ValueError) as exc:
        raise StoreError("sealed record does not open (store corrupted or tampered)") from exc


@dataclass(frozen=True, slots=True)
class _ContainerKey:
    """An unsealed container key with what is derived from it: its AEAD, and the ids (HMACs under it) of the
    object names looked up lately. They live and die with this key (replaced on authorization, dropped on
    revocation or rollback)."""

    key: bytes
    aead: AESGCM
    ids: dict[tuple[str, bytes], bytes]

    def __repr__(self) -> str:
        return "_ContainerKey(...)"

    @classmethod
    def of(cls, key: bytes) -> _ContainerKey:
        return cls(key, AESGCM(key), {})


class _Transaction:
    """``Store.transaction()``: a context manager without a generator (it runs once per command)."""

    __slots__ = ("_outer", "_store")

    def __init__(self, store: Store) -> None:
        self._store = store
        self._outer: list[bool] = []

    def __enter__(self) -> None:
        self._outer.append(self._store._enter())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._outer.pop():
            self._store._exit(exc_type is not None)


class Store:
    """The device's persistent state. Not thread-safe by itself: the device serializes commands."""

    def __init__(self, conn: sqlite3.Connection, dsk: bytes, device_id: bytes, random: Callable[[int], bytes]):
        self._conn = conn
        self._dsk = dsk
        self.device_id = device_id
        self._random = random
        self._dsk_aead = AESGCM(dsk)
        self._in_tx = False  # inside transaction(): the first write begins the SQLite transaction
        self._closed = False
        # Caches of committed (or this transaction's) state; see the module docstring.
        self._container_keys: dict[int, _ContainerKey] = {}
        self._rows: dict[int, ContainerRow] = {}
        self._keysets: dict[int, KeySetRow | None] = {}
        self._versions: dict[int, int | None] = {}
        self._meta: dict[str, bytes | None] = {}
        self._data_version = self._read_data_version()
        self._tx = _Transaction(self)

    def __repr__(self) -> str:
        return f"Store(device_id={self.device_id.hex()})"

    # ---------------------------------------------------------------- open / create

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @classmethod
    def create(
        cls,
        path: Path,
        vault: KeyVault,
        device_id: bytes,
        *,
        random: Callable[[int], bytes] = os.urandom,
    ) -> Store:
        """A new, empty store; refuses to touch an existing file."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"store {path} exists already")
        dsk = random(32)
        sealed = vault.seal(dsk, cls._dsk_aad(device_id))  # a vault failure leaves no file behind
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create store {path}: {exc.strerror}") from exc
        os.close(fd)
        try:
            conn = cls._connect(path)
        except sqlite3.Error as exc:
            path.unlink(missing_ok=True)
            raise StoreError(f"cannot create store: {exc}") from exc
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES ('device_id', ?)", (device_id,))
            conn.execute("INSERT INTO meta VALUES ('sealing_key', ?)", (sealed,))
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            path.unlink(missing_ok=True)
            raise StoreError(f"cannot create store: {exc}") from exc
        return cls(conn, dsk, device_id, random)

    @staticmethod
    def _dsk_aad(device_id: bytes) -> bytes:
        return b"tenantcard-store-v1\x00" + device_id

    @classmethod
    def open(cls, path: Path, vault: KeyVault, *, random: Callable[[int], bytes] = os.urandom) -> Store:
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"no store at {path}")
        try:
            conn = cls._connect(path)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                conn.close()
                raise StoreError(f"store schema version {version}, expected {SCHEMA_VERSION}")
            meta = dict(conn.execute("SELECT name, value FROM meta WHERE name IN ('device_id', 'sealing_key')"))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        if "device_id" not in meta or "sealing_key" not in meta:
            conn.close()
            raise StoreError("store lacks its device id or sealing key")
        device_id = bytes(meta["device_id"])
        try:
            dsk = vault.unseal(bytes(meta["sealing_key"]), cls._dsk_aad(device_id))
        except KeyVaultError as exc:
            conn.close()
            raise StoreError("the key vault does not open this store") from exc
        return cls(conn, dsk, device_id, random)

    def close(self) -> None:
        self._closed = True
        self._forget()
        self._conn.close()

    # ---------------------------------------------------------------- transactions

    def transaction(self) -> _Transaction:
        """One command = one transaction: its writes are committed when the block ends (durably: WAL with
        synchronous=FULL), rolled back on any exception. A block that writes nothing commits nothing.
        Nested blocks join the outer one."""
        return self._tx

    def _enter(self) -> bool:
        if self._in_tx:
            return False
        if self._closed:
            raise StoreError("store is closed")
        self._in_tx = True
        return True

    def _exit(self, failed: bool) -> None:
        self._in_tx = False
        conn = self._conn
        if not conn.in_transaction:
            return  # the command wrote nothing: nothing to commit
        if failed:
            self._forget()
            conn.execute("ROLLBACK")
            return
        try:
            conn.execute("COMMIT")  # durable before the answer leaves: WAL, synchronous=FULL
        except sqlite3.Error:
            self._forget()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _read_data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _write(self) -> None:
        """Called before every statement that changes the store: inside ``transaction()``, the first one
        begins the command's write transaction. A commit by another connection since this one last looked
        means the caches may be stale: they are dropped and the command is refused (nothing written)."""
        if not self._in_tx or self._conn.in_transaction:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        version = self._read_data_version()
        if version != self._data_version:
            self._data_version = version
            self._forget()
            self._conn.execute("ROLLBACK")
            raise StoreError("the store was changed by another connection; command refused")

    def _forget(self) -> None:
        """Drop every cached value (after a rollback: they may hold what the transaction wrote)."""
        self._container_keys.clear()
        self._rows.clear()
        self._keysets.clear()
        self._versions.clear()
        self._meta.clear()

    def check(self) -> None:
        """SQLite integrity check plus every sealed record opening; raises StoreError."""
        result = self._conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise StoreError("store integrity check failed")
        self._forget()  # every sealed record below is read and opened again, none comes from a cache
        self.get_secret("identity_key")
        self.keyset(ISD_OWNER)
        for row in self.containers():
            if row.state != ContainerState.AVAILABLE:
                self.keyset(row.index)
            if self._conn.execute("SELECT sealed_key FROM containers WHERE idx = ?", (row.index,)).fetchone()[0]:
                key = self._container_key(row.index).aead
                for obj_id, sealed in self._conn.execute(
                    "SELECT id, sealed FROM objects WHERE idx = ?", (row.index,)
                ).fetchall():
                    _unseal(key, bytes(sealed), ContainerObjects.object_aad(row.index, bytes(obj_id)))
            elif self._conn.execute("SELECT COUNT(*) FROM objects WHERE idx = ?", (row.index,)).fetchone()[0]:
                raise StoreError("objects left in a container without a key")

    # ---------------------------------------------------------------- device-level values

    def put_meta(self, name: str, value: bytes) -> None:
        self._write()
        self._meta.pop(name, None)
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def get_meta(self, name: str) -> bytes | None:
        if name in self._meta:
            return self._meta[name]
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        value = None if row is None else bytes(row[0])
        if not name.startswith("secret:"):  # sealed values are read again (and unsealed) on each use
            self._meta[name] = value
        return value

    def put_secret(self, name: str, value: bytes) -> None:
        self.put_meta("secret:" + name, _seal(self._dsk_aead, value, b"secret\x00" + name.encode(), self._random))

    def get_secret(self, name: str) -> bytes:
        blob = self.get_meta("secret:" + name)
        if blob is None:
            raise StoreError(f"store lacks secret {name}")
        return _unseal(self._dsk_aead, blob, b"secret\x00" + name.encode())

    @property
    def capacity(self) -> int:
        """Total memory the device shares among its containers (bytes)."""
        raw = self.get_meta("capacity")
        return DEFAULT_CAPACITY if raw is None else int.from_bytes(raw, "big")

    # ---------------------------------------------------------------- containers

    def add_container(self, index: int, quota: int, reserved: int) -> None:
        self._write()
        self._rows.pop(index, None)
        try:
            self._conn.execute(
                "INSERT INTO containers (idx, state, quota, reserved) VALUES (?, ?, ?, ?)",
                (index, int(ContainerState.AVAILABLE), quota, reserved),
            )
        except sqlite3.IntegrityError as exc:
            raise ApduError(SW.ALREADY_EXISTS, "container exists") from exc

    def containers(self) -> list[ContainerRow]:
        rows = self._conn.execute(
            "SELECT c.idx, c.state, c.provider_id, c.quota, c.reserved, c.expires_at,"
            " COALESCE((SELECT SUM(size) FROM objects o WHERE o.idx = c.idx), 0) FROM containers c ORDER BY c.idx"
        ).fetchall()
        return [self._row(r) for r in rows]

    def container(self, index: int) -> ContainerRow | None:
        try:
            return self._rows[index]
        except KeyError:
            pass
        r = self._conn.execute(
            "SELECT c.idx, c.state, c.provider_id, c.quota, c.reserved, c.expires_at,"
            " COALESCE((SELECT SUM(size) FROM objects o WHERE o.idx = c.idx), 0) FROM containers c WHERE c.idx = ?",
            (index,),
        ).fetchone()
        if r is None:
            return None  # not cached: the indexes asked for are the peer's choice
        row = self._rows[index] = self._row(r)
        return row

    @staticmethod
    def _row(r: tuple[int, int, str | None, int, int, int | None, int]) -> ContainerRow:
        return ContainerRow(r[0], ContainerState(r[1]), r[2], r[3], r[4], r[5], r[6])

    def set_container_state(self, index: int, state: ContainerState) -> None:
        self._write()
        self._rows.pop(index, None)
        self._conn.execute("UPDATE containers SET state = ? WHERE idx = ?", (int(state), index))

    def authorize_container(self, index: int, provider_id: str, expires_at: int) -> None:
        """AVAILABLE -> AUTHORIZED: a fresh container key, the provider id and the expiry."""
        self._write()
        self._rows.pop(index, None)
        self._container_keys.pop(index, None)
        generation = self._conn.execute("SELECT generation FROM containers WHERE idx = ?", (index,)).fetchone()[0] + 1
        key = self._random(32)
        sealed = _seal(self._dsk_aead, key, self._ckey_aad(index, generation), self._random)
        self._conn.execute(
            "UPDATE containers SET state = ?, provider_id = ?, expires_at = ?, sealed_key = ?, generation = ?"
            " WHERE idx = ?",
            (int(ContainerState.AUTHORIZED), provider_id, expires_at, sealed, generation, index),
        )
        self._container_keys[index] = _ContainerKey.of(key)

    def clear_expiry(self, index: int) -> None:
        self._write()
        self._rows.pop(index, None)
        self._conn.execute("UPDATE containers SET expires_at = NULL WHERE idx = ?", (index,))

    def wipe_container(self, index: int) -> None:
        """Revocation: destroy the container key, its key sets, objects and PIN; back to AVAILABLE."""
        self._write()
        self._rows.pop(index, None)
        self._keysets.pop(index, None)
        self._versions.pop(index, None)
        self._container_keys.pop(index, None)
        self._conn.execute("DELETE FROM objects WHERE idx = ?", (index,))
        self._conn.execute("DELETE FROM keysets WHERE owner = ?", (index,))
        self._conn.execute(
            "UPDATE containers SET state = ?, provider_id = NULL, expires_at = NULL, sealed_key = NULL WHERE idx = ?",
            (int(ContainerState.AVAILABLE), index),
        )

    def reserved_total(self) -> int:
        return int(self._conn.execute("SELECT COALESCE(SUM(reserved), 0) FROM containers").fetchone()[0])

    def committed_total(self) -> int:
        """Memory the device has promised or used: per container the larger of used and reserved."""
        return int(
            self._conn.execute(
                "SELECT COALESCE(SUM(MAX(c.reserved,"
                " COALESCE((SELECT SUM(size) FROM objects o WHERE o.idx = c.idx), 0))), 0) FROM containers c"
            ).fetchone()[0]
        )

    @staticmethod
    def _ckey_aad(index: int, generation: int) -> bytes:
        return b"container-key\x00" + struct.pack(">iI", index, generation)

    def _container_key(self, index: int) -> _ContainerKey:
        """The container's key, unsealed once and kept until a write replaces or destroys it."""
        cached = self._container_keys.get(index)
        if cached is not None:
            return cached
        row = self._conn.execute("SELECT sealed_key, generation FROM containers WHERE idx = ?", (index,)).fetchone()
        if row is None or row[0] is None:
            raise StoreError("container has no key")
        key = _ContainerKey.of(_unseal(self._dsk_aead, bytes(row[0]), self._ckey_aad(index, row[1])))
        self._container_keys[index] = key
        return key

    def _owner_key(self, owner: int) -> AESGCM:
        return self._dsk_aead if owner == ISD_OWNER else self._container_key(owner).aead

    # ---------------------------------------------------------------- key sets

    def put_keyset(self, owner: int, role: KeyRole, kvn: int, secret: bytes, tries: int) -> None:
        """Store (or replace) the one key set of ``owner``; keeps its sequence counter."""
        self._write()
        self._keysets.pop(owner, None)
        self._versions.pop(owner, None)
        sealed = _seal(self._owner_key(owner), secret, b"keyset\x00" + struct.pack(">iB", owner, kvn), self._random)
        # A device-wide serial: a key set placed after a revocation never reuses a version of the old one.
        raw = self.get_meta("keyset_serial")
        version = (0 if raw is None else int.from_bytes(raw, "big")) + 1
        self.put_meta("keyset_serial", version.to_bytes(8, "big"))
        self._conn.execute(
            "INSERT INTO keysets (owner, role, kvn, sealed, tries_left, version) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(owner) DO UPDATE SET role = excluded.role, kvn = excluded.kvn, sealed = excluded.sealed,"
            " tries_left = excluded.tries_left, version = excluded.version",
            (owner, int(role), kvn, sealed, tries, version),
        )

    def keyset(self, owner: int) -> KeySetRow | None:
        try:
            return self._keysets[owner]
        except KeyError:
            pass
        r = self._conn.execute(
            "SELECT role, kvn, sealed, tries_left, counter, version FROM keysets WHERE owner = ?", (owner,)
        ).fetchone()
        if r is None:
            keyset = None
        else:
            secret = _unseal(self._owner_key(owner), bytes(r[2]), b"keyset\x00" + struct.pack(">iB", owner, r[1]))
            keyset = KeySetRow(owner, KeyRole(r[0]), r[1], secret, r[3], r[4], r[5])
        self._keysets[owner] = keyset
        return keyset

    def keyset_version(self, owner: int) -> int | None:
        """Version of ``owner``'s key set without unsealing it (None when there is none)."""
        try:
            return self._versions[owner]
        except KeyError:
            pass
        r = self._conn.execute("SELECT version FROM keysets WHERE owner = ?", (owner,)).fetchone()
        version = None if r is None else int(r[0])
        self._versions[owner] = version
        return version

    def set_tries(self, owner: int, tries: int) -> None:
        self._write()
        self._conn.execute("UPDATE keysets SET tries_left = ? WHERE owner = ?", (tries, owner))
        cached = self._keysets.get(owner)
        if cached is not None:
            self._keysets[owner] = replace(cached, tries_left=tries)

    def set_counter(self, owner: int, counter: int) -> None:
        self._write()
        self._conn.execute("UPDATE keysets SET counter = ? WHERE owner = ?", (counter, owner))
        cached = self._keysets.get(owner)
        if cached is not None:
            self._keysets[owner] = replace(cached, counter=counter)

    # ---------------------------------------------------------------- objects

    def objects(self, index: int) -> ContainerObjects:
        return ContainerObjects(self, index)

    def _object_id(self, index: int, kind: str, name: bytes) -> bytes:
        ckey = self._container_key(index)
        obj_id = ckey.ids.get((kind, name))
        if obj_id is None:
            kind_b = kind.encode()
            obj_id = hmac.digest(ckey.key, b"object\x00" + struct.pack(">H", len(kind_b)) + kind_b + name, "sha256")[
                :16
            ]
            if len(ckey.ids) >= _MAX_CACHED_IDS:
                ckey.ids.clear()
            ckey.ids[(kind, name)] = obj_id
        return obj_id

    def _kind_id(self, index: int, kind: str) -> bytes:
        return hmac.digest(self._container_key(index).key, b"kind\x00" + kind.encode(), "sha256")[:16]


def _encode_record(kind: str, name: bytes, value: bytes) -> bytes:
    kind_b = kind.encode()
    return struct.pack(">HH", len(kind_b), len(name)) + kind_b + name + value


def _decode_record(record: bytes) -> tuple[str, bytes, bytes]:
    klen, nlen = struct.unpack(">HH", record[:4])
    kind = record[4 : 4 + klen].decode()
    name = record[4 + klen : 4 + klen + nlen]
    return kind, name, record[4 + klen + nlen :]


class ContainerObjects:
    """``functions.base.ObjectStore`` over one container's sealed rows. Kinds starting with ``core.`` are the
    container's own records (PIN); they do not count against the quota."""

    def __init__(self, store: Store, index: int) -> None:
        self._store = store
        self._index = index

    def __repr__(self) -> str:
        return f"ContainerObjects(index={self._index})"

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._store._conn

    @staticmethod
    def object_aad(index: int, obj_id: bytes) -> bytes:
        return b"object\x00" + struct.pack(">i", index) + obj_id

    def _aad(self, obj_id: bytes) -> bytes:
        return self.object_aad(self._index, obj_id)

    def get(self, kind: str, name: bytes) -> bytes | None:
        store = self._store
        obj_id = store._object_id(self._index, kind, name)
        row = self._conn.execute(
            "SELECT sealed FROM objects WHERE idx = ? AND id = ?", (self._index, obj_id)
        ).fetchone()
        if row is None:
            return None
        _, _, value = _decode_record(_unseal(store._container_key(self._index).aead, bytes(row[0]), self._aad(obj_id)))
        return value

    def put(self, kind: str, name: bytes, value: bytes) -> None:
        store = self._store
        obj_id = store._object_id(self._index, kind, name)
        size = 0 if kind.startswith("core.") else len(kind) + len(name) + len(value) + OBJECT_OVERHEAD
        old = self._conn.execute("SELECT size FROM objects WHERE idx = ? AND id = ?", (self._index, obj_id)).fetchone()
        delta = size - (old[0] if old else 0)
        if delta > 0:
            row = store.container(self._index)
            if row is None:
                raise ApduError(SW.NOT_FOUND, "no such container")
            if row.used + delta > row.quota:
                raise ApduError(SW.NOT_ENOUGH_MEMORY, "container quota exceeded")
            growth = max(row.used + delta, row.reserved) - max(row.used, row.reserved)
            if growth > 0 and store.committed_total() + growth > store.capacity:
                raise ApduError(SW.NOT_ENOUGH_MEMORY, "device memory exhausted")
        sealed = _seal(
            store._container_key(self._index).aead,
            _encode_record(kind, name, value),
            self._aad(obj_id),
            store._random,
        )
        store._write()
        if delta:
            store._rows.pop(self._index, None)  # its used bytes change
        self._conn.execute(
            "INSERT OR REPLACE INTO objects (idx, id, kind_id, sealed, size) VALUES (?, ?, ?, ?, ?)",
            (self._index, obj_id, store._kind_id(self._index, kind), sealed, size),
        )

    def delete(self, kind: str, name: bytes) -> bool:
        store = self._store
        obj_id = store._object_id(self._index, kind, name)
        if (
            self._conn.execute("SELECT 1 FROM objects WHERE idx = ? AND id = ?", (self._index, obj_id)).fetchone()
            is None
        ):
            return False  # nothing to change: no write transaction
        store._write()
        store._rows.pop(self._index, None)
        cur = self._conn.execute("DELETE FROM objects WHERE idx = ? AND id = ?", (self._index, obj_id))
        return cur.rowcount > 0

    def names(self, kind: str) -> list[bytes]:
        store = self._store
        kind_id = store._kind_id(self._index, kind)
        aead = store._container_key(self._index).aead
        out = []
        for obj_id, sealed in self._conn.execute(
            "SELECT id, sealed FROM objects WHERE idx = ? AND kind_id = ?", (self._index, kind_id)
        ):
            _, name, _ = _decode_record(_unseal(aead, bytes(sealed), self._aad(bytes(obj_id))))
            out.append(name)
        return sorted(out)

    def used_bytes(self) -> int:
        row = self._store.container(self._index)
        return 0 if row is None else row.used

    def quota_bytes(self) -> int:
        row = self._store.container(self._index)
        return 0 if row is None else row.quota
