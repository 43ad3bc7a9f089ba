"""Errors of the crypto layer.

``SecureChannelError`` is deliberately opaque: every MAC, cryptogram, padding, counter or state failure of a
secure channel raises it with the same message, so that neither a log line nor a status word tells an attacker
which check failed (GP Amd D §6.2.5: the card answers every such failure alike and ends the session).
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of the crypto layer's errors. Messages never carry key material."""


class SecureChannelError(CryptoError):
    """A secure-channel check failed (which one is not said). The session that raised it is closed."""

    def __init__(self, message: str = "secure channel failure") -> None:
        super().__init__(message)


class KeyDataError(CryptoError):
    """Malformed key data (PUT KEY, STORE DATA key blocks) or a key check value that does not match."""
