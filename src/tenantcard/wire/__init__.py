"""Bytes only: APDUs, BER-TLV, status words and GlobalPlatform numbers. No I/O, no cryptography."""

from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.sw import SW, ApduError
from tenantcard.wire.tlv import Tlv

__all__ = ["SW", "ApduError", "CommandApdu", "ResponseApdu", "Tlv", "WireError"]
