"""Each role command configured as operations.md says: a TOML file (``--config``) and environment variables,
the command line winning over both; real processes, real HTTP and TCP."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tenantcard.client.isd import IsdSession
from tenantcard.transport.tcp_client import connect


def argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "tenantcard.cli.main", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTCARD_") or k == "TENANTCARD_LOG_DIR"}
    env.update(extra)
    return env


@contextmanager
def server(args: list[str], env: dict[str, str], cwd: Path, pattern: str) -> Iterator[str]:
    """Start ``tenantcard ARGS``; yield the address its ``listening`` line names; stop it with SIGTERM."""
    log = cwd / f"{args[0]}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv(*args), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            found = re.search(pattern, log.read_text(errors="replace"))
            if found:
                break
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        yield found.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_device_init_and_serve_from_one_toml_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_text(
        f'store = "{tmp_path / "device.db"}"\nvault = "file:{tmp_path / "device.vault"}"\n'
        f'[init]\ncontainers = 2\nkeys-out = "{tmp_path / "isd.json"}"\n'
        '[serve]\nlisten = "127.0.0.1:1"\nidle-timeout = 30\n'
    )
    done = run(["device", "init", "--config", str(config)], clean_env(), tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "device.vault").exists() and (tmp_path / "isd.json").exists()
    device_id = json.loads((tmp_path / "isd.json").read_text())["device_id"]
    # the environment wins over the file (port 1 would fail)
    env = clean_env(TENANTCARD_DEVICE_LISTEN="127.0.0.1:0")
    serve = ["device", "serve", "--config", str(config)]
    with server(serve, env, tmp_path, r"listening (tcp://\S+)") as address, connect(address, timeout=10) as conn:
        isd = IsdSession(conn)
        isd.select()
        assert isd.get_device_id().hex() == device_id
    info = run(["device", "info", "--json"], clean_env(TENANTCARD_DEVICE_STORE=str(tmp_path / "device.db"),
               TENANTCARD_DEVICE_VAULT=f"file:{tmp_path / 'device.vault'}"), tmp_path)  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert [c["state"] for c in json.loads(info.stdout)["containers"]] == ["AVAILABLE", "AVAILABLE"]


def test_operator_and_holder_from_toml_files_and_the_environment(tmp_path: Path) -> None:
    staff = secrets.token_urlsafe(24)
    operator_toml = tmp_path / "operator.toml"
    operator_toml.write_text(
        f'db_url = "sqlite:///{tmp_path / "operator.db"}"\nvault_uri = "file:{tmp_path / "master.key"}"\n'
        f'device_store_dir = "{tmp_path / "factory"}"\n'
    )
    env = clean_env(TENANTCARD_OPERATOR_ADMIN_TOKEN=staff)
    args = ["operator", "serve", "--config", str(operator_toml), "--listen", "127.0.0.1:0"]
    with server(args, env, tmp_path, r"listening (http://\S+)") as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {staff}"}, timeout=30)
        made = admin.post("/v1/admin/devices", json={"serial": "CFG-1", "containers": [{"quota": 4096}]})
        assert made.status_code == 201, made.text
        assert Path(made.json()["store_path"]).parent == tmp_path / "factory"
        holder = admin.post("/v1/admin/holders", json={"name": "Alice"}).json()
        linked = admin.post(f"/v1/admin/holders/{holder['id']}/devices", json={"device_id": made.json()["id"]})
        assert linked.status_code == 204
        admin.close()
        holder_toml = tmp_path / "holder.toml"
        holder_toml.write_text(f'operator = "{url}"\n')
        done = run(
            ["holder", "--config", str(holder_toml), "devices"],
            clean_env(TENANTCARD_HOLDER_CREDENTIAL=holder["credential"]),
            tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert "CFG-1" in done.stdout and holder["credential"] not in done.stdout + done.stderr
        wrong = tmp_path / "wrong.toml"
        wrong.write_text('operatr = "http://x"\n')
        done = run(["holder", "--config", str(wrong), "devices"], clean_env(), tmp_path)
        assert done.returncode == 2 and "unknown setting 'operatr'" in done.stderr
        assert "Traceback" not in done.stderr
