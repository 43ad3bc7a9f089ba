"""HTTP routes of the identity provider: translate HTTP to ``OidcService`` calls and back, nothing more.

OAuth endpoints answer RFC 6749 §5.2 / OIDC error codes; the others a stable JSON ``{"error": code}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tenantcard.idp.oidc.server import HttpRequest, OAuthResponse
from tenantcard.idp.oidc.service import AUTHORIZE_PARAMETERS, HtmlPage, OidcService

MAX_BODY = 16 * 1024
FORM = "application/x-www-form-urlencoded"


def _form_body(names: tuple[str, ...]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of an url-encoded form of string fields ``names``."""
    properties = {name: {"type": "string"} for name in names}
    return {
        "requestBody": {"required": True, "content": {FORM: {"schema": {"type": "object", "properties": properties}}}}
    }


_AUTHORIZE_FORM = _form_body(AUTHORIZE_PARAMETERS)
_TOKEN_FORM = _form_body(("grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret"))
_OAUTH_ERROR = {"description": "OAuth error (RFC 6749 §5.2)", "content": {"application/json": {}}}


def _service(request: Request) -> OidcService:
    service: OidcService = request.app.state.oidc
    return service


def _http(request: Request, form: tuple[tuple[str, str], ...] = ()) -> HttpRequest:
    # The URI Authlib sees is built on the configured issuer, not on the Host header a client sent.
    service = _service(request)
    uri = service.issuer + request.url.path
    if request.url.query:
        uri += "?" + request.url.query
    return HttpRequest(
        method=request.method,
        uri=uri,
        headers=dict(request.headers),
        query=tuple(request.query_params.multi_items()),
        form=form,
    )


async def _form(request: Request) -> tuple[tuple[str, str], ...] | None:
    """The url-encoded body, or None when it is not one (wrong type, too large, not UTF-8)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    try:
        return tuple(parse_qsl(body.decode("utf-8", "strict"), keep_blank_values=True, strict_parsing=False))
    except (UnicodeDecodeError, ValueError):
        return None


def _to_response(result: OAuthResponse | HtmlPage) -> Response:
    if isinstance(result, HtmlPage):
        return HTMLResponse(result.body, status_code=result.status, headers={"Cache-Control": "no-store"})
    headers = {k: v for k, v in result.headers if k.lower() not in ("content-type", "location")}
    location = next((v for k, v in result.headers if k.lower() == "location"), None)
    if location is not None and 300 <= result.status < 400:
        return RedirectResponse(location, status_code=result.status, headers={**headers, "Cache-Control": "no-store"})
    body = result.body if isinstance(result.body, dict) else {"error": "server_error"}
    return JSONResponse(body, status_code=result.status, headers={**headers, "Cache-Control": "no-store"})


async def _form_call(request: Request, endpoint: Callable[[HttpRequest], OAuthResponse | HtmlPage]) -> Response:
    """``endpoint`` (a service method) on the request with its url-encoded form; RFC 6749 ``invalid_request``
    when the body is not one."""
    form = await _form(request)
    if form is None:
        return JSONResponse(
            {"error": "invalid_request", "error_description": "Expected an application/x-www-form-urlencoded body."},
            status_code=400,
            headers={"Cache-Control": "no-store"},
        )
    return _to_response(await run_in_threadpool(endpoint, _http(request, form)))


router = APIRouter()


@router.get("/.well-known/openid-configuration", tags=["discovery"], summary="OpenID Provider metadata")
def discovery(request: Request) -> dict[str, Any]:
    return _service(request).discovery()


@router.get("/jwks.json", tags=["discovery"], summary="Signing keys (JWKS), old keys kept until their tokens expire")
def jwks(request: Request) -> JSONResponse:
    return JSONResponse(_service(request).jwks(), headers={"Cache-Control": "public, max-age=60"})


@router.get(
    "/authorize",
    tags=["oauth"],
    summary="Authorization endpoint (code flow, PKCE S256); with login_hint it authenticates the device",
    response_class=Response,
    responses={302: {"description": "Redirect to the client with a code or an error"}, 400: _OAUTH_ERROR},
)
async def authorize_get(
    request: Request,
    response_type: Annotated[str | None, Query()] = None,
    client_id: Annotated[str | None, Query()] = None,
    redirect_uri: Annotated[str | None, Query()] = None,
    scope: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query()] = None,
    nonce: Annotated[str | None, Query()] = None,
    code_challenge: Annotated[str | None, Query()] = None,
    code_challenge_method: Annotated[str | None, Query()] = None,
    login_hint: Annotated[str | None, Query(description="tcp://host:port, or a device handle")] = None,
    login_method: Annotated[str | None, Query(description="Login method plug-in (default: device)")] = None,
    prompt: Annotated[str | None, Query()] = None,
) -> Response:
    result = await run_in_threadpool(_service(request).authorize, _http(request))
    return _to_response(result)


@router.post(
    "/authorize",
    tags=["oauth"],
    summary="Authorization endpoint, form post (the login page posts the hint here)",
    response_class=Response,
    responses={302: {"description": "Redirect to the client with a code or an error"}, 400: _OAUTH_ERROR},
    openapi_extra=_AUTHORIZE_FORM,
)
async def authorize_post(request: Request) -> Response:
    return await _form_call(request, _service(request).authorize)


@router.post(
    "/token",
    tags=["oauth"],
    summary="Token endpoint (authorization_code; client_secret_basic or client_secret_post)",
    response_class=Response,
    responses={
        200: {"description": "Tokens", "content": {"application/json": {}}},
        400: _OAUTH_ERROR,
        401: _OAUTH_ERROR,
    },
    openapi_extra=_TOKEN_FORM,
)
async def token(request: Request) -> Response:
    return await _form_call(request, _service(request).token)


@router.get(
    "/userinfo",
    tags=["oidc"],
    summary="UserInfo endpoint (bearer access token)",
    responses={401: {"description": "invalid_token (RFC 6750 §3.1)"}},
)
async def userinfo(request: Request, authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
    scheme, _, value = (authorization or "").partition(" ")
    claims = None
    if scheme.lower() == "bearer" and value:
        claims = await run_in_threadpool(_service(request).userinfo, value.strip())
    if claims is None:
        return JSONResponse(
            {"error": "invalid_token"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"', "Cache-Control": "no-store"},
        )
    return JSONResponse(claims, headers={"Cache-Control": "no-store"})


@router.get("/healthz", tags=["ops"], summary="Liveness")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
