"""``tenantcard demo`` as CI and a newcomer run it: a subprocess from the repository, real servers, its JSON trace
checked step by step; Ctrl-C or SIGTERM in the middle stops every server; bad input is one line and a non-zero exit."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tenantcard.cli.main import cli
from tests.support.paths import REPO_ROOT

PROVIDERS = ("bank", "mail", "vpn")
HOLDER_PIN = "864021357908"  # distinctive: a 12-digit PIN cannot hide among ports, pids and time steps
DEMO_TIMEOUT = 240


def demo_argv(*args: str) -> list[str]:
    """The installed ``tenantcard`` script of this interpreter's environment, as ``make demo`` runs it."""
    script = Path(sys.executable).parent / "tenantcard"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "tenantcard.cli.main"]
    return [*head, "demo", *args]


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTCARD_") or k == "TENANTCARD_LOG_DIR"}
    env.update({"TENANTCARD_DEMO_HOLDER_PIN": HOLDER_PIN, "COLUMNS": "100"})
    return env


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # the pid exists: only a zombie (reaped by nobody yet) would still count as stopped
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def encodings(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


def texts_of(workdir: Path) -> dict[str, str]:
    """Every log the servers wrote."""
    return {str(p): p.read_text(errors="replace") for p in (workdir / "logs").glob("*.log")}


def steps_of(trace: dict[str, Any], provider: str, phase: int) -> list[dict[str, Any]]:
    return [s for s in trace["steps"] if s["provider"] == provider and s["phase"] == phase]


def test_demo_runs_every_phase_for_every_provider(tmp_path: Path) -> None:
    trace_path, workdir = tmp_path / "out" / "trace.json", tmp_path / "state"
    started = time.monotonic()
    done = subprocess.run(
        demo_argv("--json", str(trace_path), "--workdir", str(workdir)),
        cwd=REPO_ROOT,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Traceback" not in done.stdout + done.stderr
    trace = json.loads(trace_path.read_text())
    assert trace["format"] == "tenantcard-demo-trace-v1"
    assert trace["ok"] is True and trace["error"] is None
    assert trace["duration"] <= elapsed
    failed = [s for s in trace["steps"] if not s["ok"]]
    assert failed == []
    for step in trace["steps"]:
        assert set(step) >= {"phase", "provider", "step", "ok", "detail", "duration", "expect", "outcome"}
        assert step["duration"] >= 0 and step["detail"]

    # manufacture through the operator, then the three phases for each of the three providers
    setup = [s["step"] for s in trace["steps"] if s["phase"] == 0]
    assert {"start the operator", "manufacture the device", "start the device", "start the identity provider"} <= set(
        setup
    )
    for provider in PROVIDERS:
        phase1 = {s["step"]: s for s in steps_of(trace, provider, 1)}
        assert {"request a container", "take ownership (PUT KEY)", "replay the authorization"} <= set(phase1)
        assert phase1["replay the authorization"]["outcome"] == "refused"
        assert any(name.startswith("personalize") for name in phase1)
        phase2 = {s["step"]: s for s in steps_of(trace, provider, 2)}
        assert {"log the holder in (OIDC)", "open SCP03 at the token's address"} <= set(phase2)
        assert "pairwise sub" in phase2["log the holder in (OIDC)"]["detail"]
        uses = [s for name, s in phase2.items() if name.startswith("use:")]
        assert len(uses) == 1 and uses[0]["outcome"] == "succeeded"
        # phase 3: every next attempt is refused, each for the reason the seed gives
        phase3 = {s["step"]: s for s in steps_of(trace, provider, 3)}
        assert set(phase3) == {"log in again", "open SCP03 again", "look the container up"}
        for s in phase3.values():
            assert s["expect"] == "failure" and s["outcome"] == "refused" and s["ok"] is True
        assert "access_denied" in phase3["log in again"]["detail"]
        assert "SCP03" in phase3["open SCP03 again"]["detail"]
        assert "not found" in phase3["look the container up"]["detail"]
    used = {s["provider"]: s["detail"] for s in trace["steps"] if s["step"].startswith("use:")}
    assert "verified with the certificate" in used["bank"]
    assert "TOTP code" in used["mail"] and "accepted" in used["mail"]
    assert "OCRA response verified" in used["vpn"]
    revoked = [s for s in trace["steps"] if s["phase"] == 3 and s["provider"] in ("holder", "operator")]
    assert [s["step"] for s in revoked] == ["report the device lost", "revoke every container"]
    assert "revoked 3 containers" in revoked[1]["detail"]

    # the servers were real processes, and none is left
    roles = {p["role"]: p for p in trace["processes"]}
    assert set(roles) == {"operator", "idp", "device"}
    for p in roles.values():
        assert p["exit_code"] is not None, p
        assert pid_gone(p["pid"]), p
        assert p["argv"][:3] == ["tenantcard", p["role"], "serve"]

    # no secret the run knows of appears on the screen, in the trace or in a server's log
    staff = (workdir / "operator" / "staff-credential").read_text().strip()
    published = {"stdout": done.stdout, "stderr": done.stderr, "trace": trace_path.read_text(), **texts_of(workdir)}
    for name, secret in (("holder PIN", HOLDER_PIN), ("staff credential", staff)):
        for where, text in published.items():
            for form in encodings(secret):
                assert form not in text, f"{name} found in {where}"
    for argv in (p["argv"] for p in trace["processes"]):
        assert staff not in " ".join(argv)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_stops_every_server(tmp_path: Path, sig: signal.Signals) -> None:
    trace_path, workdir = tmp_path / "trace.json", tmp_path / "state"
    proc = subprocess.Popen(
        demo_argv("--json", str(trace_path), "--workdir", str(workdir)),
        cwd=REPO_ROOT,
        env=demo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # once the device serves, the operator and the device are running: interrupt there
        deadline = time.monotonic() + DEMO_TIMEOUT
        device_log = workdir / "logs" / "device.log"
        while not (device_log.exists() and "listening" in device_log.read_text()):
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, out[-3000:]
    assert "Traceback" not in out
    trace = json.loads(trace_path.read_text())
    assert trace["ok"] is False and trace["error"] == f"interrupted by {sig.name}"
    roles = {p["role"]: p for p in trace["processes"]}
    assert {"operator", "device"} <= set(roles)
    for p in roles.values():
        assert p["exit_code"] is not None and pid_gone(p["pid"]), p
    assert trace["workdir_kept"] is True


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", "--workdir", str(busy)])
    assert result.exit_code == 1
    assert "not empty" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["demo"], env={"TENANTCARD_DEMO_HOLDER_PIN": "12ab"})
    assert result.exit_code == 1 and "4 to 16 digits" in result.output
    assert "12ab" not in result.output
