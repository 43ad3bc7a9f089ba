"""``tenantcard operator``: run the operator service and administer it (the admin commands work on the database
directly, with the same services as the REST API)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from tenantcard.cli.service_options import SettingsTarget, listen_address, settings_options


@contextmanager
def _errors() -> Iterator[None]:
    """Every failure of an admin command is one line on stderr and a non-zero exit."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from tenantcard.operator.services.custody import CustodyError
    from tenantcard.operator.services.errors import OperatorError

    try:
        yield
    except OperatorError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    except CustodyError as exc:
        raise click.ClickException(f"key custody: {exc}") from exc
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database: {type(exc).__name__}") from exc
    except CommandError as exc:
        raise click.ClickException(f"migration: {exc}") from exc


def _load_settings(config: Path | None, **overrides: Any) -> Any:
    from tenantcard.operator.settings import load_settings

    return load_settings(config, **overrides)


_Target = SettingsTarget[Any]
_common = settings_options(
    _load_settings,
    config_help="TOML settings file",
    db_help="Database URL (sqlite:///FILE or postgresql+psycopg://...)",
    vault_help="Master key vault (file:PATH or pkcs11:...)",
)


@contextmanager
def _services(target: _Target) -> Iterator[Any]:
    from tenantcard.operator.app import build_services

    with _errors():
        svc = build_services(target.settings())
        try:
            yield svc
        finally:
            svc.env.db.dispose()


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def _echo_job(job: Any) -> None:
    _echo_json({"job_id": job.id, "status": job.status, "total": job.total, "done": job.done, "failed": job.failed})


@click.group()
def operator() -> None:
    """Run and administer the operator service."""


@operator.command()
@_common
@click.option("--listen", default="127.0.0.1:8400", show_default=True, help="HOST:PORT to serve HTTP on")
@click.option(
    "--admin-token-file", type=click.Path(dir_okay=False, path_type=Path), help="File with the staff credential"
)
def serve(target: _Target, listen: str, admin_token_file: Path | None) -> None:
    """Serve the REST API (migrates the database first); also runs the job runner and expiry sweep."""
    import uvicorn

    from tenantcard.operator.app import create_app

    host, port = listen_address(listen)
    extra: dict[str, Any] = {}
    if admin_token_file is not None:
        try:
            extra["admin_token"] = admin_token_file.read_text().strip()
        except OSError as exc:
            raise click.ClickException(f"cannot read the admin token file: {exc.strerror}") from exc
    settings = target.settings(**extra)
    with _errors():
        app = create_app(settings)
    config_ = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config_)
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets)
        for srv in getattr(server, "servers", []):
            for sock in srv.sockets:
                h, p = sock.getsockname()[:2]
                click.echo(f"listening http://{h}:{p}", err=False)
        sys.stdout.flush()

    server.startup = startup  # type: ignore[method-assign]
    server.run()


@operator.command()
@_common
def migrate(target: _Target) -> None:
    """Bring the database schema up to date (alembic upgrade head)."""
    from tenantcard.operator.db.session import migrate as run

    settings = target.settings()
    with _errors():
        run(settings.db_url)
    click.echo("database is at the latest schema")


# --- devices ---------------------------------------------------------------------------------------------------
@operator.group()
def device() -> None:
    """Manufacture and inspect devices."""


@device.command("manufacture")
@_common
@click.option("--containers", type=click.IntRange(0, 64), default=4, show_default=True, help="Containers to create.")
@click.option(
    "--quota",
    type=click.IntRange(1, 1 << 30),
    default=64 * 1024,
    show_default=True,
    help="Memory quota of each, bytes.",
)
@click.option(
    "--reserved", type=click.IntRange(0, 1 << 30), default=0, show_default=True, help="Memory reserved for each, bytes."
)
@click.option("--serial", help="Serial number (default: derived from the device id).")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the device store")
@click.option("--device-vault", help="Key vault URI of the device's sealing key")
def manufacture(
    target: _Target,
    containers: int,
    quota: int,
    reserved: int,
    serial: str | None,
    store: Path | None,
    device_vault: str | None,
) -> None:
    """Create a device: id, identity certificate, operator keys, containers; write its store."""
    from tenantcard.operator.services.manufacturing import ContainerPlan

    if reserved > quota:
        raise click.ClickException("--reserved must not exceed --quota")
    if store is not None and store.exists():
        raise click.ClickException(f"{store} exists already")
    with _services(target) as svc:
        made = svc.manufacturing.manufacture(
            [ContainerPlan(quota, reserved) for _ in range(containers)],
            serial=serial,
            store_path=store,
            vault_uri=device_vault,
        )
    _echo_json(
        {
            "device_id": made.device.id,
            "serial": made.device.serial,
            "store": str(made.store_path),
            "vault": made.vault_uri,
        }
    )


