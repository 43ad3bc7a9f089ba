"""ISO 7816-4 §5.6 status words, and the error a card-side handler raises to answer one."""

from __future__ import annotations

from enum import IntEnum


class SW(IntEnum):
    """Status words used by tenantcard (ISO 7816-4 table 5-6, GP 2.3.1 §11.1.3). Unknown values still parse."""

    OK = 0x9000
    BYTES_REMAINING = 0x6100  # 61xx: SW2 bytes waiting for GET RESPONSE
    WARNING_NO_CHANGE = 0x6200
    DATA_CORRUPTED = 0x6281
    END_OF_DATA = 0x6282
    SELECTED_FILE_INVALIDATED = 0x6283  # also: application LOCKED (GP §11.9.3)
    VERIFY_FAILED = 0x6300
    RETRIES_LEFT = 0x63C0  # 63Cx: x tries left
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    SM_DATA_MISSING = 0x6987
    SM_DATA_INCORRECT = 0x6988
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    ALREADY_EXISTS = 0x6A89
    WRONG_P1P2 = 0x6B00
    WRONG_LE = 0x6C00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    UNKNOWN = 0x6F00

    @classmethod
    def _missing_(cls, value: object) -> SW | None:
        if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            return None
        member = int.__new__(cls, value)
        member._name_ = f"SW_{value:04X}"
        member._value_ = value
        return member

    @property
    def sw1(self) -> int:
        return self.value >> 8

    @property
    def sw2(self) -> int:
        return self.value & 0xFF

    def to_bytes(self) -> bytes:  # type: ignore[override]
        return int.to_bytes(self, 2, "big")

    @classmethod
    def retries(cls, left: int) -> SW:
        """63Cx: verification failed, x tries left (ISO 7816-4 §5.6)."""
        return cls(0x63C0 | min(max(left, 0), 15))

    @classmethod
    def bytes_remaining(cls, n: int) -> SW:
        """61xx: n more bytes for GET RESPONSE; 00 means 256 or more."""
        return cls(0x6100 | (n if n < 256 else 0))


class ApduError(Exception):
    """Raised by a card-side handler to answer with a status word and no data.

    The message is for logs only and must never carry key material or PINs.
    """

    def __init__(self, sw: SW | int, message: str = "") -> None:
        self.sw = SW(sw)
        super().__init__(message or self.sw.name)
