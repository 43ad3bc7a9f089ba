"""NIST SP 800-73-4 PIV numbers and data-object encodings, shared by the card's PIV personality and the
provider's set-up client. Bytes only: no I/O, no cryptography.

The provider-side set-up commands (CLA 80/84, INS 56-5F) are tenantcard's own: docs/protocol.md "PIV
personality".
"""

from __future__ import annotations

from enum import IntEnum

from tenantcard.wire.tlv import Tlv, encode_all

PIV_AID = bytes.fromhex("A000000308000010000100")  # SP 800-73-4 Part 1 §2.2: RID A000000308, PIX 0000100001 00
PIV_RID = PIV_AID[:5]


class PivIns(IntEnum):
    """Instructions: ISO ones of the holder face, proprietary ones (CLA 80/84) of the provider face."""

    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x47
    GENERAL_AUTHENTICATE = 0x87
    SELECT = 0xA4
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCB
    PUT_DATA = 0xDB
    # provider face
    SETUP = 0x56
    GENERATE_KEY = 0x57
    PUT_OBJECT = 0x58
    STATUS = 0x5A
    DELETE_KEY = 0x5B
    REMOVE = 0x5F


MANAGEMENT_INS = frozenset(
    {PivIns.SETUP, PivIns.GENERATE_KEY, PivIns.PUT_OBJECT, PivIns.STATUS, PivIns.DELETE_KEY, PivIns.REMOVE}
)


class KeyRef(IntEnum):
    """SP 800-73-4 Part 1 §5.1 table 4 key references."""

    PIN = 0x80
    PUK = 0x81
    AUTHENTICATION = 0x9A
    MANAGEMENT = 0x9B
    SIGNATURE = 0x9C
    KEY_MANAGEMENT = 0x9D
    CARD_AUTHENTICATION = 0x9E


KEY_SLOTS = (KeyRef.AUTHENTICATION, KeyRef.SIGNATURE, KeyRef.KEY_MANAGEMENT, KeyRef.CARD_AUTHENTICATION)


class Algorithm(IntEnum):
    """SP 800-78-4 table 6-2 cryptographic algorithm identifiers (the subset offered)."""

    ECC_P256 = 0x11
    ECC_P384 = 0x14


class DataTag(IntEnum):
    """SP 800-73-4 Part 1 §3.1, Appendix A: BER-TLV tags of the PIV data objects (GET DATA tag list 5C)."""

    CARD_CAPABILITY_CONTAINER = 0x5FC107
    CHUID = 0x5FC102
    CERT_9A = 0x5FC105
    FINGERPRINTS = 0x5FC103
    SECURITY_OBJECT = 0x5FC106
    FACIAL_IMAGE = 0x5FC108
    PRINTED_INFORMATION = 0x5FC109
    CERT_9C = 0x5FC10A
    CERT_9D = 0x5FC10B
    CERT_9E = 0x5FC101
    KEY_HISTORY = 0x5FC10C
    DISCOVERY = 0x7E


CERT_TAGS: dict[KeyRef, DataTag] = {
    KeyRef.AUTHENTICATION: DataTag.CERT_9A,
    KeyRef.SIGNATURE: DataTag.CERT_9C,
    KeyRef.KEY_MANAGEMENT: DataTag.CERT_9D,
    KeyRef.CARD_AUTHENTICATION: DataTag.CERT_9E,
}

# SP 800-73-4 Part 1 table 1: objects read only after PIN verification; everything else is "always read".
PIN_PROTECTED = frozenset({DataTag.FINGERPRINTS, DataTag.FACIAL_IMAGE, DataTag.PRINTED_INFORMATION, 0x5FC121})


# Setup template tags (provider face, INS 56).
T_PIN, T_PUK, T_PIN_TRIES, T_PUK_TRIES, T_GUID, T_FASCN, T_EXPIRY = 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86


PAD = 0xFF


def pad_pin(pin: bytes) -> bytes:
    """SP 800-73-4 Part 2 §2.4.3: PIN of 6-8 ASCII digits, padded to 8 bytes with FF."""
    return pin + bytes([PAD]) * (8 - len(pin))


def valid_pin_block(block: bytes) -> bool:
    """8 bytes: 6-8 digits, then FF padding only."""
    if len(block) != 8:
        return False
    digits = block.rstrip(bytes([PAD]))
    return 6 <= len(digits) <= 8 and all(0x30 <= b <= 0x39 for b in digits)


def valid_puk_block(block: bytes) -> bool:
    """SP 800-73-4 Part 2 §2.4.3: the PUK is 8 bytes, any value."""
    return len(block) == 8


def tag_bytes(tag: int) -> bytes:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def certificate_object(der: bytes) -> bytes:
    """SP 800-73-4 Part 1 Appendix A table 15: 70 certificate, 71 CertInfo (00 = uncompressed), FE LRC."""
    return encode_all([Tlv(0x70, der), Tlv(0x71, b"\x00"), Tlv(0xFE, b"")])


def chuid_object(fascn: bytes, guid: bytes, expiry: bytes) -> bytes:
    """SP 800-73-4 Part 1 Appendix A table 9 (TIG SP 800-73-4 CHUID): FASC-N, GUID, expiry, empty signature."""
    return encode_all([Tlv(0x30, fascn), Tlv(0x34, guid), Tlv(0x35, expiry), Tlv(0x3E, b""), Tlv(0xFE, b"")])


def ccc_object(card_id: bytes) -> bytes:
    """SP 800-73-4 Part 1 Appendix A table 8: card capability container."""
    return encode_all(
        [
            Tlv(0xF0, bytes.fromhex("A000000116FF02") + card_id),  # card identifier: GSC-RID, manufacturer, id
            Tlv(0xF1, b"\x21"),  # capability container version
            Tlv(0xF2, b"\x21"),  # capability grammar version
            Tlv(0xF3, b""),
            Tlv(0xF4, b"\x00"),
            Tlv(0xF5, b"\x10"),
            Tlv(0xF6, b""),
            Tlv(0xF7, b""),
            Tlv(0xFA, b""),
            Tlv(0xFB, b""),
            Tlv(0xFC, b""),
            Tlv(0xFD, b""),
            Tlv(0xFE, b""),
        ]
    )


def discovery_object() -> bytes:
    """SP 800-73-4 Part 1 §3.3.2: PIV AID and PIN usage policy (40 00: PIV application PIN only)."""
    return Tlv.of(0x7E, Tlv(0x4F, PIV_AID), Tlv(0x5F2F, b"\x40\x00")).to_bytes()


def application_property_template() -> bytes:
    """SP 800-73-4 Part 2 §3.1.1 table 3: answer to SELECT."""
    return Tlv.of(
        0x61,
        Tlv(0x4F, PIV_AID[5:]),  # PIX of the AID, with version
        Tlv.of(0x79, Tlv(0x4F, PIV_RID)),  # coexistent tag allocation authority: NIST
        Tlv(0x50, b"tenantcard PIV"),
        Tlv.of(
            0xAC, Tlv(0x80, bytes([Algorithm.ECC_P256])), Tlv(0x80, bytes([Algorithm.ECC_P384])), Tlv(0x06, b"\x00")
        ),
    ).to_bytes()


def fascn_none() -> bytes:
    """The FASC-N most non-federal PIV-compatible cards carry (agency code 9999, all other fields zero)."""
    return bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")
