"""Domain errors to HTTP, once: each error class has one status, each error one stable code.

Every error answer is ``{"error": {"code": "...", "message": "..."}}``; request validation errors are
``invalid_request`` (422) and anything unexpected is ``internal_error`` (500) without details.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenantcard.operator.api.schemas import ErrorBody
from tenantcard.operator.services.custody import CustodyError
from tenantcard.operator.services.errors import (
    Conflict,
    DeviceBusy,
    DeviceUnavailable,
    Forbidden,
    InvalidRequest,
    NotFound,
    OperatorError,
    RateLimited,
    Unauthenticated,
)

log = logging.getLogger(__name__)

STATUS: dict[type[OperatorError], int] = {
    InvalidRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    DeviceBusy: 409,
    RateLimited: 429,
    DeviceUnavailable: 503,
}

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def status_of(exc: OperatorError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 400


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorBody, "description": "Error"} for c in codes}


COMMON_RESPONSES = _responses(400, 401, 403, 404, 409, 422, 429, 503)


def install(app: FastAPI) -> None:
    @app.exception_handler(OperatorError)
    async def _domain(_: Request, exc: OperatorError) -> JSONResponse:
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
        if isinstance(exc, Unauthenticated):
            headers = {"WWW-Authenticate": "Bearer"}
        return error_response(status_of(exc), exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return error_response(exc.status_code, code, message)

    @app.exception_handler(CustodyError)
    async def _custody(_: Request, exc: CustodyError) -> JSONResponse:
        log.error("key custody failure: %s", exc)
        return error_response(503, "custody_unavailable", "the operator's key custody is unavailable")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal_error", "internal error")
