"""``tenantcard.cli.config.configurable``: option values from a TOML file and the environment, the command line
winning over both; a bad file is one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from tenantcard.cli.config import configurable


@click.group()
def role() -> None:
    """A role with two commands."""


@configurable("TC_TEST_ROLE")
@role.command("serve")
@click.option("--store", required=True, help="Store file.")
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT.")
@click.option("--vault", "vault_uri", help="Vault URI.")
@click.option("--verbose", is_flag=True, help="More output.")
def serve(store: str, listen: str, vault_uri: str | None, verbose: bool) -> None:
    """Serve."""
    click.echo(f"store={store} listen={listen} vault={vault_uri} verbose={verbose}")


@role.command("init")
@click.option("--containers", type=int, default=1, help="How many.")
def init(containers: int) -> None:
    """Init."""
    click.echo(f"containers={containers}")


@configurable("TC_TEST_CLIENT")
@click.group()
@click.option("--url", default="http://default", help="Service URL.")
@click.pass_context
def client(ctx: click.Context, url: str) -> None:
    """A client group."""
    ctx.obj = url


@client.command("get")
@click.option("--name", default="none", help="A name.")
@click.pass_obj
def get(url: str, name: str) -> None:
    """Get."""
    click.echo(f"url={url} name={name}")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_file_then_environment_then_command_line(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        'store = "from-file.db"\nvault = "file:v"\ncontainers = 4\n[serve]\nlisten = "0.0.0.0:4000"\nverbose = true\n'
        "[init]\ncontainers = 9\n",
    )
    runner = CliRunner()
    out = runner.invoke(role, ["serve", "--config", str(config)])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == "store=from-file.db listen=0.0.0.0:4000 vault=file:v verbose=True"
    out = runner.invoke(role, ["serve", "--config", str(config)], env={"TC_TEST_ROLE_LISTEN": "10.0.0.1:1"})
    assert "listen=10.0.0.1:1" in out.output and "store=from-file.db" in out.output
    out = runner.invoke(
        role, ["serve", "--config", str(config), "--listen", "[::1]:2"], env={"TC_TEST_ROLE_LISTEN": "10.0.0.1:1"}
    )
    assert "listen=[::1]:2" in out.output
    # the environment alone satisfies a required option; a variable is named after the option, not its dest
    out = runner.invoke(role, ["serve"], env={"TC_TEST_ROLE_STORE": "env.db", "TC_TEST_ROLE_VAULT": "file:e"})
    assert out.exit_code == 0 and "store=env.db listen=127.0.0.1:0 vault=file:e" in out.output


def test_a_group_file_reaches_its_subcommands(tmp_path: Path) -> None:
    config = write(tmp_path, 'url = "http://from-file"\n[get]\nname = "alice"\n')
    runner = CliRunner()
    out = runner.invoke(client, ["--config", str(config), "get"])
    assert out.exit_code == 0 and out.output.strip() == "url=http://from-file name=alice"
    shared = write(tmp_path, 'name = "bob"\n')
    out = runner.invoke(client, ["--config", str(shared), "get"], env={"TC_TEST_CLIENT_URL": "http://env"})
    assert out.output.strip() == "url=http://env name=bob"
    out = runner.invoke(client, ["get"], env={"TC_TEST_CLIENT_GET_NAME": "carol"})
    assert out.output.strip() == "url=http://default name=carol"


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = write(tmp_path, 'stor = "typo.db"\n')
    out = runner.invoke(role, ["serve", "--config", str(unknown)])
    assert out.exit_code == 2 and "unknown setting 'stor'" in out.output and out.exception is not None
    assert isinstance(out.exception, SystemExit)
    broken = write(tmp_path, "store = \n")
    out = runner.invoke(role, ["serve", "--config", str(broken)])
    assert out.exit_code == 2 and "not valid TOML" in out.output
    out = runner.invoke(role, ["serve", "--config", str(tmp_path / "absent.toml")])
    assert out.exit_code == 2 and "cannot read" in out.output
    out = runner.invoke(client, ["--config", str(write(tmp_path, "nobody = 1\n")), "get"])
    assert out.exit_code == 2 and "unknown setting 'nobody'" in out.output


def test_help_tells_about_the_sources() -> None:
    out = CliRunner().invoke(role, ["serve", "--help"])
    assert out.exit_code == 0 and "--config" in out.output and "TC_TEST_ROLE_<OPTION>" in out.output
