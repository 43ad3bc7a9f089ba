"""The documentation a newcomer follows stays true: the README opens with the two commands, its links lead
somewhere, the role commands it shows exist, and the route tables name every route the services publish."""

from __future__ import annotations

import datetime
import re
import shlex
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.cli.main import cli
from tenantcard.idp.app import create_app as create_idp
from tenantcard.idp.settings import IdpSettings
from tenantcard.operator.app import create_app as create_operator
from tenantcard.operator.settings import OperatorSettings
from tests.support.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"


def test_readme_opens_with_the_two_commands() -> None:
    lines = [line for line in README.read_text().splitlines() if line.strip()]
    assert lines[0] == "# tenantcard"
    assert lines[1] == "```"
    assert lines[2].startswith("make demo") and lines[3].startswith("make test")


def test_every_relative_link_leads_to_a_file() -> None:
    pages = [README, *DOCS.glob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_the_role_commands_the_readme_shows_exist() -> None:
    shown = re.findall(r"`(tenantcard [^`]+)`", README.read_text())
    assert len(shown) >= 7
    for line in shown:
        words = shlex.split(line)[1:]
        command: click.Command = cli
        ctx = click.Context(cli)
        params = {o: p for p in cli.get_params(ctx) for o in p.opts}
        skip = False
        for word in words:
            if skip:
                skip = False
            elif word.startswith("-"):
                param = params.get(word.split("=")[0])
                skip = isinstance(param, click.Option) and not param.is_flag and "=" not in word
            elif isinstance(command, click.Group):
                sub = command.get_command(ctx, word)
                if sub is not None:
                    command = sub
                    params |= {o: p for p in sub.get_params(ctx) for o in p.opts}
                elif not word.isupper():  # ROLE, COMMAND: placeholders
                    raise AssertionError(f"{line}: {command.name} has no command {word!r}")
        known = set(params)
        given = {w.split("=")[0] for w in words if w.startswith("--")}
        assert given <= known, f"{line}: unknown options {sorted(given - known)}"


def _self_signed() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "docs test CA")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def _documented(text: str, method: str, path: str) -> bool:
    """``METHOD /path`` appears in the page (path parameters may be named differently)."""
    parts = re.split(r"\{[^}]*\}", path)
    shape = re.compile(re.escape(f"`{method} ") + r"\{[^}]+\}".join(re.escape(p) for p in parts) + "`")
    return shape.search(text) is not None


def test_every_route_is_in_the_rest_reference(tmp_path: Path) -> None:
    text = (DOCS / "rest-and-oidc.md").read_text()
    operator = create_operator(
        OperatorSettings(
            db_url=f"sqlite:///{tmp_path / 'operator.db'}",
            vault_uri=f"file:{tmp_path / 'master.key'}",
            device_store_dir=tmp_path / "devices",
            run_workers=False,
        )
    )
    idp = create_idp(
        IdpSettings(db_url=f"sqlite:///{tmp_path / 'idp.db'}", operator_url="http://127.0.0.1:9"),
        root_ca=_self_signed(),
    )
    missing = []
    for app in (operator, idp):
        for path, operations in app.openapi()["paths"].items():
            for method in operations:
                if not _documented(text, method.upper(), path):
                    missing.append(f"{method.upper()} {path}")
    idp.state.engine.dispose()
    operator.state.services.env.db.dispose()
    assert missing == [], f"docs/rest-and-oidc.md does not list {missing}"