@device.command("list")
@_common
def list_devices(target: _Target) -> None:
    """Devices with their address and status."""
    with _services(target) as svc:
        for d in svc.registry.devices(limit=1000):
            click.echo(f"{d.id}  {d.serial:<20} {d.status:<7} {d.address or '-'}")


@device.command("checkin")
@_common
@click.argument("device_id")
@click.argument("address")
def checkin(target: _Target, device_id: str, address: str) -> None:
    """Record ADDRESS for DEVICE_ID once the device there proves its identity."""
    with _services(target) as svc:
        d = svc.registry.check_in(device_id.lower(), address)
    click.echo(f"{d.id} at {d.address}")


@device.command("pointer")
@_common
@click.argument("device_id")
@click.argument("pointer")
def pointer(target: _Target, device_id: str, pointer: str) -> None:
    """Let POINTER (an opaque handle, e.g. from the identity provider) name DEVICE_ID."""
    with _services(target) as svc:
        svc.registry.add_pointer(device_id.lower(), pointer)
    click.echo("pointer added")


# --- providers and contracts -----------------------------------------------------------------------------------
@operator.group()
def provider() -> None:
    """Register providers."""


@provider.command("register")
@_common
@click.argument("name")
def register(target: _Target, name: str) -> None:
    """Register provider NAME and print its credential (shown this once)."""
    with _services(target) as svc:
        p, credential = svc.registry.register_provider(name)
    _echo_json({"provider_id": p.id, "name": p.name, "credential": credential})


@provider.command("rotate-credential")
@_common
@click.argument("provider_id")
def rotate_credential(target: _Target, provider_id: str) -> None:
    """Revoke every credential of PROVIDER_ID and print a new one (shown this once)."""
    with _services(target) as svc:
        _, credential = svc.registry.new_provider_credential(provider_id)
    _echo_json({"provider_id": provider_id, "credential": credential})


# --- identity providers ----------------------------------------------------------------------------------------
@operator.group("idp")
def idp_admin() -> None:
    """Register identity providers (their credential resolves device handles and registers pointers only)."""


@idp_admin.command("register")
@_common
@click.argument("name")
def register_idp(target: _Target, name: str) -> None:
    """Register identity provider NAME and print its credential (shown this once)."""
    with _services(target) as svc:
        i, credential = svc.idps.register(name)
    _echo_json({"idp_id": i.id, "name": i.name, "credential": credential})


@idp_admin.command("rotate-credential")
@_common
@click.argument("idp_id")
def rotate_idp_credential(target: _Target, idp_id: str) -> None:
    """Revoke every credential of IDP_ID and print a new one (shown this once)."""
    with _services(target) as svc:
        _, credential = svc.idps.new_credential(idp_id)
    _echo_json({"idp_id": idp_id, "credential": credential})


@idp_admin.command("list")
@_common
def list_idps(target: _Target) -> None:
    """List identity providers (never their credentials)."""
    with _services(target) as svc:
        _echo_json([{"idp_id": i.id, "name": i.name, "created_at": i.created_at} for i in svc.idps.all()])


@operator.group()
def contract() -> None:
    """Create and end contracts."""


@contract.command("create")
@_common
@click.option("--provider", "provider_id", required=True, help="The provider's id (from 'operator provider register').")
@click.option("--option", type=click.Choice(["A", "B"]), required=True, help="A: container per request; B: fixed index")
@click.option("--index", "container_index", type=click.IntRange(0, 0xFFFF), help="Fixed container index (option B)")
@click.option(
    "--quota",
    type=click.IntRange(1, 1 << 30),
    default=64 * 1024,
    show_default=True,
    help="Container memory quota, bytes.",
)
@click.option(
    "--reserved", type=click.IntRange(0, 1 << 30), default=0, show_default=True, help="Memory reserved for it, bytes."
)
@click.option("--consent/--no-consent", default=False, show_default=True, help="Holder consent required")
def create_contract(
    target: _Target,
    provider_id: str,
    option: str,
    container_index: int | None,
    quota: int,
    reserved: int,
    consent: bool,
) -> None:
    """Create a contract for a provider."""
    from tenantcard.operator.db.models import ContractOption

    with _services(target) as svc:
        c = svc.registry.create_contract(
            provider_id,
            ContractOption(option),
            quota,
            container_index=container_index,
            reserved=reserved,
            consent_required=consent,
        )
    _echo_json(
        {"contract_id": c.id, "provider_id": c.provider_id, "option": c.option, "container_index": c.container_index}
    )


