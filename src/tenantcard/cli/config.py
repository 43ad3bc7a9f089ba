"""TOML files and environment variables for the role commands that have no settings model of their own.

The HTTP services (operator, identity provider) read pydantic settings (``tenantcard.settings``: ``--config
FILE`` plus ``TENANTCARD_OPERATOR_*`` / ``TENANTCARD_IDP_*``). The device, provider and holder commands get the
same two sources from :func:`configurable`, applied to a click command or group:

* ``--config FILE``: a TOML file whose keys are the command's option names (``store = "device.db"``,
  ``listen = "0.0.0.0:4000"``; dashes or underscores). A table named after a command holds options for that
  command only (``[serve]``), so one file can serve ``device init`` and ``device serve``, or a group and its
  sub-commands; a top-level key applies to every command that has such an option.
* environment variables ``<PREFIX>_<OPTION>`` named after the option (``--idle-timeout``:
  ``TENANTCARD_DEVICE_IDLE_TIMEOUT``); a group's sub-commands read ``<PREFIX>_<COMMAND>_<OPTION>`` (click's
  ``auto_envvar_prefix``). An option that names its own variable keeps it.

Precedence, highest first: the command line, the environment, the file, the option's default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

C = TypeVar("C", bound=click.Command)


class ConfigError(click.BadParameter):
    """A configuration file that cannot be read or names a setting the command does not have."""


def _names(command: click.Command) -> dict[str, str]:
    """Every spelling of each option of ``command`` -> its parameter name."""
    names: dict[str, str] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in (None, "config", "help"):
            continue
        assert param.name is not None
        for spelling in (param.name, *(o.lstrip("-") for o in param.opts if o.startswith("--"))):
            names[spelling] = param.name
            names[spelling.replace("-", "_")] = param.name
            names[spelling.replace("_", "-")] = param.name
    return names


def _subcommands(ctx: click.Context, command: click.Command) -> dict[str, click.Command]:
    if not isinstance(command, click.Group):
        return {}
    found = {name: command.get_command(ctx, name) for name in command.list_commands(ctx)}
    return {name: sub for name, sub in found.items() if sub is not None}


def _accepts(ctx: click.Context, command: click.Command, key: str) -> bool:
    return key in _names(command) or any(_accepts(ctx, s, key) for s in _subcommands(ctx, command).values())


def defaults_for(ctx: click.Context, command: click.Command, table: dict[str, Any], where: str) -> dict[str, Any]:
    """``table`` as click's ``default_map`` for ``command`` (tables for sub-commands of a group, recursively);
    ConfigError names the first key that fits nowhere."""
    names = _names(command)
    subs = _subcommands(ctx, command)
    out: dict[str, Any] = {}
    loose: dict[str, Any] = {}
    for key, value in table.items():
        if key in names:
            out[names[key]] = value
        elif key in subs and isinstance(value, dict):
            continue
        elif subs and _accepts(ctx, command, key):
            loose[key] = value  # an option of some sub-command: offered to those that have it
        else:
            raise ConfigError(f"unknown setting {key!r} in {where}")
    for name, sub in subs.items():
        own = table.get(name)
        merged = {k: v for k, v in loose.items() if _accepts(ctx, sub, k)}
        merged.update(own if isinstance(own, dict) else {})
        if merged:
            out[name] = defaults_for(ctx, sub, merged, f"{where} [{name}]")
    return out


def _own_part(ctx: click.Context, table: dict[str, Any]) -> dict[str, Any]:
    """For a command of a group (``device serve``), one file can serve its siblings too: the top-level keys
    apply where they name an option (those of a sibling only are skipped), a ``[serve]`` table to ``serve``
    only, the siblings' tables to them."""
    if isinstance(ctx.command, click.Group) or ctx.parent is None:
        return table
    siblings = {k: v for k, v in _subcommands(ctx.parent, ctx.parent.command).items() if k != ctx.info_name}
    mine = _names(ctx.command)
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key == ctx.info_name and isinstance(value, dict):
            continue
        if key in siblings and isinstance(value, dict):
            continue  # a sibling's table
        if key not in mine and any(_accepts(ctx, sib, key) for sib in siblings.values()):
            continue  # a sibling's option
        out[key] = value
    own = table.get(ctx.info_name or "")
    out.update(own if isinstance(own, dict) else {})
    return out


def _load(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    try:
        table = tomllib.loads(value.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {value}: {exc.strerror or type(exc).__name__}", ctx, param) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{value} is not valid TOML: {exc}", ctx, param) from None
    defaults = defaults_for(ctx, ctx.command, _own_part(ctx, table), str(value))
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def configurable(env_prefix: str) -> Callable[[C], C]:
    """Give a click command or group ``--config FILE`` (TOML) and ``<env_prefix>_<OPTION>`` variables."""

    def decorate(command: C) -> C:
        command.context_settings.setdefault("auto_envvar_prefix", env_prefix)
        for param in command.params:
            # the variable is named after the option as typed (--vault: PREFIX_VAULT), not its Python name
            longs = [o for o in param.opts if o.startswith("--")]
            if isinstance(param, click.Option) and param.envvar is None and longs and param.name != "help":
                param.envvar = f"{env_prefix}_{longs[0][2:].replace('-', '_').upper()}"
        command.params.insert(
            0,
            click.Option(
                ["--config"],
                type=click.Path(dir_okay=False, path_type=Path),
                is_eager=True,
                expose_value=False,
                callback=_load,
                help=f"TOML file with option values (keys are option names; for a group, a table per "
                f"sub-command). Environment variables {env_prefix}_<OPTION> (for a group's sub-commands "
                f"{env_prefix}_<COMMAND>_<OPTION>) also set them; the command line wins over both.",
            ),
        )
        return command

    return decorate
