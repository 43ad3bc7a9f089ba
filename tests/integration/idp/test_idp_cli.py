"""``tenantcard idp``: client registration prints the secret once, key rotation, listings."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tenantcard.cli.main import cli
from tenantcard.idp.db.engine import make_engine
from tenantcard.idp.db.repositories import IdpRepository
from tenantcard.idp.oidc.clients import verify_secret


def test_client_add_list_and_key_rotation(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'idp.db'}"
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["idp", "client", "add", "--db", db, "--name", "Bank", "--redirect-uri", "https://bank.example/cb", "--json"],
    )
    assert added.exit_code == 0, added.output
    created = json.loads(added.output)
    stored = IdpRepository(make_engine(db)).get_client(created["client_id"])
    assert stored is not None and verify_secret(stored, created["client_secret"])

    listed = runner.invoke(cli, ["idp", "client", "list", "--db", db, "--json"])
    assert listed.exit_code == 0
    assert [c["client_id"] for c in json.loads(listed.output)] == [created["client_id"]]
    assert created["client_secret"] not in listed.output  # shown once, at registration only

    first = runner.invoke(cli, ["idp", "keys", "rotate", "--db", db])
    second = runner.invoke(cli, ["idp", "keys", "rotate", "--db", db])
    assert first.exit_code == 0 and second.exit_code == 0
    keys = runner.invoke(cli, ["idp", "keys", "list", "--db", db])
    assert keys.output.count("active") == 1 and keys.output.count("published until") == 2


def test_bad_registration_is_a_clean_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'idp.db'}"
    result = CliRunner().invoke(
        cli, ["idp", "client", "add", "--db", db, "--name", "Bank", "--redirect-uri", "ftp://bank.example/cb"]
    )
    assert result.exit_code != 0 and "redirect URI" in result.output and "Traceback" not in result.output


def test_serve_without_an_operator_is_a_clean_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'idp.db'}"
    result = CliRunner().invoke(cli, ["idp", "serve", "--db", db, "--listen", "127.0.0.1:0"])
    assert result.exit_code != 0 and "operator" in result.output


def test_serve_with_a_wrong_vault_is_a_clean_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'idp.db'}"
    runner = CliRunner()
    right, wrong = f"file:{tmp_path / 'right.key'}", f"file:{tmp_path / 'wrong.key'}"
    assert runner.invoke(cli, ["idp", "keys", "rotate", "--db", db, "--vault", right]).exit_code == 0
    assert not (tmp_path / "idp.db.master.key").exists()  # the explicit vault, not the default beside the database
    served = runner.invoke(
        cli,
        ["idp", "serve", "--db", db, "--vault", wrong, "--operator", "http://127.0.0.1:9", "--listen", "127.0.0.1:0"],
    )
    assert served.exit_code == 1 and "Traceback" not in served.output
    assert "key vault does not open this database's sealed keys" in served.output
    listed = runner.invoke(cli, ["idp", "keys", "list", "--db", db, "--vault", right])
    assert listed.exit_code == 0 and listed.output.count("active") == 1


def test_serve_answers_discovery(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    import httpx
    from cryptography.hazmat.primitives import serialization

    from tests.unit.idp.idp_support import new_ca

    pem = tmp_path / "ca.pem"
    pem.write_bytes(new_ca().cert.public_bytes(serialization.Encoding.PEM))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "tenantcard.cli.main", "idp", "serve", "--listen", f"127.0.0.1:{port}"]
    command += [
        "--db",
        f"sqlite:///{tmp_path / 'idp.db'}",
        "--operator",
        "http://127.0.0.1:9",
        "--operator-ca",
        str(pem),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                doc = httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=1).json()
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stdout.read() if process.stdout else b""
                assert time.monotonic() < deadline, "the IdP did not start"
                time.sleep(0.1)
        assert doc["issuer"] == f"http://127.0.0.1:{port}"
        assert httpx.get(doc["jwks_uri"]).json()["keys"][0]["alg"] == "ES256"
    finally:
        process.terminate()
        process.wait(10)
