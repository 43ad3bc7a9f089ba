"""The ``tenantcard`` command: one sub-command group per role, each in its own module of this package."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

import click

from tenantcard import __version__

# name -> (module, attribute, one-line help). Modules are imported only when their command runs.
ROLES: dict[str, tuple[str, str, str]] = {
    "demo": ("tenantcard.cli.demo", "demo", "Run the whole scenario: operator, IdP, device and three providers."),
    "device": ("tenantcard.cli.device", "device", "Create and serve a software device (the secure element)."),
    "operator": ("tenantcard.cli.operator", "operator", "Run and administer the operator service."),
    "provider": ("tenantcard.cli.provider", "provider", "Take over and use a container, as a service provider."),
    "idp": ("tenantcard.cli.idp", "idp", "Run the OpenID Connect identity provider."),
    "holder": ("tenantcard.cli.holder", "holder", "Act as the device holder: consent, list, report loss."),
}


class RoleGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _, _) in ROLES.items() if importlib.util.find_spec(module) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in ROLES:
            return None
        module, attr, _ = ROLES[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=RoleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tenantcard")
def cli() -> None:
    """tenantcard: one secure device, several isolated containers rented by different service providers."""


class _LogDirHandler(logging.FileHandler):
    """Writes tenantcard's records to a file and keeps Python's last-resort stderr output for a process that
    configures no handler of its own (the file handler must not silence its warnings)."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        last = logging.lastResort
        if not logging.getLogger().handlers and last is not None and record.levelno >= last.level:
            last.handle(record)


def _log_dir_handler() -> None:
    """``TENANTCARD_LOG_DIR`` set: this process also writes its tenantcard log records (at the level its command
    configures) to a file of its own in that folder, for whoever collects the logs of several processes."""
    folder = os.environ.get("TENANTCARD_LOG_DIR")
    if not folder:
        return
    handler = _LogDirHandler(Path(folder) / f"tenantcard-{os.getpid()}.log", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("tenantcard").addHandler(handler)


def main() -> None:
    _log_dir_handler()
    try:
        cli.main(prog_name="tenantcard", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
