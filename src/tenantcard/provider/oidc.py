"""Provider side of the access phase: send the holder to the identity provider and verify what comes back.

``OidcClient`` builds the authorization request (code flow, PKCE S256, ``state``, ``nonce``; RFC 6749 §4.1,
RFC 7636, OIDC Core §3.1.2), exchanges the code at the token endpoint (client_secret_basic), and verifies the ID
token (OIDC Core §3.1.3.7): ES256 signature by a key of the issuer's JWKS (looked up by ``kid``, the set fetched
again once on an unknown ``kid``), issuer, audience, expiry, issued-at and nonce. The result names the pairwise
``sub`` and the device address, where the provider then opens its container session.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

ALGORITHM = "ES256"


class TokenFailure(enum.Enum):
    DISCOVERY = "discovery"  # the issuer's metadata or JWKS could not be fetched or is inconsistent
    STATE_MISMATCH = "state_mismatch"  # the redirect's state is not the one this request sent (CSRF)
    OAUTH_ERROR = "oauth_error"  # the IdP answered an OAuth error (see ``TokenError.oauth_error``)
    MALFORMED = "malformed"  # not a JWS compact token, or not JSON claims
    UNKNOWN_KEY = "unknown_key"  # no key with that kid, even after fetching the JWKS again
    BAD_SIGNATURE = "bad_signature"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    WRONG_NONCE = "wrong_nonce"
    INVALID_CLAIM = "invalid_claim"  # a required claim is missing or ill-formed


class TokenError(Exception):
    """The login did not produce a verified ID token. ``reason`` is stable; messages never carry secrets."""

    def __init__(self, reason: TokenFailure, message: str, oauth_error: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.oauth_error = oauth_error


class AuthorizationRequest(NamedTuple):
    """What ``authorization_url`` produced; keep it (server-side) until the redirect comes back."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class IdToken:
    """A verified ID token."""

    sub: str
    device_address: str
    device_id: str | None
    issuer: str
    audience: str
    issued_at: int
    expires_at: int
    auth_time: int | None
    amr: tuple[str, ...]
    claims: dict[str, Any] = field(repr=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256_challenge(code_verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return _b64(hashlib.sha256(code_verifier.encode("ascii")).digest())


class OidcClient:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        leeway: int = 30,
        timeout: float = 10.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.redirect_uri = redirect_uri
        self._http = http or httpx.Client(timeout=timeout)
        self._clock = clock
        self._random = random_bytes
        self._leeway = leeway
        self._metadata: dict[str, Any] | None = None
        self._jwks: KeySet | None = None

    # -- discovery and keys
    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError(TokenFailure.DISCOVERY, f"cannot fetch {url}") from exc
        if not isinstance(body, dict):
            raise TokenError(TokenFailure.DISCOVERY, f"{url} is not a JSON object")
        return body

    def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (OpenID Connect Discovery 1.0 §4), fetched once."""
        if self._metadata is None:
            doc = self._get_json(self.issuer + "/.well-known/openid-configuration")
            if doc.get("issuer") != self.issuer:  # Discovery §4.3: must be identical
                raise TokenError(TokenFailure.DISCOVERY, "discovery document names another issuer")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(key), str):
                    raise TokenError(TokenFailure.DISCOVERY, f"discovery document lacks {key}")
            self._metadata = doc
        return self._metadata

    def _keys(self, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            try:
                self._jwks = KeySet.import_key_set(self._get_json(self.metadata()["jwks_uri"]))  # type: ignore[arg-type]
            except JoseError as exc:
                raise TokenError(TokenFailure.DISCOVERY, "the issuer's JWKS holds no usable key") from exc
        return self._jwks

    # -- step 1: the authorization request
    def authorization_url(self, login_hint: str | None = None) -> AuthorizationRequest:
        state = _b64(self._random(24))
        nonce = _b64(self._random(24))
        verifier = _b64(self._random(48))  # 64 characters of [A-Za-z0-9-_] (RFC 7636 §4.1)
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid",
            "state": state,
            "nonce": nonce,
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if login_hint is not None:
            params["login_hint"] = login_hint
        url = self.metadata()["authorization_endpoint"] + "?" + urlencode(params)
        return AuthorizationRequest(url, state, nonce, verifier)

    # -- step 2: the redirect back, the code exchange and the ID token
    def handle_redirect(self, redirect_url: str, request: AuthorizationRequest) -> IdToken:
        """Parse the redirect the IdP sent to ``redirect_uri`` (code or error), then ``exchange``."""
        query = parse_qs(urlsplit(redirect_url).query)
        state = query.get("state", [""])[0]
        if "error" in query:
            self._check_state(state, request)
            error = query["error"][0]
            raise TokenError(TokenFailure.OAUTH_ERROR, f"the identity provider answered {error}", oauth_error=error)
        code = query.get("code", [""])[0]
        if not code:
            raise TokenError(TokenFailure.MALFORMED, "the redirect carries neither code nor error")
        return self.exchange(code, state, request)

    @staticmethod
    def _check_state(state: str, request: AuthorizationRequest) -> None:
        if not hmac.compare_digest(state.encode(), request.state.encode()):
            raise TokenError(TokenFailure.STATE_MISMATCH, "state does not match the authorization request")

    def exchange(self, code: str, state: str, request: AuthorizationRequest) -> IdToken:
        """Check ``state``, redeem ``code`` (with the PKCE verifier) and verify the ID token."""
        self._check_state(state, request)
        try:
            response = self._http.post(
                self.metadata()["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": request.code_verifier,
                },
                auth=(self.client_id, self._secret),
            )
        except httpx.HTTPError as exc:
            raise TokenError(TokenFailure.DISCOVERY, "the token endpoint did not answer") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise TokenError(TokenFailure.MALFORMED, "the token endpoint answered something that is not JSON") from exc
        if not isinstance(body, dict):
            raise TokenError(TokenFailure.MALFORMED, "the token endpoint answered an unexpected document")
        if response.status_code != 200:
            error = str(body.get("error", "unknown"))
            raise TokenError(TokenFailure.OAUTH_ERROR, f"the token endpoint answered {error}", oauth_error=error)
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise TokenError(TokenFailure.MALFORMED, "the token response carries no id_token")
        return self.verify_id_token(id_token, request.nonce)

    def verify_id_token(self, token: str, nonce: str) -> IdToken:
        """OIDC Core §3.1.3.7 checks; raises ``TokenError`` with the failing reason."""
        try:
            try:
                decoded = jwt.decode(token, self._keys(), algorithms=[ALGORITHM])
            except InvalidKeyIdError:
                decoded = jwt.decode(token, self._keys(refresh=True), algorithms=[ALGORITHM])
        except InvalidKeyIdError as exc:
            raise TokenError(TokenFailure.UNKNOWN_KEY, "no issuer key has that kid") from exc
        except BadSignatureError as exc:
            raise TokenError(TokenFailure.BAD_SIGNATURE, "the signature does not verify") from exc
        except (JoseError, ValueError, TypeError) as exc:
            raise TokenError(TokenFailure.MALFORMED, "not a well-formed ES256 JWT") from exc
        claims = decoded.claims
        now = int(self._clock())
        checks: list[tuple[str, TokenFailure, JWTClaimsRegistry]] = [
            ("iss", TokenFailure.WRONG_ISSUER, JWTClaimsRegistry(iss={"essential": True, "value": self.issuer})),
            ("aud", TokenFailure.WRONG_AUDIENCE, JWTClaimsRegistry(aud={"essential": True, "value": self.client_id})),
            (
                "exp",
                TokenFailure.EXPIRED,
                JWTClaimsRegistry(now=now, leeway=self._leeway, exp={"essential": True}, iat={"essential": True}),
            ),
            ("sub", TokenFailure.INVALID_CLAIM, JWTClaimsRegistry(sub={"essential": True})),
        ]
        for name, failure, registry in checks:
            try:
                registry.validate({k: v for k, v in claims.items() if k in registry.options})
            except ExpiredTokenError as exc:
                raise TokenError(TokenFailure.EXPIRED, "the ID token has expired") from exc
            except (InvalidClaimError, MissingClaimError) as exc:
                raise TokenError(failure, f"claim {name} is wrong or missing") from exc
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise TokenError(TokenFailure.WRONG_AUDIENCE, "several audiences and azp is not this client")
        got_nonce = claims.get("nonce")
        if not isinstance(got_nonce, str) or not hmac.compare_digest(got_nonce.encode(), nonce.encode()):
            raise TokenError(TokenFailure.WRONG_NONCE, "nonce does not match the authorization request")
        address = claims.get("device_address")
        if not isinstance(address, str) or not address:
            raise TokenError(TokenFailure.INVALID_CLAIM, "the ID token carries no device_address")
        device_id = claims.get("device_id")
        amr = claims.get("amr", [])
        auth_time = claims.get("auth_time")
        return IdToken(
            sub=str(claims["sub"]),
            device_address=address,
            device_id=device_id if isinstance(device_id, str) else None,
            issuer=self.issuer,
            audience=self.client_id,
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
            auth_time=int(auth_time) if isinstance(auth_time, int) else None,
            amr=tuple(str(a) for a in amr) if isinstance(amr, list) else (),
            claims=dict(claims),
        )

    def close(self) -> None:
        self._http.close()
