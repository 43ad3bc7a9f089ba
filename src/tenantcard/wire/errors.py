"""Errors of the wire layer: bytes that do not parse."""


class WireError(ValueError):
    """Malformed APDU, TLV or frame. The message names the defect, never the bytes' secret content."""
