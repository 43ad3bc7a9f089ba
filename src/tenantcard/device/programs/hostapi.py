"""The host API a program imports (module ``tenantcard``, host API version 1; docs/programs.md "Host API").

Every pointer/length pair a program hands in is checked against its linear memory before anything is read
or written (a bad one ends the call with ``ProgramSW.HOST_POINTER``); every host function charges fuel for
its own work before doing it. Object writes are buffered in ``BufferedObjects`` and reach the container's
store only when the call returns normally. Keys are used by id: their secret never enters guest memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import wasmtime
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tenantcard.device.functions.base import ObjectStore, Rights
from tenantcard.wire.programs import MAX_KEY_ID, MIN_KEY_ID, ProgramKeyType, ProgramSW

HOST_MODULE = "tenantcard"
KEY_KIND = "programs.key"
MAX_OBJECT_NAME = 64
MAX_OBJECT_VALUE = 8192
MAX_OUTPUT = 4096
MAX_RANDOM = 1024
MAX_MESSAGE = 65536
MAX_PARSED_KEYS = 16
OBJECT_OVERHEAD = 64  # bytes charged per stored object on top of name and value when estimating the quota


def data_kind(program_id: int) -> str:
    """Store kind of one program's own data objects."""
    return f"programs.data.{program_id:02x}"


class HostError(IntEnum):
    """Negative results of host functions: conditions a program is expected to handle itself."""

    NOT_FOUND = -1
    QUOTA = -2
    ARGUMENT = -3
    KEY_TYPE = -4
    BUFFER = -5


class Fuel(IntEnum):
    """Fuel a host function charges (wasmtime fuel units: about one per simple instruction)."""

    CALL = 100
    PER_BYTE = 1
    STORE_READ = 2_000
    STORE_WRITE = 5_000
    MAC = 5_000
    SIGN_ED25519 = 60_000
    SIGN_P256 = 120_000
    RANDOM = 1_000


class ProgramTrap(Exception):
    """Ends a program call with ``sw``. Raised inside host functions (wasmtime turns it into a trap and
    re-raises it to the caller) and by the sandbox when it classifies a wasmtime trap."""

    def __init__(self, sw: ProgramSW, message: str = "") -> None:
        self.sw = sw
        super().__init__(message or sw.name)


_I32 = wasmtime.ValType.i32()

# name -> (number of i32 parameters, number of i32 results): the whole host API of version 1.
HOST_FUNCTIONS: dict[str, tuple[int, int]] = {
    "input": (2, 1),  # (dst, cap) -> full length of the command data; copies min(length, cap)
    "output": (2, 1),  # (src, len) -> 0 | BUFFER; sets the response data
    "obj_get": (4, 1),  # (name, name_len, dst, cap) -> value length | NOT_FOUND; copies min(length, cap)
    "obj_put": (4, 1),  # (name, name_len, src, len) -> 0 | QUOTA | ARGUMENT
    "obj_delete": (2, 1),  # (name, name_len) -> 1 deleted | 0 absent
    "mac": (5, 1),  # (key_id, msg, msg_len, dst, cap) -> 32 | NOT_FOUND | KEY_TYPE | BUFFER
    "sign": (5, 1),  # (key_id, msg, msg_len, dst, cap) -> signature length | NOT_FOUND | KEY_TYPE | BUFFER
    "random": (2, 1),  # (dst, len) -> 0 | ARGUMENT
    "rights": (0, 1),  # () -> bit 0 provider channel, bit 1 holder PIN verified
}


def host_func_type(name: str) -> wasmtime.FuncType:
    params, results = HOST_FUNCTIONS[name]
    return wasmtime.FuncType([_I32] * params, [_I32] * results)


class BufferedObjects:
    """A program's data objects for one call: reads see the call's own writes; ``commit`` applies them."""

    def __init__(self, store: ObjectStore, kind: str) -> None:
        self._store = store
        self._kind = kind
        self._pending: dict[bytes, bytes | None] = {}

    def get(self, name: bytes) -> bytes | None:
        if name in self._pending:
            return self._pending[name]
        return self._store.get(self._kind, name)

    def fits(self, name: bytes, value: bytes) -> bool:
        """Whether the write would stay within the container's quota (estimate; ``put`` has the last word)."""
        growth = sum(len(n) + len(v) + OBJECT_OVERHEAD for n, v in self._pending.items() if v is not None)
        old = self.get(name)
        delta = len(value) - (len(old) if old is not None else -len(name) - OBJECT_OVERHEAD)
        return self._store.used_bytes() + growth + delta <= self._store.quota_bytes()

    def put(self, name: bytes, value: bytes) -> None:
        self._pending[name] = value

    def delete(self, name: bytes) -> bool:
        existed = self.get(name) is not None
        self._pending[name] = None
        return existed

    def commit(self) -> None:
        """Apply the writes; ``ObjectStore.put`` raises ApduError past the quota, and the container then
        rolls back the whole command."""
        for name, value in self._pending.items():
            if value is None:
                self._store.delete(self._kind, name)
            else:
                self._store.put(self._kind, name, value)
        self._pending.clear()


