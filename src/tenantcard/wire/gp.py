"""GlobalPlatform Card Specification 2.3.1 numbers: CLA, INS, key types, lifecycle states, AIDs.

Proprietary instructions (tenantcard functions that GP has no command for) use CLA 80/84 and the INS
values of ``ProprietaryIns``; docs/protocol.md documents each.
"""

from __future__ import annotations

from enum import IntEnum


class _UnknownFallback(IntEnum):
    """IntEnum that parses values it does not know instead of raising (kept distinguishable by name)."""

    @classmethod
    def _missing_(cls, value: object) -> _UnknownFallback | None:
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value:02X}"
        member._value_ = value
        return member


class Cla(_UnknownFallback):
    ISO = 0x00
    ISO_SM = 0x04  # ISO 7816-4 §5.1.1 secure messaging indication (used by PIV-style applets)
    GP = 0x80
    GP_SM = 0x84  # GP 2.3.1 §11.1.4: secure messaging, C-MAC at least


class Ins(_UnknownFallback):
    """ISO 7816-4 and GP 2.3.1 §11 instructions."""

    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    INITIALIZE_UPDATE = 0x50  # GP Amd D §7.1
    EXTERNAL_AUTHENTICATE = 0x82  # GP Amd D §7.2
    INTERNAL_AUTHENTICATE = 0x88  # ISO 7816-4 §7.5.2
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x47  # ISO 7816-8
    GENERAL_AUTHENTICATE = 0x87  # ISO 7816-4 §7.5.4
    SELECT = 0xA4
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCA
    GET_DATA_ODD = 0xCB
    PUT_DATA = 0xDB
    PUT_KEY = 0xD8  # GP 2.3.1 §11.8
    DELETE = 0xE4  # GP 2.3.1 §11.2
    INSTALL = 0xE6  # GP 2.3.1 §11.5
    STORE_DATA = 0xE2  # GP 2.3.1 §11.11
    SET_STATUS = 0xF0  # GP 2.3.1 §11.10
    GET_STATUS = 0xF2  # GP 2.3.1 §11.4


class KeyType(_UnknownFallback):
    """GP 2.3.1 §11.1.8 table 11-16 key type coding."""

    DES = 0x80
    PRESHARED = 0x85
    AES = 0x88
    HMAC_SHA1 = 0x90
    HMAC_SHA256 = 0x92
    ECC_PUBLIC = 0xB0
    ECC_PRIVATE = 0xB1
    ECC_PARAMETERS = 0xF0
    EXTENDED = 0xFF


class SecurityLevel(IntEnum):
    """GP Amd D §5.1 table 5-1 security level bits (P1 of EXTERNAL AUTHENTICATE)."""

    NONE = 0x00
    C_MAC = 0x01
    C_DECRYPTION = 0x02
    R_MAC = 0x10
    R_ENCRYPTION = 0x20

    @staticmethod
    def valid(level: int) -> bool:
        """The combinations Amd D §5.1 allows: 00, 01, 03, 11, 13, 33."""
        return level in (0x00, 0x01, 0x03, 0x11, 0x13, 0x33)


class InstallP1(IntEnum):
    """GP 2.3.1 §11.5.2.1 INSTALL P1 bits."""

    MORE_FOLLOW = 0x01
    FOR_LOAD = 0x02
    FOR_INSTALL = 0x04
    FOR_MAKE_SELECTABLE = 0x08
    FOR_EXTRADITION = 0x10
    FOR_PERSONALIZATION = 0x20
    FOR_REGISTRY_UPDATE = 0x40


class LifeCycle(_UnknownFallback):
    """GP 2.3.1 §11.1.1 application life cycle coding, as GET STATUS reports a container.

    SELECTABLE (07) is AVAILABLE; PERSONALIZED (0F) is OWNED; bit 8 (0x80) marks LOCKED.
    AUTHORIZED uses the application-specific bits 4-7 over SELECTABLE: 0x17.
    """

    INSTALLED = 0x03
    SELECTABLE = 0x07
    AUTHORIZED = 0x17
    PERSONALIZED = 0x0F
    LOCKED = 0x83


class GetStatusP1(IntEnum):
    """GP 2.3.1 §11.4.2.1."""

    ISD = 0x80
    APPLICATIONS = 0x40
    LOAD_FILES = 0x20
    LOAD_FILES_AND_MODULES = 0x10


class DataTag(IntEnum):
    """GET DATA tags (GP 2.3.1 §11.3.3)."""

    ISSUER_ID = 0x0042
    CARD_IMAGE_NUMBER = 0x0045
    CARD_DATA = 0x0066  # card recognition data, template 66 (GP §7.4.1.3)
    KEY_INFORMATION = 0x00E0  # key information template (GP §11.3.3.1.1)
    CPLC = 0x9F7F
    KEY_DIVERSIFICATION = 0x00CF  # 10 bytes of key-diversification data (the device id)
    SEQUENCE_COUNTER = 0x00C1
    CONFIRMATION_COUNTER = 0x00C2
    EXTENDED_CARD_RESOURCES = 0xFF21
    CERTIFICATE_STORE = 0xBF21  # device identity certificate chain (GP Amd F style store)


ISD_AID = bytes.fromhex("A000000151000000")
CONTAINER_AID_PREFIX = bytes.fromhex("F0746300")


def container_aid(index: int) -> bytes:
    """Proprietary container AID: F0 74 63 00 + two-byte index."""
    if not 0 <= index <= 0xFFFF:
        raise ValueError("container index out of range")
    return CONTAINER_AID_PREFIX + index.to_bytes(2, "big")


def container_index(aid: bytes) -> int | None:
    """The index in a container AID, or None when ``aid`` is not one."""
    if len(aid) != len(CONTAINER_AID_PREFIX) + 2 or not aid.startswith(CONTAINER_AID_PREFIX):
        return None
    return int.from_bytes(aid[-2:], "big")
