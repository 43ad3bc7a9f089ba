"""The scenario's infrastructure: a work directory, the operator, the device and the identity provider as real
servers, the operator's staff API, the holder. Each public method is one step of the plan and returns its
detail line.

Secrets of the run (the staff credential, the identity provider's and the holder's credentials, the holder's
PIN) live in this process's memory; the staff credential reaches the operator as a 0600 file, the identity
provider's credential its server through the environment; none is ever on a command line, in the trace or on
the screen.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tenantcard.provider.errors import OperatorApiError
from tenantcard.provider.sdk import OperatorApi
from tenantcard.scenario.errors import ProcessStartError, ScenarioError, StepFailed
from tenantcard.scenario.processes import ProcessGroup, ServerSpec, child_environment, free_port, tenantcard_argv
from tenantcard.scenario.trace import Trace

DEVICE_SERIAL = "DEMO-0001"
CONTAINERS = 3
CONTAINER_QUOTA = 16 * 1024
HTTP_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0
JOB_TIMEOUT = 120.0
IDP_START_ATTEMPTS = 3


def _toml(values: dict[str, Any]) -> str:
    """A flat TOML document (strings are written as JSON strings, which TOML basic strings accept)."""
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f"{key} = {json.dumps(str(value))}")
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    path.write_text(text)


@dataclass(frozen=True)
class Layout:
    """Where a run keeps its state (``--workdir``, or a temporary directory removed at the end)."""

    root: Path

    @property
    def operator(self) -> Path:
        return self.root / "operator"

    @property
    def idp(self) -> Path:
        return self.root / "idp"

    @property
    def providers(self) -> Path:
        return self.root / "providers"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def create(self) -> None:
        for d in (self.root, self.operator, self.idp, self.providers, self.logs):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)


class ApiError(StepFailed):
    """The operator answered an error (its stable code and message) or could not be reached."""


class StaffApi(OperatorApi):
    """The operator's REST API (paths relative to ``/v1``) with the staff credential (``/admin/...``) and its
    public routes; a refusal or an unreachable operator fails the step."""

    def __init__(self, base_url: str, credential: str) -> None:
        super().__init__(base_url, credential, timeout=HTTP_TIMEOUT)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return super().call(method, path, body)
        except OperatorApiError as exc:
            raise ApiError(f"{method} {path}: {exc}") from None


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run ``tenantcard ARGS`` to completion; its stdout, or StepFailed with its last line of output."""
    try:
        done = subprocess.run(
            tenantcard_argv(*args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=child_environment(env),
            cwd=cwd,
            timeout=CLI_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StepFailed(f"tenantcard {args[0]} {args[1]} did not finish in {CLI_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise StepFailed(f"tenantcard {args[0]} {args[1]} exited {done.returncode}: {lines[-1] if lines else ''}")
    return done.stdout


class World:
    """The servers of one run and the facts the steps learn about them."""

    def __init__(self, layout: Layout, trace: Trace, group: ProcessGroup, holder_pin: str) -> None:
        self.layout = layout
        self.trace = trace
        self.group = group
        self.holder_pin = holder_pin
        self._staff_credential = secrets.token_urlsafe(32)
        self._holder_credential = ""
        self._idp_credential = ""
        self.operator_url = ""
        self.issuer = ""
        self.device_id = ""
        self.serial = ""
        self.device_address = ""
        self._store_path = ""
        self._vault_uri = ""
        self.job_id = ""
        self._staff: StaffApi | None = None

    def __repr__(self) -> str:
        return f"World(operator={self.operator_url!r}, issuer={self.issuer!r}, device={self.device_address!r})"

    @property
    def staff(self) -> StaffApi:
        if self._staff is None:
            raise ScenarioError("the operator is not running")
        return self._staff

    @property
    def operator_toml(self) -> Path:
        return self.layout.operator / "operator.toml"

    @property
    def idp_toml(self) -> Path:
        return self.layout.idp / "idp.toml"

    def close(self) -> None:
        if self._staff is not None:
            self._staff.close()

    # --- phase 0: the servers and the device -----------------------------------------------------------
    def start_operator(self) -> str:
        """``tenantcard operator serve --config operator.toml``, embedded SQLite, file key vault."""
        d = self.layout.operator
        self.operator_toml.write_text(
            _toml(
                {
                    "db_url": f"sqlite:///{d / 'operator.db'}",
                    "vault_uri": f"file:{d / 'master.key'}",
                    "device_store_dir": str(d / "devices"),
                    "job_poll_seconds": 0.1,
                    "job_retry_base_seconds": 0.2,
                    "job_retry_max_seconds": 2.0,
                }
            )
        )
        token_file = d / "staff-credential"
        _write_private(token_file, self._staff_credential + "\n")
        spec = ServerSpec(
            "operator",
            (
                "operator",
                "serve",
                "--config",
                str(self.operator_toml),
                "--listen",
                "127.0.0.1:0",
                "--admin-token-file",
                str(token_file),
            ),
            re.compile(r"listening (?P<address>http://\S+)"),
            probe=lambda url: url + "/healthz",
        )
        server = self.group.start(spec)
        self.operator_url = server.address
        self._staff = StaffApi(self.operator_url, self._staff_credential)
        return f"REST API at {self.operator_url} (pid {server.pid}, SQLite, migrated on start)"

    def manufacture(self) -> str:
        """Manufacture (DESIGN.md): id, identity key and certificate from the operator CA, operator ISD keys,
        containers with quotas; the operator writes the device's sealed store."""
        made = self.staff.call(
            "POST",
            "/admin/devices",
            {"serial": DEVICE_SERIAL, "containers": [{"quota": CONTAINER_QUOTA} for _ in range(CONTAINERS)]},
        )
        self.device_id, self.serial = made["id"], made["serial"]
        self._store_path, self._vault_uri = made["store_path"], made["vault_uri"]
        return (
            f"device {self.device_id} (serial {self.serial}): identity certificate from the operator CA, "
            f"operator SCP03 keys KVN {made['isd_kvn']:#04x}, {CONTAINERS} containers of {CONTAINER_QUOTA} bytes"
        )

    def start_device(self) -> str:
        """``tenantcard device serve`` on the store manufacturing wrote."""
        spec = ServerSpec(
            "device",
            ("device", "serve", "--store", self._store_path, "--vault", self._vault_uri, "--listen", "127.0.0.1:0"),
            re.compile(r"listening (?P<address>tcp://\S+)"),
        )
        server = self.group.start(spec)
        self.device_address = server.address
        return f"device listening at {self.device_address} (pid {server.pid})"

    def check_in(self) -> str:
        """The device's address reaches the operator's registry once the device there proved its identity."""
        got = self.staff.call("POST", f"/devices/{self.device_id}/checkin", {"address": self.device_address})
        if got.get("address_verified_at") is None:
            raise StepFailed("the operator recorded the address without verifying it")
        return f"operator verified the device at {got['address']} (INTERNAL AUTHENTICATE, chain to its CA)"

    def enrol_holder(self) -> str:
        holder = self.staff.call("POST", "/admin/holders", {"name": "Alice"})
        self._holder_credential = holder["credential"]
        self.staff.call("POST", f"/admin/holders/{holder['id']}/devices", {"device_id": self.device_id})
        return f"holder Alice ({holder['id']}) linked to device {self.serial}; her credential stays in memory"

    def register_idp_client(self, name: str, redirect_uri: str) -> tuple[str, str]:
        """``tenantcard idp client add``: the provider becomes a relying party; (client_id, client_secret)."""
        self._write_idp_toml()
        out = run_cli(
            [
                *("idp", "client", "add", "--config", str(self.idp_toml), "--name", name),
                *("--redirect-uri", redirect_uri, "--json"),
            ],
            cwd=self.layout.idp,
        )
        try:
            answer = json.loads(out.strip().splitlines()[-1])
            return str(answer["client_id"]), str(answer["client_secret"])
        except (ValueError, KeyError, TypeError, IndexError):
            raise StepFailed("tenantcard idp client add printed no client") from None

    def _write_idp_toml(self, *, fresh_port: bool = False) -> None:
        if not self.issuer or fresh_port:
            self.issuer = f"http://127.0.0.1:{free_port()}"
        if fresh_port or not self.idp_toml.exists():
            self.idp_toml.write_text(
                _toml(
                    {
                        "issuer": self.issuer,
                        "db_url": f"sqlite:///{self.layout.idp / 'idp.db'}",
                        "operator_url": self.operator_url,
                    }
                )
            )

    def register_idp(self) -> str:
        """The operator's device directory answers the identity provider under a credential of its own, which
        reaches only the ``/v1/idp/...`` routes (resolve a device handle, register a pointer)."""
        idp = self.staff.call("POST", "/admin/idps", {"name": "Demo IdP"})
        self._idp_credential = idp["credential"]
        return f"identity provider {idp['id']} registered at the operator; its credential stays in memory"

    def start_idp(self) -> str:
        """``tenantcard idp serve --config idp.toml``; its operator credential comes through the environment.
        The issuer URL names its port before the server starts: should another process take that port
        first, the next attempt picks another one."""
        for attempt in range(1, IDP_START_ATTEMPTS + 1):
            self._write_idp_toml(fresh_port=attempt > 1)
            spec = ServerSpec(
                "idp",
                ("idp", "serve", "--config", str(self.idp_toml), "--listen", self.issuer.removeprefix("http://")),
                address=self.issuer,
                env={"TENANTCARD_IDP_OPERATOR_TOKEN": self._idp_credential},
                probe=lambda url: url + "/.well-known/openid-configuration",
            )
            try:
                server = self.group.start(spec)
                break
            except ProcessStartError:
                if attempt == IDP_START_ATTEMPTS:
                    raise
        discovery = httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT).json()
        methods = ",".join(discovery.get("code_challenge_methods_supported", []))
        return f"OpenID provider {self.issuer} (pid {server.pid}); discovery: PKCE {methods or '?'}, ES256 JWKS"

    # --- phase 3: the holder reports the device lost ---------------------------------------------------
    def report_lost(self) -> str:
        """``tenantcard holder lost DEVICE --yes`` with the holder's credential in the environment."""
        out = run_cli(
            ["holder", "--operator", self.operator_url, "lost", self.device_id, "--yes"],
            env={"TENANTCARD_HOLDER_CREDENTIAL": self._holder_credential},
        )
        found = re.search(r"revocation job (\S+):", out)
        if found is None:
            raise StepFailed("tenantcard holder lost did not name a revocation job")
        self.job_id = found.group(1)
        return f"device {self.serial} reported lost by its holder; revocation job {self.job_id}"

    def wait_revocation(self) -> str:
        """Phase 3: the operator's job revokes every container (DELETE over SCP03 to the ISD); the registry
        then shows the device lost and every container available again."""
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            job = self.staff.call("GET", f"/admin/jobs/{self.job_id}")
            if job["status"] != "running":
                break
            if time.monotonic() > deadline:
                raise StepFailed(f"revocation job still running after {JOB_TIMEOUT:.0f} s: {job['done']} done")
            time.sleep(0.1)
        if job["status"] != "done" or job["failed"] or job["done"] != job["total"]:
            raise StepFailed(
                f"revocation job {job['status']}: {job['done']}/{job['total']} done, {job['failed']} failed"
            )
        detail = self.staff.call("GET", f"/admin/devices/{self.device_id}")
        states = [c["state"] for c in detail["containers"]]
        held = [c["index"] for c in detail["containers"] if c["state"] != "available" or c["provider_id"]]
        if detail["status"] != "lost" or held:
            raise StepFailed(f"after the job the device is {detail['status']} with containers {states}")
        return (
            f"operator revoked {job['done']} containers over SCP03 to the ISD, without the providers' keys; "
            f"device {detail['status']}, containers {', '.join(states)}"
        )