def encode_key(key_type: ProgramKeyType, secret: bytes) -> bytes:
    return bytes([key_type]) + secret


def check_key(key_type: ProgramKeyType, secret: bytes) -> None:
    """Raise ValueError when ``secret`` is not a key of ``key_type``."""
    if key_type == ProgramKeyType.HMAC_SHA256:
        if not 16 <= len(secret) <= 64:
            raise ValueError("HMAC key must be 16..64 bytes")
    elif key_type == ProgramKeyType.ED25519:
        if len(secret) != 32:
            raise ValueError("Ed25519 private key must be 32 bytes")
    elif key_type == ProgramKeyType.ECDSA_P256:
        if len(secret) != 32:
            raise ValueError("P-256 private key must be 32 bytes")
        ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
    else:
        raise ValueError("unknown key type")


def public_key(key_type: ProgramKeyType, secret: bytes) -> bytes:
    """Raw Ed25519 public key or uncompressed SEC 1 P-256 point."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if key_type == ProgramKeyType.ED25519:
        return ed25519.Ed25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    if key_type == ProgramKeyType.ECDSA_P256:
        priv = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
        return priv.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raise ValueError("key type has no public key")


PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class ProgramKeys:
    """The container's program keys (store kind ``programs.key``), used by id. Each record is read once per
    call; parsed private keys are kept in ``parsed`` (per session, keyed by the sealed record's plaintext, so a
    replaced key is never served from it)."""

    def __init__(self, store: ObjectStore, parsed: dict[bytes, PrivateKey] | None = None) -> None:
        self._store = store
        self._records: dict[int, bytes | None] = {}
        self._parsed = parsed if parsed is not None else {}

    def load(self, key_id: int) -> tuple[ProgramKeyType, bytes] | None:
        if not MIN_KEY_ID <= key_id <= MAX_KEY_ID:
            return None
        if key_id not in self._records:
            self._records[key_id] = self._store.get(KEY_KIND, bytes([key_id]))
        raw = self._records[key_id]
        if not raw:
            return None
        return ProgramKeyType(raw[0]), raw[1:]

    def _private(self, key_type: ProgramKeyType, secret: bytes) -> PrivateKey:
        record = bytes([key_type]) + secret
        key = self._parsed.get(record)
        if key is None:
            if key_type == ProgramKeyType.ED25519:
                key = ed25519.Ed25519PrivateKey.from_private_bytes(secret)
            else:
                key = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
            if len(self._parsed) >= MAX_PARSED_KEYS:
                self._parsed.clear()
            self._parsed[record] = key
        return key

    def mac(self, key_id: int, message: bytes) -> bytes | HostError:
        key = self.load(key_id)
        if key is None:
            return HostError.NOT_FOUND
        key_type, secret = key
        if key_type != ProgramKeyType.HMAC_SHA256:
            return HostError.KEY_TYPE
        h = hmac.HMAC(secret, hashes.SHA256())
        h.update(message)
        return h.finalize()

    def sign(self, key_id: int, message: bytes) -> bytes | HostError:
        key = self.load(key_id)
        if key is None:
            return HostError.NOT_FOUND
        key_type, secret = key
        if key_type not in (ProgramKeyType.ED25519, ProgramKeyType.ECDSA_P256):
            return HostError.KEY_TYPE
        try:
            private = self._private(key_type, secret)
        except (ValueError, UnsupportedAlgorithm):
            return HostError.KEY_TYPE
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return private.sign(message)
        return private.sign(message, ec.ECDSA(hashes.SHA256()))

    def sign_cost(self, key_id: int) -> int:
        key = self.load(key_id)
        if key is not None and key[0] == ProgramKeyType.ECDSA_P256:
            return Fuel.SIGN_P256
        return Fuel.SIGN_ED25519


@dataclass
class HostCall:
    """What the host functions of one program call may touch."""

    objects: BufferedObjects
    keys: ProgramKeys
    rights: Rights
    random: Callable[[int], bytes]
    input: bytes
    output: bytes = b""
    stats: dict[str, int] = field(default_factory=dict)


class HostEnv:
    """Binds the host API into a linker for one instance; ``call`` is set for the duration of each call."""

    def __init__(self, store: wasmtime.Store) -> None:
        self._store = store
        self.memory: wasmtime.Memory | None = None
        self.call: HostCall | None = None

    # -- helpers ------------------------------------------------------------------------------------------

    def _charge(self, amount: int) -> None:
        """Take ``amount`` fuel from the call's budget before doing the work (wasmtime docs: Store::set_fuel)."""
        left = self._store.get_fuel()
        if amount > left:
            self._store.set_fuel(0)
            raise ProgramTrap(ProgramSW.OUT_OF_FUEL)
        self._store.set_fuel(left - amount)

    def _span(self, ptr: int, length: int) -> tuple[int, int]:
        """Check a guest (pointer, length) pair against linear memory (WebAssembly core spec §2.5.7: i32
        pointers are unsigned)."""
        assert self.memory is not None
        start = ptr & 0xFFFFFFFF
        if length < 0 or start + length > self.memory.data_len(self._store):
            raise ProgramTrap(ProgramSW.HOST_POINTER)
        return start, start + length

    def _read(self, ptr: int, length: int) -> bytes:
        start, end = self._span(ptr, length)
        assert self.memory is not None
        return bytes(self.memory.read(self._store, start, end)) if end > start else b""

    def _write(self, ptr: int, data: bytes) -> None:
        start, _ = self._span(ptr, len(data))
        assert self.memory is not None
        if data:
            self.memory.write(self._store, data, start)

    def _copy_out(self, dst: int, cap: int, data: bytes) -> None:
        """Check the whole destination buffer, then copy what fits."""
        self._span(dst, cap)
        self._write(dst, data[: max(cap, 0)])

    def _current(self) -> HostCall:
        if self.call is None:
            raise ProgramTrap(ProgramSW.TRAP, "host function called outside a call")
        return self.call

    def _name(self, ptr: int, length: int) -> bytes | None:
        if not 1 <= length <= MAX_OBJECT_NAME:
            self._span(ptr, max(length, 0))
            return None
        return self._read(ptr, length)

    # -- the host API -------------------------------------------------------------------------------------

    def input(self, dst: int, cap: int) -> int:
        call = self._current()
        self._charge(Fuel.CALL + Fuel.PER_BYTE * len(call.input))
        self._copy_out(dst, cap, call.input)
        return len(call.input)

    def output(self, src: int, length: int) -> int:
        call = self._current()
        self._charge(Fuel.CALL + Fuel.PER_BYTE * max(length, 0))
        data = self._read(src, length)
        if len(data) > MAX_OUTPUT:
            return HostError.BUFFER
        call.output = data
        return 0

    def obj_get(self, name_ptr: int, name_len: int, dst: int, cap: int) -> int:
        call = self._current()
        self._charge(Fuel.STORE_READ)
        name = self._name(name_ptr, name_len)
        self._span(dst, cap)
        if name is None:
            return HostError.ARGUMENT
        value = call.objects.get(name)
        if value is None:
            return HostError.NOT_FOUND
        self._charge(Fuel.PER_BYTE * len(value))
        self._copy_out(dst, cap, value)
        return len(value)

    def obj_put(self, name_ptr: int, name_len: int, src: int, length: int) -> int:
        call = self._current()
        self._charge(Fuel.STORE_WRITE + Fuel.PER_BYTE * max(length, 0))
        name = self._name(name_ptr, name_len)
        value = self._read(src, length)
        if name is None or len(value) > MAX_OBJECT_VALUE:
            return HostError.ARGUMENT
        if not call.objects.fits(name, value):
            return HostError.QUOTA
        call.objects.put(name, value)
        return 0

    def obj_delete(self, name_ptr: int, name_len: int) -> int:
        call = self._current()
        self._charge(Fuel.STORE_WRITE)
        name = self._name(name_ptr, name_len)
        if name is None:
            return HostError.ARGUMENT
        return 1 if call.objects.delete(name) else 0

    def mac(self, key_id: int, msg: int, msg_len: int, dst: int, cap: int) -> int:
        call = self._current()
        self._charge(Fuel.MAC + Fuel.PER_BYTE * max(msg_len, 0))
        return self._keyed(msg, msg_len, dst, cap, lambda message: call.keys.mac(key_id, message))

    def sign(self, key_id: int, msg: int, msg_len: int, dst: int, cap: int) -> int:
        call = self._current()
        self._charge(call.keys.sign_cost(key_id) + Fuel.PER_BYTE * max(msg_len, 0))
        return self._keyed(msg, msg_len, dst, cap, lambda message: call.keys.sign(key_id, message))

    def _keyed(self, msg: int, msg_len: int, dst: int, cap: int, compute: Callable[[bytes], bytes | HostError]) -> int:
        """``compute`` (a MAC or a signature with a program key) over the message at ``msg``, written to ``dst``:
        its length, or the HostError."""
        message = self._read(msg, msg_len)
        self._span(dst, cap)
        if len(message) > MAX_MESSAGE:
            return HostError.ARGUMENT
        out = compute(message)
        if isinstance(out, HostError):
            return out
        if cap < len(out):
            return HostError.BUFFER
        self._write(dst, out)
        return len(out)

    def random(self, dst: int, length: int) -> int:
        call = self._current()
        self._charge(Fuel.RANDOM + Fuel.PER_BYTE * max(length, 0))
        self._span(dst, length)
        if length > MAX_RANDOM:
            return HostError.ARGUMENT
        self._write(dst, call.random(length))
        return 0

    def rights(self) -> int:
        call = self._current()
        self._charge(Fuel.CALL)
        return (1 if call.rights.provider else 0) | (2 if call.rights.holder else 0)

    def define(self, linker: wasmtime.Linker) -> None:
        for name in HOST_FUNCTIONS:
            fn: Callable[..., int] = getattr(self, name)
            linker.define_func(HOST_MODULE, name, host_func_type(name), _plain_int(fn))


def _plain_int(fn: Callable[..., int]) -> Callable[..., Any]:
    def call(*args: int) -> int:
        return int(fn(*args))

    return call
