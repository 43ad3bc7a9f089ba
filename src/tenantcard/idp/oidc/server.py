"""The OAuth 2.0 / OpenID Connect authorization server, built on Authlib's framework-agnostic grant machinery.

Authlib's ``AuthorizationServer`` + ``AuthorizationCodeGrant`` (RFC 6749 §4.1), ``CodeChallenge`` (RFC 7636,
narrowed here to S256 and made mandatory for every client) and ``OpenIDCode`` (OIDC Core §3.1) do the
protocol checks; this module supplies the storage, the client model and a thin adapter from a plain HTTP request
description to Authlib's ``OAuth2Request`` (Authlib's Starlette integration is client-side only).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import JsonRequest, OAuth2Payload
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from sqlalchemy.exc import IntegrityError

from tenantcard.idp.clock import Clock, RandomBytes
from tenantcard.idp.db.repositories import IdpRepository
from tenantcard.idp.domain import AccessToken, AuthorizationCode, Disclosure, RegisteredClient
from tenantcard.idp.login.base import AuthenticatedSubject
from tenantcard.idp.oidc.clients import verify_secret
from tenantcard.idp.oidc.tokens import TokenIssuer

SCOPES = ["openid"]
TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def secret_hash(value: str) -> str:
    """Codes and access tokens are stored by SHA-256 only (they are 256-bit random, so no salt is needed)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


# -- the thin HTTP adapter ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """A framework-neutral HTTP request: what the routes hand to the server."""

    method: str
    uri: str
    headers: Mapping[str, str]
    query: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OAuthResponse:
    status: int
    body: dict[str, Any] | str
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, items: tuple[tuple[str, str], ...]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, http: HttpRequest) -> None:
        # Authlib reads "Authorization" by its canonical spelling.
        headers = {k.title(): v for k, v in http.headers.items()}
        super().__init__(http.method, http.uri, headers=headers)
        self._args = dict(http.query)
        self._form = dict(http.form)
        self.payload = _Payload(http.form if http.method == "POST" else http.query)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


# -- models Authlib's grants consume ------------------------------------------------------------------------


class OAuthClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, client: RegisteredClient) -> None:
        self.client = client

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # OIDC Core §3.1.2.1: redirect_uri is REQUIRED in every request

    def get_allowed_scope(self, scope: str | None) -> str | None:
        requested = (scope or "").split()
        return "openid" if "openid" in requested else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.client.redirect_uris  # exact string match (RFC 6749 §3.1.2.3)

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(self.client, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in TOKEN_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class _CodeModel(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, code: AuthorizationCode) -> None:
        self.code = code
        self.code_challenge = code.code_challenge
        self.code_challenge_method = code.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.code.redirect_uri

    def get_scope(self) -> str:
        return self.code.scope

    def get_nonce(self) -> str | None:
        return self.code.nonce

    def get_auth_time(self) -> int:
        return self.code.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return list(self.code.amr)


@dataclass(frozen=True)
class LoggedIn:
    """The resource owner handed to Authlib: who logged in, and with which method."""

    subject: AuthenticatedSubject
    method: str


# -- grants and extensions -----------------------------------------------------------------------------------


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    server: IdpServer

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: OAuthClient) -> str:
        # Same rule as Authlib's, with a fixed description: the raw URI must not reach an error message.
        uri = request.payload.redirect_uri
        if not uri:
            raise InvalidRequestError("Missing 'redirect_uri' in request.", state=request.payload.state)
        if not client.check_redirect_uri(uri):
            raise InvalidRequestError("The redirect_uri is not registered for this client.")
        return str(uri)

    def generate_authorization_code(self) -> str:
        return self.server.new_secret()

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        self.server.store_code(code, request)

    def query_authorization_code(self, code: str, client: OAuthClient) -> _CodeModel | None:
        return self.server.redeem_code(code, client)

    def delete_authorization_code(self, authorization_code: _CodeModel) -> None:
        """Nothing to do: ``redeem_code`` already marked the code used, atomically."""

    def authenticate_user(self, authorization_code: _CodeModel) -> AuthorizationCode:
        return authorization_code.code


