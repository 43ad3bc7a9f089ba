"""What the service commands (``operator``, ``idp``) share: ``--config``, ``--db`` and ``--vault``, one option set
handed to the command as a ``SettingsTarget`` that loads the service's settings (``tenantcard.settings``) with
the command line's values on top of the environment and the file; and the ``--listen`` address."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import click

S = TypeVar("S")


@dataclass(frozen=True)
class SettingsTarget(Generic[S]):
    load: Callable[..., S]  # a service's ``load_settings(config, **overrides)``
    config: Path | None
    db_url: str | None
    vault_uri: str | None

    def settings(self, **extra: Any) -> S:
        """The settings, ``extra`` (and the options given) overriding; ClickException when they do not load."""
        from tenantcard.settings import SettingsError

        try:
            return self.load(self.config, db_url=self.db_url, vault_uri=self.vault_uri, **extra)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from exc


def settings_options(
    load: Callable[..., S], *, config_help: str, db_help: str, vault_help: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The three options, given to the command as its first argument, a ``SettingsTarget`` over ``load``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def command(*, config: Path | None, db_url: str | None, vault_uri: str | None, **kwargs: Any) -> Any:
            return fn(SettingsTarget(load, config, db_url, vault_uri), **kwargs)

        command = click.option("--vault", "vault_uri", help=vault_help)(command)
        command = click.option("--db", "db_url", help=db_help)(command)
        return click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help=config_help)(command)

    return decorate


def listen_address(value: str) -> tuple[str, int]:
    """``--listen HOST:PORT`` of a service (an empty host, or ``[IPv6]``, as HTTP servers take it)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter("expected HOST:PORT", param_hint="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)
