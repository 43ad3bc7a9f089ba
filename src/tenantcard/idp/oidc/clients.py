"""Registered clients (the service providers): registration, secret hashing and verification."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tenantcard.idp.clock import Clock, RandomBytes
from tenantcard.idp.db.repositories import IdpRepository
from tenantcard.idp.domain import Disclosure, RegisteredClient
from tenantcard.idp.errors import ClientRegistrationError

# scrypt parameters for client secrets (RFC 7914 §2). Secrets are 256-bit random, so a moderate cost suffices.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def _scrypt(salt: bytes) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)


def verify_secret(client: RegisteredClient, secret: str) -> bool:
    """Constant-time check of a presented secret against the stored scrypt hash."""
    try:
        _scrypt(client.secret_salt).verify(secret.encode(), client.secret_hash)
    except (InvalidKey, UnicodeEncodeError):
        return False
    return True


def _check_redirect_uri(uri: str) -> str:
    """RFC 6749 §3.1.2: absolute URI, no fragment; http(s) only (OIDC Core §3.1.2.1)."""
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise ClientRegistrationError("redirect URI does not parse") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClientRegistrationError("redirect URI must be an absolute http(s) URI")
    if parts.fragment or "#" in uri:
        raise ClientRegistrationError("redirect URI must not contain a fragment")
    if any(c.isspace() for c in uri) or not uri.isascii():
        raise ClientRegistrationError("redirect URI must be ASCII without spaces")
    return parts.hostname


@dataclass(frozen=True)
class NewClient:
    """The outcome of a registration. ``client_secret`` exists only here: it is shown once, then only its hash
    remains."""

    client: RegisteredClient
    client_secret: str


class ClientService:
    def __init__(self, repository: IdpRepository, clock: Clock, random_bytes: RandomBytes) -> None:
        self._repo = repository
        self._clock = clock
        self._random = random_bytes

    def register(
        self,
        name: str,
        redirect_uris: list[str],
        disclosure: Disclosure = Disclosure.PAIRWISE,
        sector_identifier: str | None = None,
    ) -> NewClient:
        if not name or len(name) > 200:
            raise ClientRegistrationError("client name must be 1..200 characters")
        if not redirect_uris:
            raise ClientRegistrationError("at least one redirect URI is required")
        hosts = {_check_redirect_uri(uri) for uri in redirect_uris}
        if sector_identifier is None:
            # OIDC Core §8.1: with one host among the redirect URIs, that host is the sector identifier.
            if len(hosts) != 1:
                raise ClientRegistrationError("redirect URIs on several hosts need an explicit sector identifier")
            sector_identifier = hosts.pop()
        secret = base64.urlsafe_b64encode(self._random(32)).rstrip(b"=").decode()
        salt = self._random(16)
        client = RegisteredClient(
            client_id="tc-" + self._random(12).hex(),
            name=name,
            redirect_uris=tuple(redirect_uris),
            sector_identifier=sector_identifier,
            disclosure=disclosure,
            secret_hash=_scrypt(salt).derive(secret.encode()),
            secret_salt=salt,
            created_at=int(self._clock()),
        )
        self._repo.add_client(client)
        return NewClient(client, secret)

    def get(self, client_id: str) -> RegisteredClient | None:
        return self._repo.get_client(client_id)

    def list(self) -> list[RegisteredClient]:
        return self._repo.list_clients()
