"""Every ``tenantcard`` command and sub-command answers ``--help`` with exit 0 and a description that explains
it; every option says what it is for; each role's server command reads ``--config`` and the environment."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tenantcard.cli.main import ROLES, cli
from tests.support.paths import REPO_ROOT


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{' '.join((*path, name))} is listed but cannot be loaded"
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(cli))


def test_every_role_is_there() -> None:
    top = {path[0] for path, _ in COMMANDS if len(path) == 1}
    assert top == set(ROLES)
    assert len(COMMANDS) > len(ROLES) * 2


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "tenantcard")
def test_help_exits_zero_with_a_description(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="tenantcard")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: tenantcard")
    description = (command.help or "").strip()
    assert len(description) >= 15, f"{' '.join(path)} has no description"
    first_words = " ".join(description.split()[:3])
    assert first_words in " ".join(result.output.split()), result.output
    undocumented = [
        p.opts[0]
        for p in command.params
        if isinstance(p, click.Option) and p.name != "help" and not (p.help or "").strip()
    ]
    assert undocumented == [], f"{' '.join(path)}: options without help: {undocumented}"


@pytest.mark.parametrize(
    "path",
    [
        ("operator", "serve"),
        ("idp", "serve"),
        ("device", "init"),
        ("device", "serve"),
        ("provider",),
        ("holder",),
    ],
    ids=" ".join,
)
def test_role_commands_take_a_config_file(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    assert any(isinstance(p, click.Option) and "--config" in p.opts for p in command.params), path
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="tenantcard")
    assert "--config" in result.output and ("TENANTCARD_" in result.output or "TOML" in result.output)


def test_the_installed_entry_point_answers_help() -> None:
    script = Path(sys.executable).parent / "tenantcard"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "tenantcard.cli.main"]
    done = subprocess.run([*argv, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for role in ROLES:
        assert role in done.stdout
    assert "Traceback" not in done.stderr
