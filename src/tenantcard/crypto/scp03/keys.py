"""SCP03 static key sets, key check values and PUT KEY key data (GP 2.3.1 §11.8, GP Amd D §4.1, §7.x)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tenantcard.crypto.errors import KeyDataError
from tenantcard.wire.gp import KeyType

AES_KEY_LENGTHS = (16, 24, 32)
KCV_LENGTH = 3
_KCV_PLAIN = b"\x01" * 16  # GP Amd D §7.2 (key check value of an AES key)
_ZERO_IV = bytes(16)

RandomSource = Callable[[int], bytes]


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) not in AES_KEY_LENGTHS:
        raise KeyDataError("AES key must be 16, 24 or 32 bytes")


def kcv(key: bytes) -> bytes:
    """Key check value of an AES key: first 3 bytes of AES-ECB(key, 16 x '01') (GP Amd D §7.2)."""
    _check_key(key)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - one fixed block, by definition
    return (enc.update(_KCV_PLAIN) + enc.finalize())[:KCV_LENGTH]


def encrypt_key_data(dek: bytes, key: bytes) -> bytes:
    """Encrypt a key value under the DEK: AES-CBC, zero ICV (GP Amd D §6.2.6, GP 2.3.1 §11.8.2.3).

    A value that is not a whole number of blocks (AES-192) is padded with '00' (GP 2.3.1 table 11-70; the
    clear length travels beside it, see :class:`KeyComponent`).
    """
    _check_key(dek)
    if not key:
        raise KeyDataError("empty key data")
    padded = key + bytes(-len(key) % 16)
    enc = Cipher(algorithms.AES(dek), modes.CBC(_ZERO_IV)).encryptor()
    return enc.update(padded) + enc.finalize()


def decrypt_key_data(dek: bytes, data: bytes, length: int | None = None) -> bytes:
    """Inverse of :func:`encrypt_key_data`; ``length`` is the clear length (default: all of it)."""
    _check_key(dek)
    if not data or len(data) % 16 or (length is not None and not len(data) - 16 < length <= len(data)):
        raise KeyDataError("encrypted key data must be a non-empty multiple of 16 bytes")
    dec = Cipher(algorithms.AES(dek), modes.CBC(_ZERO_IV)).decryptor()
    return (dec.update(data) + dec.finalize())[:length]


@dataclass(frozen=True, eq=False)
class StaticKeys:
    """One SCP03 static key set: Key-ENC, Key-MAC, Key-DEK (all AES, same length) and its key version number.

    ``repr`` shows the KVN and key length only; equality is constant-time.
    """

    enc: bytes
    mac: bytes
    dek: bytes
    kvn: int

    def __post_init__(self) -> None:
        for key in (self.enc, self.mac, self.dek):
            _check_key(key)
        if not len(self.enc) == len(self.mac) == len(self.dek):
            raise KeyDataError("the three keys of a key set must have the same length")
        # GP 2.3.1 §11.1.8: KVN 01-7F; 00 and FF are reserved for "new key" / the initial key (allowed here).
        if not 0 <= self.kvn <= 0xFF:
            raise KeyDataError("key version number out of range")

    @property
    def length(self) -> int:
        """Key length in bytes (16, 24 or 32)."""
        return len(self.enc)

    def kcvs(self) -> tuple[bytes, bytes, bytes]:
        """KCVs of ENC, MAC and DEK."""
        return kcv(self.enc), kcv(self.mac), kcv(self.dek)

    def with_kvn(self, kvn: int) -> StaticKeys:
        return StaticKeys(self.enc, self.mac, self.dek, kvn)

    @classmethod
    def generate(cls, kvn: int, length: int = 16, random: RandomSource = os.urandom) -> StaticKeys:
        """A fresh random key set."""
        if length not in AES_KEY_LENGTHS:
            raise KeyDataError("AES key must be 16, 24 or 32 bytes")
        return cls(random(length), random(length), random(length), kvn)

    def __repr__(self) -> str:
        return f"StaticKeys(kvn=0x{self.kvn:02X}, aes{8 * len(self.enc)})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StaticKeys):
            return NotImplemented
        return (
            self.kvn == other.kvn
            and hmac.compare_digest(self.enc, other.enc)
            and hmac.compare_digest(self.mac, other.mac)
            and hmac.compare_digest(self.dek, other.dek)
        )

    def __hash__(self) -> int:
        return hash((self.kvn, len(self.enc)))


@dataclass(frozen=True)
class KeyComponent:
    """One key component of PUT KEY (GP 2.3.1 §11.8.2.3): key type, DEK-encrypted key value, KCV.

    ``key_length`` is the clear key length when the value is preceded by it (``88 11 10 <16 bytes>``, table
    11-70, needed for AES-192); None for the bare form ``88 10 <16 bytes>`` (table 11-71).
    """

    key_type: int
    encrypted: bytes
    check: bytes
    key_length: int | None = None

    @property
    def clear_length(self) -> int:
        return len(self.encrypted) if self.key_length is None else self.key_length

    def to_bytes(self) -> bytes:
        value = self.encrypted if self.key_length is None else bytes([self.key_length]) + self.encrypted
        if len(value) > 0x7F:
            raise KeyDataError("key component too long")
        return bytes([self.key_type, len(value)]) + value + bytes([len(self.check)]) + self.check

    def __repr__(self) -> str:
        return f"KeyComponent(type=0x{self.key_type:02X}, {self.clear_length} bytes)"


def _parse_component(data: bytes, pos: int) -> tuple[KeyComponent, int]:
    if pos + 2 > len(data):
        raise KeyDataError("truncated key component")
    key_type, length = data[pos], data[pos + 1]
    pos += 2
    if length == 0 or length > 0x7F or pos + length > len(data):
        raise KeyDataError("bad key component length")
    value = data[pos : pos + length]
    pos += length
    # Encrypted values are whole AES blocks, so the two forms differ by length: 16n + 1 has the clear length
    # in front (table 11-70), 16n is the bare value (table 11-71).
    key_length: int | None
    if len(value) % 16 == 1 and len(value) - 17 < value[0] <= len(value) - 1:
        key_length, encrypted = value[0], value[1:]
    elif len(value) % 16 == 0:
        key_length, encrypted = None, value
    else:
        raise KeyDataError("bad key component length")
    if pos >= len(data):
        raise KeyDataError("missing key check value")
    kcv_len = data[pos]
    pos += 1
    if kcv_len != KCV_LENGTH or pos + kcv_len > len(data):
        raise KeyDataError("bad key check value length")
    check = data[pos : pos + kcv_len]
    return KeyComponent(key_type, bytes(encrypted), bytes(check), key_length), pos + kcv_len


@dataclass(frozen=True)
class PutKeyCommand:
    """PUT KEY command data for an AES SCP03 key set (GP 2.3.1 §11.8.2, Amd D §7.x).

    ``p1`` is the KVN being replaced (00: add a new key set); ``p2`` is the first key identifier, with b8 set
    for "several keys" (0x81 for SCP03's ENC/MAC/DEK at identifiers 1, 2, 3).
    """

    p1: int
    p2: int
    new_kvn: int
    components: tuple[KeyComponent, KeyComponent, KeyComponent]

    def to_data(self) -> bytes:
        return bytes([self.new_kvn]) + b"".join(c.to_bytes() for c in self.components)

    @property
    def replaces(self) -> int:
        """KVN of the key set replaced, 0 when the command adds a key set."""
        return self.p1

    @classmethod
    def for_keys(
        cls, new: StaticKeys, dek: bytes, *, replace_kvn: int = 0, key_id: int = 1, long_form: bool = True
    ) -> PutKeyCommand:
        """Build PUT KEY for ``new``, its key values encrypted under ``dek`` (the current static DEK).

        ``long_form``: ``88 11 10 <key>`` (clear length in front, as GP 2.3.1 table 11-70); else ``88 10 <key>``.
        """
        if not long_form and new.length % 16:
            raise KeyDataError("AES-192 key data needs the clear length (88 21 18 ...)")
        comps = tuple(
            KeyComponent(KeyType.AES, encrypt_key_data(dek, key), kcv(key), len(key) if long_form else None)
            for key in (new.enc, new.mac, new.dek)
        )
        return cls(replace_kvn, 0x80 | key_id, new.kvn, (comps[0], comps[1], comps[2]))

    @classmethod
    def parse(cls, p1: int, p2: int, data: bytes) -> PutKeyCommand:
        """Parse the command data; accepts both key-data encodings. Raises KeyDataError."""
        if not 0 <= p1 <= 0x7F or not p2 & 0x80 or not 1 <= (p2 & 0x7F) <= 0x7F:
            raise KeyDataError("PUT KEY of one key set of three keys expected (P2 b8 set)")
        if len(data) < 1:
            raise KeyDataError("empty PUT KEY data")
        new_kvn = data[0]
        if not 1 <= new_kvn <= 0x7F:
            raise KeyDataError("new key version number out of range")
        pos = 1
        comps: list[KeyComponent] = []
        while pos < len(data) and len(comps) < 3:
            comp, pos = _parse_component(data, pos)
            if comp.key_type != KeyType.AES:
                raise KeyDataError("only AES key components are supported")
            comps.append(comp)
        if len(comps) != 3 or pos != len(data):
            raise KeyDataError("PUT KEY must carry exactly three AES keys")
        if len({c.clear_length for c in comps}) != 1 or comps[0].clear_length not in AES_KEY_LENGTHS:
            raise KeyDataError("key components of different or unsupported lengths")
        return cls(p1, p2, new_kvn, (comps[0], comps[1], comps[2]))

    def decrypt(self, dek: bytes, kvn: int | None = None) -> StaticKeys:
        """Decrypt the three keys under ``dek`` and check every KCV; ``kvn`` defaults to the new KVN.

        Raises KeyDataError (one message whichever KCV failed).
        """
        keys = [decrypt_key_data(dek, c.encrypted, c.clear_length) for c in self.components]
        ok = True
        for key, comp in zip(keys, self.components, strict=True):
            ok &= hmac.compare_digest(kcv(key), comp.check)
        if not ok:
            raise KeyDataError("key check value mismatch")
        return StaticKeys(keys[0], keys[1], keys[2], self.new_kvn if kvn is None else kvn)


def put_key_response(keys: StaticKeys) -> bytes:
    """PUT KEY response data: new KVN || KCV of each key (GP 2.3.1 §11.8.3.1)."""
    return bytes([keys.kvn]) + b"".join(keys.kcvs())
