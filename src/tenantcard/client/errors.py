"""Errors of the host-side client stack (processors, sessions).

Secure-channel failures are not wrapped: they surface as the crypto layer's one opaque
``tenantcard.crypto.errors.SecureChannelError``. Link failures surface as ``TransportError``.
"""

from __future__ import annotations

from tenantcard.wire.sw import SW


class ClientError(Exception):
    """Base class of the client stack's errors. Messages never carry command data, keys or PINs."""


class StatusError(ClientError):
    """The card answered a status word other than 9000 where success was required."""

    def __init__(self, sw: SW | int, context: str = "") -> None:
        self.sw = SW(sw)
        where = f"{context}: " if context else ""
        super().__init__(f"{where}card answered {self.sw.value:04X} ({self.sw.name})")


class ResponseError(ClientError):
    """The card's answer does not parse, or response chaining runs past its bounds."""


class SessionError(ClientError):
    """A session was used wrongly (no channel open) or the card's answer contradicts what was sent."""
