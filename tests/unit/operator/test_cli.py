"""The operator's settings sources and its admin command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from tenantcard.cli.main import cli
from tenantcard.operator.app import build_services
from tenantcard.operator.db.models import AuditEntry
from tenantcard.operator.settings import OperatorSettings, load_settings


def test_settings_from_toml_env_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "operator.toml"
    config.write_text(
        'db_url = "sqlite:///from-toml.db"\nauthorization_ttl_seconds = 120\nadmin_token = "zq-staff-secret-9"\n'
    )
    s = load_settings(config)
    assert (s.db_url, s.authorization_ttl_seconds) == ("sqlite:///from-toml.db", 120)
    monkeypatch.setenv("TENANTCARD_OPERATOR_AUTHORIZATION_TTL_SECONDS", "300")
    assert load_settings(config).authorization_ttl_seconds == 300  # the environment beats the file
    assert load_settings(config, db_url="sqlite:///opt.db").db_url == "sqlite:///opt.db"  # options beat both
    loaded = load_settings(config)
    assert loaded.admin_token is not None and loaded.admin_token.get_secret_value() == "zq-staff-secret-9"
    assert "zq-staff-secret-9" not in repr(loaded)  # the staff credential never shows


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_admin_commands(settings: OperatorSettings, tmp_path: Path) -> None:
    common = ["--db", settings.db_url, "--vault", settings.vault_uri]
    code, out = _run("operator", "migrate", *common)
    assert code == 0 and "latest schema" in out
    store = tmp_path / "dev.db"
    code, out = _run(
        "operator",
        "device",
        "manufacture",
        *common,
        "--containers",
        "2",
        "--serial",
        "CLI-1",
        "--store",
        str(store),
        "--device-vault",
        f"file:{tmp_path / 'dev.seal'}",
    )
    assert code == 0, out
    made = json.loads(out)
    assert store.exists() and made["serial"] == "CLI-1" and len(made["device_id"]) == 20
    code, out = _run("operator", "device", "manufacture", *common, "--serial", "CLI-1")
    assert code == 1 and "serial_taken" in out
    code, out = _run("operator", "provider", "register", *common, "Acme")
    provider = json.loads(out)
    assert provider["credential"].startswith("tcp_")
    code, out = _run("operator", "provider", "rotate-credential", *common, provider["provider_id"])
    assert code == 0 and json.loads(out)["credential"] != provider["credential"]
    code, out = _run(
        "operator",
        "contract",
        "create",
        *common,
        "--provider",
        provider["provider_id"],
        "--option",
        "B",
        "--index",
        "3",
        "--quota",
        "2048",
        "--consent",
    )
    assert code == 0, out
    contract = json.loads(out)
    code, out = _run("operator", "contract", "create", *common, "--provider", provider["provider_id"], "--option", "B")
    assert code == 1 and "invalid_request" in out
    code, out = _run("operator", "holder", "create", *common, "Alice")
    holder = json.loads(out)
    assert holder["credential"].startswith("tch_")
    code, out = _run("operator", "holder", "link", *common, holder["holder_id"], made["device_id"])
    assert code == 0 and "linked" in out
    code, out = _run("operator", "device", "pointer", *common, made["device_id"], "idp-handle-1")
    assert code == 0
    code, out = _run("operator", "idp", "register", *common, "Main IdP")
    assert code == 0, out
    idp = json.loads(out)
    assert idp["credential"].startswith("tci_") and idp["idp_id"].startswith("idp_")
    code, out = _run("operator", "idp", "register", *common, "Main IdP")
    assert code == 1 and "idp_exists" in out
    code, out = _run("operator", "idp", "rotate-credential", *common, idp["idp_id"])
    assert code == 0 and json.loads(out)["credential"] not in (idp["credential"], "")
    code, out = _run("operator", "idp", "list", *common)
    assert code == 0 and json.loads(out)[0]["name"] == "Main IdP" and idp["credential"].split(".")[1] not in out
    code, out = _run("operator", "device", "list", *common)
    assert made["device_id"] in out and "CLI-1" in out
    code, out = _run("operator", "contract", "end", *common, contract["contract_id"], "--wait")
    assert code == 0 and json.loads(out)["status"] == "done"
    code, out = _run("operator", "keys", "rotate", *common)
    assert code != 0 and "exactly one" in out
    code, out = _run("operator", "keys", "rotate", *common, "--device", made["device_id"])
    assert code == 1 and "device_unavailable" in out  # never checked in: nothing half-done
    code, out = _run("operator", "ca", *common)
    assert out.startswith("-----BEGIN CERTIFICATE-----")
    code, out = _run("operator", "audit", "show", *common)
    assert "provider.registered" in out and "contract.ended" in out and "idp.registered" in out
    assert provider["credential"].split(".")[1] not in out and idp["credential"].split(".")[1] not in out
    code, out = _run("operator", "audit", "verify", *common)
    assert code == 0 and "intact" in out

    svc = build_services(settings)
    with svc.env.db.transaction() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(subject="someone-else"))
    svc.env.db.dispose()
    result = CliRunner().invoke(cli, ["operator", "audit", "verify", *common])
    assert result.exit_code == 1 and "TAMPERED" in result.output


def test_bad_database_url_is_a_clean_error(tmp_path: Path) -> None:
    code, out = _run("operator", "migrate", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert code == 1 and out.startswith("Error: database:")
    code, out = _run("operator", "provider", "register", "--db", f"sqlite:///{tmp_path}/x.db", "--vault", "bogus", "A")
    assert code == 1 and "key custody" in out