@contract.command("end")
@_common
@click.argument("contract_id")
@click.option("--wait/--no-wait", default=False, help="Run the revocation job here until it finishes")
def end_contract(target: _Target, contract_id: str, wait: bool) -> None:
    """End a contract: a job revokes every container placed under it (the serving operator runs it)."""
    with _services(target) as svc:
        job = svc.revocation.end_contract(contract_id)
        if wait:
            job = _run_job(svc, job.id)
    _echo_job(job)


def _run_job(svc: Any, job_id: str) -> Any:
    import time

    while True:
        job = svc.jobs.get(job_id)
        if job.status != "running":
            return job
        if not svc.jobs.run_due(svc.handle_item):
            time.sleep(svc.env.settings.job_poll_seconds)


# --- holders ---------------------------------------------------------------------------------------------------
@operator.group("holder")
def holder_admin() -> None:
    """Create holders and link their devices."""


@holder_admin.command("create")
@_common
@click.argument("name")
def create_holder(target: _Target, name: str) -> None:
    """Create holder NAME and print their credential (shown this once)."""
    with _services(target) as svc:
        h, credential = svc.registry.create_holder(name)
    _echo_json({"holder_id": h.id, "name": h.name, "credential": credential})


@holder_admin.command("link")
@_common
@click.argument("holder_id")
@click.argument("device_id")
def link(target: _Target, holder_id: str, device_id: str) -> None:
    """Link DEVICE_ID to HOLDER_ID."""
    with _services(target) as svc:
        svc.registry.link_device(holder_id, device_id.lower())
    click.echo("linked")


# --- audit and keys --------------------------------------------------------------------------------------------
@operator.group()
def audit() -> None:
    """Read and verify the audit log."""


@audit.command("verify")
@_common
def verify(target: _Target) -> None:
    """Check the hash chain; exits 1 and names the first bad entry if anything was edited or removed."""
    with _services(target) as svc, svc.env.db.transaction() as s:
        report = svc.env.audit.verify(s)
    if not report.ok:
        click.echo(f"audit log TAMPERED: {report.problem} (first bad entry {report.first_bad_seq})", err=True)
        sys.exit(1)
    click.echo(f"audit log intact: {report.entries} entries")


@audit.command("show")
@_common
@click.option("--after", type=click.IntRange(0), default=0, help="Show entries after this sequence number.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, help="Show at most this many entries.")
def show(target: _Target, after: int, limit: int) -> None:
    """Print audit entries."""
    with _services(target) as svc, svc.env.db.transaction() as s:
        records = svc.env.audit.read(s, after=after, limit=limit)
    for r in records:
        click.echo(
            f"{r.seq:>6} {r.at} {r.actor:<28} {r.action:<32} {r.subject} {json.dumps(r.details, sort_keys=True)}"
        )


@operator.group()
def keys() -> None:
    """Rotate the operator's ISD keys."""


@keys.command("rotate")
@_common
@click.option("--device", "device_id", help="Rotate one device")
@click.option("--fleet", is_flag=True, help="Rotate every device (a job)")
@click.option("--wait/--no-wait", default=True, help="With --fleet: run the job here until it finishes")
def rotate(target: _Target, device_id: str | None, fleet: bool, wait: bool) -> None:
    """Replace the operator key set of one device (--device) or of the fleet (--fleet)."""
    if bool(device_id) == fleet:
        raise click.ClickException("give exactly one of --device ID or --fleet")
    with _services(target) as svc:
        if device_id:
            kvn = svc.revocation.rotate_device(device_id.lower())
            click.echo(f"{device_id.lower()}: operator keys rotated to KVN {kvn:#04x}")
            return
        job = svc.revocation.rotate_fleet()
        if wait:
            job = _run_job(svc, job.id)
    _echo_job(job)


@operator.command("ca")
@_common
def ca(target: _Target) -> None:
    """Print the operator CA certificate (PEM)."""
    with _services(target) as svc:
        click.echo(svc.manufacturing.ca_pem(), nl=False)
