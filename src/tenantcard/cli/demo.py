"""``tenantcard demo``: the whole scenario against real servers (what ``make demo`` runs)."""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path

import click

PIN_ENV = "TENANTCARD_DEMO_HOLDER_PIN"
_PIN = re.compile(r"^[0-9]{4,16}$")


@click.command("demo", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="PATH",
    help="Write a machine-readable trace of every step there: phase, provider, step, expected outcome, ok, "
    "detail, duration, and the servers' process ids. No secrets.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Keep the run's state there (operator and IdP databases, device store, keystores, server logs) for "
    "inspection. Must be empty or absent. Default: a temporary directory, removed after a successful run.",
)
def demo(json_path: Path | None, workdir: Path | None) -> None:
    """Run the whole scenario of the seed on this machine.

    Starts the operator (embedded SQLite), the identity provider and a device with three containers as real
    servers on loopback; the operator manufactures the device. Three providers, a bank (PKI signing), a mail
    service (TOTP behind the holder PIN) and a VPN (OCRA challenge-response), each take a container
    (phase 1: initialization), log the holder in through the identity provider and use their function
    (phase 2: access); the holder then reports the device lost, the operator revokes every container, and
    each provider's next attempt is refused (phase 3: revocation).

    Exits 0 only when every expected outcome happened; the servers are stopped at the end, also on Ctrl-C
    or failure. The holder PIN is random unless $TENANTCARD_DEMO_HOLDER_PIN gives one (4-16 digits); it is
    never printed.
    """
    from rich.console import Console

    from tenantcard.scenario.run import DemoOptions, run_demo

    pin = os.environ.get(PIN_ENV)
    if pin is None:
        pin = f"{secrets.randbelow(10**6):06d}"
    elif not _PIN.match(pin):
        raise click.ClickException(f"${PIN_ENV} must be 4 to 16 digits")
    try:
        if workdir is not None:
            if workdir.exists() and any(workdir.iterdir()):
                raise click.ClickException(f"--workdir {workdir} is not empty; give an empty or new directory")
            workdir.mkdir(parents=True, exist_ok=True)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            with json_path.open("a"):
                pass  # writable now, so the run does not end without its trace
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or 'path'}: {exc.strerror or type(exc).__name__}") from None
    code = run_demo(DemoOptions(json_path, workdir, pin), Console())
    sys.exit(code)
