"""``tenantcard holder``: the device holder's commands, over the operator's REST API with the holder's credential."""

from __future__ import annotations

from typing import Any

import click

from tenantcard.cli.config import configurable

CREDENTIAL_ENV = "TENANTCARD_HOLDER_CREDENTIAL"


@configurable("TENANTCARD_HOLDER")
@click.group()
@click.option(
    "--operator",
    "operator_url",
    envvar="TENANTCARD_OPERATOR_URL",
    default="http://127.0.0.1:8400",
    show_default=True,
    help="Operator base URL (or $TENANTCARD_OPERATOR_URL).",
)
@click.option("--credential", envvar=CREDENTIAL_ENV, help=f"Holder credential (or ${CREDENTIAL_ENV})")
@click.pass_context
def holder(ctx: click.Context, operator_url: str, credential: str | None) -> None:
    """Act as the device holder: see who holds your containers, consent, report loss."""
    ctx.obj = (operator_url, credential)


def _call(ctx: click.Context, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the operator's REST API with the holder's credential; a failure is one line on stderr."""
    from tenantcard.provider.errors import OperatorApiError
    from tenantcard.provider.sdk import OperatorApi

    url, credential = ctx.obj
    if not credential:
        raise click.ClickException(f"give --credential or set {CREDENTIAL_ENV}")
    try:
        with OperatorApi(url, credential) as api:
            return api.call(method, path, body)
    except OperatorApiError as exc:
        raise click.ClickException(str(exc)) from None


@holder.command("devices")
@click.pass_context
def devices(ctx: click.Context) -> None:
    """My devices, their containers and the provider holding each."""
    for d in _call(ctx, "GET", "/holder/devices"):
        click.echo(f"{d['id']}  {d['serial']}  ({d['status']})")
        for c in d["containers"]:
            who = c["provider_name"] or "-"
            click.echo(f"  {c['aid']}  {c['state']:<10} {who}")


@holder.command("requests")
@click.pass_context
def requests(ctx: click.Context) -> None:
    """Requests waiting for my consent."""
    pending = _call(ctx, "GET", "/holder/requests")
    if not pending:
        click.echo("no pending requests")
    for r in pending:
        click.echo(f"{r['id']}  {r['provider_name'] or r['provider_id']} asks for a container on {r['device_id']}")


def _decision(verb: str) -> None:
    """``holder approve`` / ``holder refuse``: answer a consent request with its one-time code."""

    @holder.command(verb, help=f"{verb.capitalize()} REQUEST_ID with its one-time code.")
    @click.argument("request_id")
    @click.option("--code", prompt=True, hide_input=True, help="The one-time code the provider showed you")
    @click.pass_context
    def decide(ctx: click.Context, request_id: str, code: str) -> None:
        r = _call(ctx, "POST", f"/holder/requests/{request_id}/{verb}", {"code": code})
        click.echo(f"{r['id']}: {r['status']}")


_decision("approve")
_decision("refuse")


@holder.command("lost")
@click.argument("device_id")
@click.confirmation_option(prompt="Every container on this device will be revoked. Continue?")
@click.pass_context
def lost(ctx: click.Context, device_id: str) -> None:
    """Report DEVICE_ID lost or stolen: it is marked lost and every container on it is revoked."""
    job = _call(ctx, "POST", f"/holder/devices/{device_id}/lost")
    click.echo(f"device marked lost; revocation job {job['id']}: {job['done']}/{job['total']} done")
