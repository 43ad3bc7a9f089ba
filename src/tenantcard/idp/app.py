"""The identity provider's FastAPI application, assembled from its settings in ``create_app(settings)``."""

from __future__ import annotations

import logging

from cryptography import x509
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenantcard import __version__
from tenantcard.idp.clock import Clock, RandomBytes, system_clock, system_random
from tenantcard.idp.db.engine import make_engine, upgrade
from tenantcard.idp.db.repositories import IdpRepository
from tenantcard.idp.errors import IdpError
from tenantcard.idp.login.base import LoginMethod
from tenantcard.idp.login.device import Connector, DeviceLoginMethod, tcp_connector
from tenantcard.idp.login.directory import (
    DeviceDirectory,
    DirectoryError,
    HttpDeviceDirectory,
    PointerRegistry,
    fetch_operator_ca,
)
from tenantcard.idp.oidc.clients import ClientService
from tenantcard.idp.oidc.keys import KeyService
from tenantcard.idp.oidc.routes import router
from tenantcard.idp.oidc.server import IdpServer
from tenantcard.idp.oidc.service import OidcService
from tenantcard.idp.oidc.tokens import TokenIssuer
from tenantcard.idp.sealing import VaultRequired, secret_aad
from tenantcard.idp.settings import IdpSettings, resolve_vault_uri
from tenantcard.keyvault import KeyVault, KeyVaultError, open_vault

PAIRWISE_SECRET = "pairwise-subject-key"

# Authlib's code grant logs each issued token at DEBUG; tokens are secrets, so that logger stays above DEBUG.
logging.getLogger("authlib.oauth2.rfc6749.grants.authorization_code").setLevel(logging.INFO)


class ConfigurationError(IdpError):
    """The settings do not describe a runnable identity provider."""


def open_idp_vault(settings: IdpSettings) -> KeyVault:
    """The key vault whose master key seals the signing keys and the pairwise secret."""
    try:
        return open_vault(resolve_vault_uri(settings))
    except (KeyVaultError, ValueError) as exc:
        raise ConfigurationError(f"key vault unavailable: {exc}") from exc


def open_database(settings: IdpSettings, vault: KeyVault) -> Engine:
    """The engine of the settings' database, upgraded to the newest schema when ``migrate_on_start``."""
    engine = make_engine(settings.db_url)
    if settings.migrate_on_start:
        try:
            upgrade(engine, vault)
        except VaultRequired as exc:
            raise ConfigurationError(str(exc)) from exc
    return engine


def _pairwise_secret(repository: IdpRepository, vault: KeyVault, random_bytes: RandomBytes) -> bytes:
    aad = secret_aad(PAIRWISE_SECRET)
    try:
        sealed = repository.get_or_create_secret(PAIRWISE_SECRET, vault.seal(random_bytes(32), aad))
    except IntegrityError:  # another process created it first
        sealed = repository.get_or_create_secret(PAIRWISE_SECRET, vault.seal(random_bytes(32), aad))
    return vault.unseal(sealed, aad)


def _unseal_at_start(repository: IdpRepository, keys: KeyService, random_bytes: RandomBytes, vault: KeyVault) -> bytes:
    """Open the active signing key and the pairwise secret now, so a wrong vault stops the start, not a login."""
    try:
        keys.ensure_key()
        keys.signing_key()
        return _pairwise_secret(repository, vault, random_bytes)
    except KeyVaultError as exc:
        raise ConfigurationError(
            "the key vault does not open this database's sealed keys (is it the vault the database was "
            f"created with?): {exc}"
        ) from exc


def load_root_ca(settings: IdpSettings) -> x509.Certificate:
    """The operator CA: from ``operator_ca_pem``, else fetched once from the operator (``GET /v1/ca``)."""
    try:
        if settings.operator_ca_pem is not None:
            pem = settings.operator_ca_pem.read_bytes()
        elif settings.operator_url is not None:
            pem = fetch_operator_ca(settings.operator_url, settings.device_timeout_seconds)
        else:
            raise ConfigurationError("operator_ca_pem or operator_url is required (the operator CA certificate)")
        return x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError, DirectoryError) as exc:
        raise ConfigurationError("the operator CA certificate could not be loaded") from exc


def create_app(
    settings: IdpSettings,
    *,
    directory: DeviceDirectory | None = None,
    root_ca: x509.Certificate | None = None,
    login_methods: list[LoginMethod] | None = None,
    connector: Connector | None = None,
    clock: Clock = system_clock,
    random_bytes: RandomBytes = system_random,
) -> FastAPI:
    """Build the identity provider. ``directory``, ``root_ca`` and ``login_methods`` default to what the
    settings describe (the operator's HTTP directory, the CA PEM file, the device login method)."""
    vault = open_idp_vault(settings)
    engine = open_database(settings, vault)
    repository = IdpRepository(engine)
    keys = KeyService(repository, vault, clock, settings.id_token_lifetime_seconds)
    pairwise_secret = _unseal_at_start(repository, keys, random_bytes, vault)
    issuer = settings.issuer.rstrip("/")
    tokens = TokenIssuer(
        issuer,
        keys,
        pairwise_secret,
        settings.id_token_lifetime_seconds,
        clock,
        random_bytes,
    )
    server = IdpServer(
        repository,
        tokens,
        code_lifetime=settings.code_lifetime_seconds,
        access_token_lifetime=settings.access_token_lifetime_seconds,
        clock=clock,
        random_bytes=random_bytes,
    )
    if login_methods is None:
        if directory is None:
            if settings.operator_url is None:
                raise ConfigurationError("operator_url is required for the device login method")
            token = settings.operator_token.get_secret_value() if settings.operator_token else None
            directory = HttpDeviceDirectory(settings.operator_url, token, timeout=settings.device_timeout_seconds)
        login_methods = [
            DeviceLoginMethod(
                directory,
                root_ca if root_ca is not None else load_root_ca(settings),
                connector=connector or tcp_connector(settings.device_timeout_seconds),
                clock=clock,
                random_bytes=random_bytes,
                allow_direct_addresses=settings.allow_direct_addresses,
            )
        ]
    pointers = directory if isinstance(directory, PointerRegistry) else None
    service = OidcService(server, keys, issuer, login_methods, settings.default_login_method, pointers)

    app = FastAPI(
        title="tenantcard identity provider",
        version=__version__,
        description="OpenID Connect provider whose login method authenticates a secure device at its address.",
    )
    app.state.oidc = service
    app.state.keys = keys
    app.state.clients = ClientService(repository, clock, random_bytes)
    app.state.engine = engine
    app.include_router(router)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return JSONResponse({"error": codes.get(exc.status_code, "bad_request")}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid_request"}, status_code=400)

    return app
