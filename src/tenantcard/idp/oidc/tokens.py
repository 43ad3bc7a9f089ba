"""ID tokens (OpenID Connect Core 1.0 §2) signed with ES256 through joserfc, and the subject claims they carry."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from joserfc import jwt

from tenantcard.idp.clock import Clock, RandomBytes
from tenantcard.idp.domain import AuthorizationCode, Disclosure, RegisteredClient
from tenantcard.idp.oidc.keys import ALGORITHM, KeyService
from tenantcard.idp.oidc.pairwise import pairwise_subject


def half_hash(value: str) -> str:
    """``at_hash`` for ES256 (OIDC Core §3.1.3.6): left half of SHA-256, base64url without padding."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


class TokenIssuer:
    def __init__(
        self,
        issuer: str,
        keys: KeyService,
        pairwise_secret: bytes,
        id_token_lifetime: int,
        clock: Clock,
        random_bytes: RandomBytes,
    ) -> None:
        self.issuer = issuer
        self._keys = keys
        self._secret = pairwise_secret
        self._lifetime = id_token_lifetime
        self._clock = clock
        self._random = random_bytes

    def pairwise(self, client: RegisteredClient, device_id: str) -> str | None:
        """The client's pairwise ``sub`` for the device; None for an anonymous client (no stable subject)."""
        if client.disclosure is Disclosure.ANONYMOUS:
            return None
        return pairwise_subject(self._secret, client.sector_identifier, device_id)

    def subject_claims(self, client: RegisteredClient, code: AuthorizationCode) -> dict[str, Any]:
        """``sub`` and the device claims this client may see (its ``disclosure`` attribute)."""
        if client.disclosure is Disclosure.ANONYMOUS:
            # A transient subject: nothing links two logins of the same device for this client.
            sub = base64.urlsafe_b64encode(self._random(32)).rstrip(b"=").decode()
        else:
            sub = pairwise_subject(self._secret, client.sector_identifier, code.device_id)
        claims: dict[str, Any] = {"sub": sub, "device_address": code.device_address}
        if client.disclosure is Disclosure.DEVICE_ID:
            claims["device_id"] = code.device_id
        return claims

    def id_token(
        self, client: RegisteredClient, code: AuthorizationCode, subject: dict[str, Any], access_token: str | None
    ) -> str:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": now,
            "exp": now + self._lifetime,
            "auth_time": code.auth_time,
            "amr": list(code.amr),
            **subject,
        }
        if code.nonce is not None:
            claims["nonce"] = code.nonce
        if access_token:
            claims["at_hash"] = half_hash(access_token)
        kid, key = self._keys.signing_key()
        return jwt.encode({"alg": ALGORITHM, "kid": kid}, claims, key, algorithms=[ALGORITHM])
