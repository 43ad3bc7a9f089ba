"""The operator service: ``create_app(settings)`` builds everything from the settings it is given."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tenantcard import __version__
from tenantcard.operator.api import errors
from tenantcard.operator.api.auth import Authenticator
from tenantcard.operator.api.routes import build_router
from tenantcard.operator.db.session import Database, migrate
from tenantcard.operator.services.core import Env
from tenantcard.operator.services.credentials import FailureLimiter
from tenantcard.operator.services.custody import Custody
from tenantcard.operator.services.facade import OperatorServices
from tenantcard.operator.services.gateway import DeviceGateway
from tenantcard.operator.settings import OperatorSettings


def build_services(
    settings: OperatorSettings,
    *,
    gateway: DeviceGateway | None = None,
    clock: Callable[[], float] = time.time,
    random: Callable[[int], bytes] | None = None,
) -> OperatorServices:
    """The services over the settings' database and vault (the CLI's admin commands use this too)."""
    import os

    from tenantcard.operator.services.tcp_gateway import TcpDeviceGateway

    if settings.migrate_on_start:
        migrate(settings.db_url)
    env = Env(
        settings=settings,
        db=Database(settings.db_url),
        custody=Custody.open(settings.vault_uri),
        gateway=gateway or TcpDeviceGateway(timeout=settings.device_timeout_seconds),
        clock=clock,
        random=random or os.urandom,
    )
    return OperatorServices(env)


def create_app(
    settings: OperatorSettings,
    *,
    services: OperatorServices | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    svc = services or build_services(settings, clock=clock)
    limiter = FailureLimiter(settings.auth_failure_limit, settings.auth_failure_window_seconds, clock)
    auth = Authenticator(settings, svc.credentials, limiter)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner = svc.runner() if settings.run_workers else None
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()

    app = FastAPI(
        title="tenantcard operator",
        version=__version__,
        description="Fleet registry, contracts, authorization placement, revocation and audit.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(build_router(svc, auth))

    @app.get("/healthz", tags=["public"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.state.services = svc
    app.state.limiter = limiter
    return app