class _S256Only(CodeChallenge):  # type: ignore[misc]
    """RFC 7636 with S256 only, and required from every client (confidential ones included)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: _CodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE (S256) is required.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class _OpenIdCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, server: IdpServer) -> None:
        super().__init__(require_nonce=True)
        self._server = server

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return self._server.nonce_seen(request.payload.client_id, nonce)

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        return self._server.id_token_for(token, request)


# -- the server ---------------------------------------------------------------------------------------------


class IdpServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self,
        repository: IdpRepository,
        issuer: TokenIssuer,
        *,
        code_lifetime: int,
        access_token_lifetime: int,
        clock: Clock,
        random_bytes: RandomBytes,
    ) -> None:
        super().__init__(scopes_supported=SCOPES)
        self._repo = repository
        self._issuer = issuer
        self._code_lifetime = code_lifetime
        self._access_lifetime = access_token_lifetime
        self._clock = clock
        self._random = random_bytes
        self.register_grant(_CodeGrant, [_S256Only(required=True), _OpenIdCode(self)])
        self.register_token_generator("default", self._generate_token)

    # Authlib's framework hooks
    def query_client(self, client_id: str) -> OAuthClient | None:
        if not isinstance(client_id, str) or len(client_id) > 64:
            return None
        client = self._repo.get_client(client_id)
        return OAuthClient(client) if client is not None else None

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal system here."""

    def create_oauth2_request(self, request: HttpRequest | OAuth2Request) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return _Request(request)

    def create_json_request(self, request: HttpRequest) -> JsonRequest:
        json_request = JsonRequest(request.method, request.uri, dict(request.headers))
        return json_request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> OAuthResponse:
        return OAuthResponse(int(status), body if isinstance(body, dict | str) else dict(body), tuple(headers))

    # storage used by the grant
    def new_secret(self) -> str:
        return base64.urlsafe_b64encode(self._random(32)).rstrip(b"=").decode()

    def store_code(self, code: str, request: OAuth2Request) -> None:
        now = int(self._clock())
        self._repo.purge(codes_before=now - self._access_lifetime, tokens_before=now)
        logged_in: LoggedIn = request.user
        data = request.payload.data
        self._repo.add_code(
            AuthorizationCode(
                code_hash=secret_hash(code),
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce"),
                code_challenge=data["code_challenge"],
                code_challenge_method=data.get("code_challenge_method", "S256"),
                login_method=logged_in.method,
                device_id=logged_in.subject.device_id,
                device_address=logged_in.subject.device_address,
                amr=logged_in.subject.amr,
                auth_time=logged_in.subject.auth_time,
                expires_at=now + self._code_lifetime,
                used_at=None,
            )
        )

    def redeem_code(self, code: str, client: OAuthClient) -> _CodeModel | None:
        """Single use (RFC 6749 §4.1.2): the first redemption claims the code atomically; a second one is
        refused and revokes every token issued from the code."""
        if not isinstance(code, str) or not 0 < len(code) <= 256:
            return None
        stored = self._repo.get_code(secret_hash(code))
        if stored is None or stored.client_id != client.get_client_id():
            return None
        now = int(self._clock())
        if stored.used_at is not None or not self._repo.claim_code(stored.code_hash, now):
            self._repo.revoke_tokens_of_code(stored.code_hash)
            return None
        if stored.expires_at <= now:
            return None
        return _CodeModel(stored)

    def device_for_subject(self, client_id: str, sub: str) -> str | None:
        """The device a pairwise ``sub`` of this client stands for, if the IdP issued it."""
        client = self._repo.get_client(client_id)
        if client is None or client.disclosure is Disclosure.ANONYMOUS or len(sub) > 64:
            return None
        return self._repo.device_for_subject(client.sector_identifier, sub)

    def pairwise_subject(self, client_id: str, device_id: str) -> str | None:
        client = self._repo.get_client(client_id)
        return self._issuer.pairwise(client, device_id) if client is not None else None

    def nonce_seen(self, client_id: str, nonce: str) -> bool:
        return self._repo.nonce_seen(client_id, nonce)

    def _generate_token(
        self,
        grant_type: str,
        client: OAuthClient,
        user: AuthorizationCode | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "access_token": self.new_secret(),
            "expires_in": expires_in or self._access_lifetime,
            "scope": scope or "openid",
        }

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        code: AuthorizationCode = request.authorization_code.code
        client: OAuthClient = request.client
        # The subject claims are fixed here, once, so the ID token and userinfo agree (anonymous subjects too).
        request.subject_claims = self._issuer.subject_claims(client.client, code)
        if client.client.disclosure is not Disclosure.ANONYMOUS:
            with contextlib.suppress(IntegrityError):  # remembered concurrently by another token request
                self._repo.remember_subject(
                    client.client.sector_identifier, request.subject_claims["sub"], code.device_id, int(self._clock())
                )
        self._repo.add_token(
            AccessToken(
                token_hash=secret_hash(token["access_token"]),
                code_hash=code.code_hash,
                client_id=client.get_client_id(),
                claims=request.subject_claims,
                expires_at=int(self._clock()) + int(token["expires_in"]),
                revoked=False,
            )
        )

    def id_token_for(self, token: dict[str, Any], request: OAuth2Request) -> str:
        client: OAuthClient = request.client
        code: AuthorizationCode = request.authorization_code.code
        return self._issuer.id_token(client.client, code, request.subject_claims, token.get("access_token"))

    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        """The claims of a live access token (OIDC Core §5.3), or None when unknown, expired or revoked."""
        stored = self._repo.get_token(secret_hash(access_token))
        if stored is None or stored.revoked or stored.expires_at <= int(self._clock()):
            return None
        return dict(stored.claims)

    def error_response(self, error: OAuth2Error) -> OAuthResponse:
        result: OAuthResponse = self.handle_response(*error())
        return result
