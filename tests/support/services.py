"""Real services for the tests: PostgreSQL and pcscd started by ``scripts/services``, SoftHSM2 tokens.

When CI (or ``make test``) started the services, their addresses come from the environment; otherwise the
first test that needs one starts them through the same script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO_ROOT

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)


def _services_env() -> dict[str, str]:
    if "TENANTCARD_TEST_PG_URL" in os.environ:
        return dict(os.environ)
    # Idempotent: starts only what is not running yet.
    subprocess.run([str(REPO_ROOT / "scripts" / "services"), "start"], check=True, cwd=REPO_ROOT)
    env_file = REPO_ROOT / ".run" / "services.env"
    values: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value.strip('"')
    os.environ.update(values)
    return dict(os.environ)


def postgres_admin_url() -> str:
    """SQLAlchemy URL of the test cluster's maintenance database."""
    return _services_env()["TENANTCARD_TEST_PG_URL"]


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the real PostgreSQL server; dropped afterwards. Yields its SQLAlchemy URL."""
    import psycopg

    admin = postgres_admin_url()
    base, _, _ = admin.rpartition("/")
    name = f"tc_{uuid.uuid4().hex[:16]}"
    dsn = admin.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def vpcd_ports() -> list[int]:
    """The vpcd ports of the reader entries pcscd was started with (two slots per entry: P and P+1)."""
    env = _services_env()
    base = int(env["TENANTCARD_TEST_VPCD_PORT"])
    return [base + i for i in range(2 * int(env["TENANTCARD_TEST_VPCD_READERS"]))]


@dataclass(frozen=True)
class SoftHsmToken:
    module: str
    label: str
    user_pin: str
    so_pin: str
    conf: Path


def softhsm_module() -> str:
    for candidate in SOFTHSM_MODULE_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise RuntimeError("SoftHSM2 is not installed (make system)")


def init_softhsm_token(directory: Path, label: str = "tenantcard") -> SoftHsmToken:
    """A freshly initialized SoftHSM2 token in ``directory``; sets SOFTHSM2_CONF for this process."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    user_pin, so_pin = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    softhsm_init_token(conf, label, user_pin, so_pin)
    return SoftHsmToken(softhsm_module(), label, user_pin, so_pin, conf)


def softhsm_init_token(conf: Path, label: str, user_pin: str, so_pin: str) -> None:
    """A new token ``label`` in the token directory that SoftHSM2 configuration ``conf`` names."""
    util = shutil.which("softhsm2-util") or "/usr/bin/softhsm2-util"
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", user_pin, "--so-pin", so_pin],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
