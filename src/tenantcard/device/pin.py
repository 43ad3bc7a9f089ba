"""The holder PIN of a container (ISO 7816-4 §7.5.6 VERIFY, §7.5.7 CHANGE REFERENCE DATA, §7.5.10 RESET RETRY
COUNTER). Stored sealed in the container's store under the ``core.pin`` kind; the retry counter is persistent
and each failed attempt is committed before its 63Cx goes out.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from tenantcard.device.store import ContainerObjects
from tenantcard.wire.sw import SW, ApduError

PIN_KIND = "core.pin"
PIN_NAME = b"holder"
MIN_PIN = 4
MAX_PIN = 16
MAX_RETRIES = 15
DEFAULT_RETRIES = 3
PAD = 0xFF  # CHANGE REFERENCE DATA: each PIN right-padded with FF to 16 bytes


@dataclass(frozen=True, slots=True)
class PinRecord:
    pin: bytes
    tries_left: int
    max_tries: int

    def __repr__(self) -> str:
        return f"PinRecord(tries_left={self.tries_left}, max_tries={self.max_tries})"

    def to_bytes(self) -> bytes:
        return bytes([self.tries_left, self.max_tries, len(self.pin)]) + self.pin

    @classmethod
    def parse(cls, raw: bytes) -> PinRecord:
        return cls(raw[3 : 3 + raw[2]], raw[0], raw[1])


def check_pin_format(pin: bytes) -> None:
    if not MIN_PIN <= len(pin) <= MAX_PIN or PAD in pin:
        raise ApduError(SW.INCORRECT_DATA, "PIN must be 4..16 bytes without FF")


def unpad_pin(field: bytes) -> bytes:
    pin = field.rstrip(bytes([PAD]))
    check_pin_format(pin)
    return pin


class HolderPin:
    """PIN operations on one container's store."""

    def __init__(self, objects: ContainerObjects) -> None:
        self._objects = objects

    def record(self) -> PinRecord | None:
        raw = self._objects.get(PIN_KIND, PIN_NAME)
        return None if raw is None else PinRecord.parse(raw)

    def _save(self, record: PinRecord) -> None:
        self._objects.put(PIN_KIND, PIN_NAME, record.to_bytes())

    def set(self, pin: bytes, retries: int) -> None:
        """Provider sets (or resets) the PIN and its retry limit."""
        check_pin_format(pin)
        if not 1 <= retries <= MAX_RETRIES:
            raise ApduError(SW.INCORRECT_DATA, "retry limit must be 1..15")
        self._save(PinRecord(pin, retries, retries))

    def unblock(self, pin: bytes) -> None:
        """RESET RETRY COUNTER by the provider: new PIN, counter back to its limit."""
        check_pin_format(pin)
        record = self.record()
        limit = DEFAULT_RETRIES if record is None else record.max_tries
        self._save(PinRecord(pin, limit, limit))

    def verify(self, candidate: bytes) -> SW:
        """Check ``candidate``; returns 9000 or 63Cx (the decremented counter is written either way).
        Raises ApduError 6A88 without a PIN, 6983 when blocked."""
        record = self.record()
        if record is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no PIN set")
        if record.tries_left == 0:
            raise ApduError(SW.AUTH_METHOD_BLOCKED, "PIN blocked")
        check_pin_format(candidate)
        # Compare digests: constant time whatever the lengths of the two PINs.
        if hmac.compare_digest(hashlib.sha256(candidate).digest(), hashlib.sha256(record.pin).digest()):
            if record.tries_left != record.max_tries:
                self._save(PinRecord(record.pin, record.max_tries, record.max_tries))
            return SW.OK
        left = record.tries_left - 1
        self._save(PinRecord(record.pin, left, record.max_tries))
        return SW.retries(left)

    def status(self) -> SW:
        """VERIFY without data (ISO 7816-4 §7.5.6): 63Cx tries left, 6983 blocked, 6A88 no PIN."""
        record = self.record()
        if record is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no PIN set")
        if record.tries_left == 0:
            raise ApduError(SW.AUTH_METHOD_BLOCKED, "PIN blocked")
        return SW.retries(record.tries_left)

    def change(self, old: bytes, new: bytes) -> SW:
        check_pin_format(new)
        sw = self.verify(old)
        if sw != SW.OK:
            return sw
        record = self.record()
        assert record is not None
        self._save(PinRecord(new, record.max_tries, record.max_tries))
        return SW.OK
