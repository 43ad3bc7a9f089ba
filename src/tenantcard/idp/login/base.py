"""The login-method plug-in interface: the authorization flow asks a method to authenticate the subject of a
request and gets back who it is, or a ``LoginError``. New methods (OTP, PKI) plug in without touching the flow."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class LoginFailure(enum.Enum):
    """Why a login failed. The authorization endpoint turns these into OAuth error codes."""

    BAD_HINT = "bad_hint"  # the login hint is missing or malformed
    UNKNOWN_HANDLE = "unknown_handle"  # the directory knows no device by that handle
    UNREACHABLE = "unreachable"  # the device did not answer at its address
    AUTHENTICATION_FAILED = "authentication_failed"  # wrong signature, bad chain, or a protocol error
    NOT_ACTIVE = "not_active"  # the operator reports the device lost or retired
    DIRECTORY_UNAVAILABLE = "directory_unavailable"  # the operator could not be asked


class LoginError(Exception):
    """A login attempt failed. ``reason`` is stable; the message is for logs and never carries secrets."""

    def __init__(self, reason: LoginFailure, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LoginContext:
    """What a login method may look at: the client asking and the request's login parameters."""

    client_id: str
    login_hint: str | None


@dataclass(frozen=True)
class DeviceProof:
    """The device's answer to the login's challenge: shown to the operator when the IdP registers a pointer."""

    challenge: bytes
    signature: bytes


@dataclass(frozen=True)
class AuthenticatedSubject:
    """Who logged in. ``device_id`` (hex) keys the pairwise subject; ``device_address`` goes into the token;
    ``proof`` is set by methods that had the device sign a challenge."""

    device_id: str
    device_address: str
    amr: tuple[str, ...]
    auth_time: int
    proof: DeviceProof | None = None


class LoginMethod(Protocol):
    """A way to authenticate the subject of an authorization request."""

    @property
    def name(self) -> str: ...

    def authenticate(self, context: LoginContext) -> AuthenticatedSubject:
        """Authenticate, or raise ``LoginError``. May block (network I/O): callers run it off the event loop."""
        ...
