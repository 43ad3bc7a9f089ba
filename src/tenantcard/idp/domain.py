"""Domain types of the identity provider, shared by its services and repositories."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Disclosure(enum.Enum):
    """What a client learns about the device besides its network address (a client attribute the operator
    contract drives)."""

    PAIRWISE = "pairwise"  # a pairwise ``sub`` (OIDC Core §8.1) and ``device_address``
    DEVICE_ID = "device_id"  # as PAIRWISE, plus the ``device_id`` claim
    ANONYMOUS = "anonymous"  # a fresh ``sub`` on every login and ``device_address``: nothing links two logins


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    sector_identifier: str
    disclosure: Disclosure
    secret_hash: bytes
    secret_salt: bytes
    created_at: int


@dataclass(frozen=True)
class SigningKey:
    """A signing key as stored: the public JWK, and the private JWK sealed by the key vault."""

    kid: str
    public_jwk: dict[str, str]
    private_sealed: bytes
    created_at: int
    retired_at: int | None
    publish_until: int | None


@dataclass(frozen=True)
class AuthorizationCode:
    """What an authorization code stands for. The code itself is never stored, only its hash."""

    code_hash: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    login_method: str
    device_id: str
    device_address: str
    amr: tuple[str, ...]
    auth_time: int
    expires_at: int
    used_at: int | None


@dataclass(frozen=True)
class AccessToken:
    token_hash: str
    code_hash: str
    client_id: str
    claims: dict[str, object]
    expires_at: int
    revoked: bool
