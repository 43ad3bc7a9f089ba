"""The OpenID Connect service: the authorization flow with pluggable login, the token and userinfo endpoints,
discovery and JWKS. Pure logic over ``IdpServer``; the routes only translate HTTP."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidClientError, InvalidRequestError, OAuth2Error

from tenantcard.idp.login.base import AuthenticatedSubject, LoginContext, LoginError, LoginFailure, LoginMethod
from tenantcard.idp.login.directory import DirectoryError, PointerRegistry
from tenantcard.idp.oidc.keys import ALGORITHM, KeyService
from tenantcard.idp.oidc.server import HttpRequest, IdpServer, LoggedIn, OAuthResponse

log = logging.getLogger(__name__)

MAX_PARAMETER = 2048
AUTHORIZE_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "prompt",
    "login_method",
)


class TemporarilyUnavailableError(OAuth2Error):  # type: ignore[misc]
    """RFC 6749 §4.1.2.1 ``temporarily_unavailable``."""

    error = "temporarily_unavailable"


@dataclass(frozen=True)
class HtmlPage:
    status: int
    body: str


def _vschar(value: str) -> bool:
    """RFC 6749 Appendix A: VSCHAR = %x20-7E."""
    return len(value) <= MAX_PARAMETER and all(0x20 <= ord(c) <= 0x7E for c in value)


class OidcService:
    def __init__(
        self,
        server: IdpServer,
        keys: KeyService,
        issuer: str,
        login_methods: list[LoginMethod],
        default_login_method: str,
        pointers: PointerRegistry | None = None,
    ) -> None:
        if not login_methods:
            raise ValueError("at least one login method is needed")
        self._server = server
        self._keys = keys
        self._pointers = pointers
        self.issuer = issuer.rstrip("/")
        self._methods = {m.name: m for m in login_methods}
        self._default = default_login_method if default_login_method in self._methods else login_methods[0].name

    # -- discovery (OpenID Connect Discovery 1.0 §3) and JWKS
    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks.json",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "amr",
                "azp",
                "at_hash",
                "device_address",
                "device_id",
            ],
            "login_methods_supported": sorted(self._methods),
        }

    def jwks(self) -> dict[str, Any]:
        return self._keys.published()

    # -- authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2)
    def authorize(self, http: HttpRequest) -> OAuthResponse | HtmlPage:
        params = http.form if http.method == "POST" else http.query
        if not all(_vschar(k) and _vschar(v) for k, v in params):
            return self._server.error_response(InvalidRequestError("Parameters must be printable ASCII."))
        try:
            return self._authorize(http, dict(params))
        except OAuth2Error as error:
            return self._server.error_response(error)
        except ValueError:
            # Authlib refuses to build an error whose description would echo forbidden characters.
            return self._server.error_response(InvalidRequestError("Malformed authorization request."))

    def _authorize(self, http: HttpRequest, params: dict[str, str]) -> OAuthResponse | HtmlPage:
        try:
            grant = self._server.get_consent_grant(http)
        except OAuth2Error as error:
            return self._server.error_response(error)
        request = grant.request
        state = request.payload.state
        method_name = params.get("login_method") or self._default
        method = self._methods.get(method_name)
        if method is None:
            unknown = InvalidRequestError("Unknown login_method.", redirect_uri=grant.redirect_uri, state=state)
            return self._server.error_response(unknown)
        hint = params.get("login_hint")
        if not hint:
            return self._login_page(params)
        client_id: str = request.payload.client_id
        # A pairwise sub this client already holds names its device (the device still has to prove itself).
        known_device = self._server.device_for_subject(client_id, hint)
        try:
            subject = method.authenticate(LoginContext(client_id=client_id, login_hint=known_device or hint))
        except LoginError as exc:
            log.info("login refused (%s): %s", exc.reason.value, exc)
            return self._server.error_response(self._login_error(exc, grant.redirect_uri, state))
        self._register_pointer(client_id, subject)
        response: OAuthResponse = self._server.create_authorization_response(
            request, grant_user=LoggedIn(subject, method.name), grant=grant
        )
        return response

    def _register_pointer(self, client_id: str, subject: AuthenticatedSubject) -> None:
        """First login of a device for a sector: tell the operator that the client's ``sub`` names the device,
        so the provider can ask for a container by it (``idp_pointer``), showing the device's answer to this
        login's challenge. Best effort: a failure only logs."""
        if self._pointers is None or subject.proof is None:
            return
        device_id = subject.device_id
        sub = self._server.pairwise_subject(client_id, device_id)
        if sub is None or self._server.device_for_subject(client_id, sub) is not None:
            return
        try:
            self._pointers.register_pointer(device_id, sub, subject.proof)
        except DirectoryError as exc:
            log.warning("could not record the pointer at the operator: %s", exc)

    @staticmethod
    def _login_error(exc: LoginError, redirect_uri: str, state: str | None) -> OAuth2Error:
        descriptions = {
            LoginFailure.BAD_HINT: "The login_hint does not name a device.",
            LoginFailure.UNKNOWN_HANDLE: "No device is registered under that handle.",
            LoginFailure.UNREACHABLE: "The device could not be reached.",
            LoginFailure.AUTHENTICATION_FAILED: "The device did not prove its identity.",
            LoginFailure.NOT_ACTIVE: "The device is not active.",
            LoginFailure.DIRECTORY_UNAVAILABLE: "The device directory is unavailable.",
        }
        description = descriptions[exc.reason]
        if exc.reason is LoginFailure.DIRECTORY_UNAVAILABLE:
            return TemporarilyUnavailableError(description, redirect_uri=redirect_uri, state=state)
        if exc.reason is LoginFailure.BAD_HINT:
            return InvalidRequestError(description, redirect_uri=redirect_uri, state=state)
        return AccessDeniedError(description, redirect_uri=redirect_uri, state=state)

    def _login_page(self, params: dict[str, str]) -> HtmlPage:
        """No hint: a tiny page that asks for it and posts the same request back (no JavaScript needed)."""
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
            if k in AUTHORIZE_PARAMETERS and k != "login_hint"
        )
        body = (
            "<!doctype html><html><head><meta charset=utf-8><title>Device login</title></head><body>"
            "<h1>Log in with your device</h1>"
            f'<form method="post" action="{html.escape(self.issuer)}/authorize">{hidden}'
            '<label>Device address or handle <input name="login_hint" required '
            'placeholder="tcp://host:port"></label> <button type="submit">Log in</button></form></body></html>'
        )
        return HtmlPage(200, body)

    # -- token endpoint (RFC 6749 §4.1.3, §5)
    def token(self, http: HttpRequest) -> OAuthResponse:
        auth = next((v for k, v in http.headers.items() if k.lower() == "authorization"), "")
        if not auth.isascii():
            return self._server.error_response(InvalidClientError(status_code=401))
        try:
            response: OAuthResponse = self._server.create_token_response(http)
        except OAuth2Error as error:
            return self._server.error_response(error)
        except (ValueError, UnicodeError):
            return self._server.error_response(InvalidRequestError("Malformed token request."))
        return response

    # -- userinfo endpoint (OIDC Core §5.3)
    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        if not access_token or len(access_token) > 256:
            return None
        return self._server.userinfo(access_token)
