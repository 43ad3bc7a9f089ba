"""``tenantcard idp``: run the OpenID Connect identity provider and administer its clients and keys."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tenantcard.cli.service_options import SettingsTarget, listen_address, settings_options
from tenantcard.idp.app import open_idp_vault
from tenantcard.idp.db.engine import make_engine, upgrade
from tenantcard.idp.db.repositories import IdpRepository
from tenantcard.idp.domain import Disclosure
from tenantcard.idp.errors import IdpError
from tenantcard.idp.oidc.clients import ClientService
from tenantcard.idp.oidc.keys import KeyService
from tenantcard.idp.settings import IdpSettings, load_settings
from tenantcard.keyvault import KeyVault

console = Console()


def _vault(settings: IdpSettings) -> KeyVault:
    try:
        return open_idp_vault(settings)
    except IdpError as exc:
        raise click.ClickException(str(exc)) from exc


def _repository(settings: IdpSettings, vault: KeyVault | None = None) -> IdpRepository:
    engine = make_engine(settings.db_url)
    try:
        upgrade(engine, vault or _vault(settings))
    except IdpError as exc:
        raise click.ClickException(str(exc)) from exc
    return IdpRepository(engine)


def _keys(settings: IdpSettings) -> KeyService:
    vault = _vault(settings)
    return KeyService(_repository(settings, vault), vault, time.time, settings.id_token_lifetime_seconds)


_Target = SettingsTarget[IdpSettings]
_common = settings_options(
    load_settings,
    config_help="TOML file with the settings (see docs/oidc.md).",
    db_help="SQLAlchemy URL of the IdP database (default sqlite:///idp.db).",
    vault_help="Key vault sealing the signing keys and pairwise secret: file:PATH or "
    "pkcs11:module=...;token=...;key=... (PIN in TENANTCARD_PKCS11_PIN). Default: file:<database>.master.key "
    "beside a SQLite database.",
)


@click.group()
def idp() -> None:
    """The OpenID Connect identity provider: authenticates a device at its address, answers pairwise subjects."""


@idp.command()
@_common
@click.option("--listen", default="127.0.0.1:8600", show_default=True, help="HOST:PORT to serve on.")
@click.option("--issuer", help="Issuer URL (iss) as relying parties reach it, e.g. https://idp.example.")
@click.option("--operator", "operator_url", help="Operator service URL (device directory: handles, status).")
@click.option(
    "--operator-ca",
    "operator_ca_pem",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Operator root CA certificate (PEM) that device certificates chain to.",
)
@click.option(
    "--operator-token",
    help="The IdP credential from `tenantcard operator idp register` (or TENANTCARD_IDP_OPERATOR_TOKEN).",
)
def serve(
    target: _Target,
    listen: str,
    issuer: str | None,
    operator_url: str | None,
    operator_ca_pem: Path | None,
    operator_token: str | None,
) -> None:
    """Serve discovery, JWKS, /authorize, /token and /userinfo over HTTP."""
    import uvicorn

    from tenantcard.idp.app import create_app

    host, port = listen_address(listen)
    settings = target.settings(
        issuer=issuer or f"http://{host}:{port}",
        operator_url=operator_url,
        operator_ca_pem=operator_ca_pem,
        operator_token=operator_token,
    )
    try:
        app = create_app(settings)
    except IdpError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"identity provider [bold]{settings.issuer}[/] listening on {host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level="info")


@idp.group()
def client() -> None:
    """Register and list relying parties (the service providers)."""


@client.command("add")
@_common
@click.option("--name", required=True, help="Display name of the provider.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True, help="Exact redirect URI (repeatable).")
@click.option(
    "--disclosure",
    type=click.Choice([d.value for d in Disclosure]),
    default=Disclosure.PAIRWISE.value,
    show_default=True,
    help="pairwise: sub + device_address; device_id: also the device id; anonymous: a fresh sub every login.",
)
@click.option("--sector", help="Sector identifier (needed when redirect URIs span several hosts).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def client_add(
    target: _Target,
    name: str,
    redirect_uris: tuple[str, ...],
    disclosure: str,
    sector: str | None,
    as_json: bool,
) -> None:
    """Register a client. The secret is printed once and only its hash is kept."""
    repository = _repository(target.settings())
    service = ClientService(repository, time.time, secrets.token_bytes)
    try:
        new = service.register(name, list(redirect_uris), Disclosure(disclosure), sector)
    except IdpError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"client_id": new.client.client_id, "client_secret": new.client_secret}))
        return
    console.print(f"client_id:     [bold]{new.client.client_id}[/]")
    console.print(f"client_secret: [bold]{new.client_secret}[/]  (shown once: store it now)")


@client.command("list")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def client_list(target: _Target, as_json: bool) -> None:
    """List registered clients (never their secrets)."""
    clients = _repository(target.settings()).list_clients()
    if as_json:
        rows = [
            {
                "client_id": c.client_id,
                "name": c.name,
                "sector_identifier": c.sector_identifier,
                "disclosure": c.disclosure.value,
                "redirect_uris": list(c.redirect_uris),
            }
            for c in clients
        ]
        click.echo(json.dumps(rows))
        return
    table = Table("client_id", "name", "sector", "disclosure", "redirect URIs")
    for column in table.columns:
        column.overflow = "fold"
    for c in clients:
        table.add_row(c.client_id, c.name, c.sector_identifier, c.disclosure.value, "\n".join(c.redirect_uris))
    console.print(table)


@idp.group()
def keys() -> None:
    """ID-token signing keys (ES256)."""


@keys.command("rotate")
@_common
def keys_rotate(target: _Target) -> None:
    """Start signing with a new key; the old one stays in the JWKS until its tokens have expired."""
    service = _keys(target.settings())
    service.ensure_key()
    console.print(f"new signing key: [bold]{service.rotate()}[/]")


@keys.command("list")
@_common
def keys_list(target: _Target) -> None:
    """List signing keys: active, or retired and published until when."""
    service = _keys(target.settings())
    table = Table("kid", "created", "state")
    for column in table.columns:
        column.overflow = "fold"
    now = time.time()
    for k in service.all_keys():
        if k.retired_at is None:
            state = "active"
        elif k.publish_until is not None and k.publish_until > now:
            state = f"retired, published until {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(k.publish_until))}"
        else:
            state = "retired"
        table.add_row(k.kid, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(k.created_at)), state)
    console.print(table)
