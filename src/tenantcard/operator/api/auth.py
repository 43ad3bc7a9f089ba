"""Bearer authentication of the three kinds of caller, with the per-source credential failure limit."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request

from tenantcard.operator.services.credentials import Credentials, FailureLimiter, Principal
from tenantcard.operator.services.errors import Forbidden, Unauthenticated
from tenantcard.operator.settings import OperatorSettings


class Authenticator:
    def __init__(self, settings: OperatorSettings, credentials: Credentials, limiter: FailureLimiter) -> None:
        self._admin = settings.admin_token.get_secret_value() if settings.admin_token else None
        self._credentials = credentials
        self.limiter = limiter

    @staticmethod
    def source(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def principal(self, request: Request) -> Principal:
        source = self.source(request)
        self.limiter.check(source)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise Unauthenticated("missing bearer credential")
        token = token.strip()
        try:
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("malformed Authorization header")
            if self._admin is not None and hmac.compare_digest(token.encode(), self._admin.encode()):
                return Principal("admin", "admin")
            return self._credentials.authenticate(token)
        except Unauthenticated:
            self.limiter.failure(source)
            raise

    def require(self, *kinds: str) -> Callable[[Request], Principal]:
        def dependency(request: Request) -> Principal:
            principal = self.principal(request)
            if principal.kind not in kinds:
                raise Forbidden(f"this endpoint is for {' or '.join(kinds)} credentials")
            return principal

        return dependency
