"""Start the scenario's servers as real processes (``tenantcard operator serve``, ``idp serve``, ``device serve``),
wait until each is ready, collect their output in log files, and always stop them.

Each server runs in its own session (a Ctrl-C typed at the terminal reaches only the scenario, which then stops
the servers in order) and, on Linux, asks the kernel to send it SIGTERM should the scenario process die without
stopping it (``PR_SET_PDEATHSIG``). Stopping is SIGTERM, a grace period, then SIGKILL.

The servers get the scenario's environment without any ``TENANTCARD_*`` variable but ``TENANTCARD_LOG_DIR``
and those the scenario sets: a production setting in the caller's environment (a database URL, a key vault, a
credential) never reaches a demo server.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from tenantcard.scenario.errors import ProcessStartError
from tenantcard.scenario.trace import ProcessRecord

PR_SET_PDEATHSIG = 1  # prctl(2)
STOP_GRACE_SECONDS = 10.0
ENV_PREFIX = "TENANTCARD_"
ENV_PASSED = frozenset({"TENANTCARD_LOG_DIR"})  # diagnostics only (tenantcard.cli.main)


def tenantcard_argv(*args: str) -> list[str]:
    """The command line of ``tenantcard ARGS`` with this interpreter (works without the venv on PATH)."""
    return [sys.executable, "-m", "tenantcard.cli.main", *args]


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) or k in ENV_PASSED}
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach the log file as they are written
    env.update(extra or {})
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for servers that must know their own URL before they start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server and how to tell it is ready.

    ``ready`` is a pattern with a group ``address`` found in the server's output once it listens (for a server
    that picks its own port); ``address`` is the address of a server told where to listen. ``probe`` turns
    the address into an HTTP URL that must answer 200 before the server counts as ready.
    """

    role: str
    args: tuple[str, ...]
    ready: re.Pattern[str] | None = None
    address: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    probe: Callable[[str], str] | None = None
    timeout: float = 60.0


class ServerProcess:
    """One started server: ``address`` once ready; ``stop`` ends it (idempotent)."""

    def __init__(self, spec: ServerSpec, log_path: Path, cwd: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.argv = tenantcard_argv(*spec.args)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=child_environment(spec.env),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.address = spec.address
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __repr__(self) -> str:
        return f"ServerProcess({self.spec.role!r}, pid={self.pid}, address={self.address!r})"

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _last_line(self) -> str:
        lines = [line for line in self._log_text().splitlines() if line.strip()]
        return lines[-1].strip()[:200] if lines else "(no output)"

    def wait_ready(self) -> str:
        """Block until the server announced its address (and answers its probe); ProcessStartError if it
        exits or takes longer than the spec's timeout."""
        deadline = time.monotonic() + self.spec.timeout
        while self.spec.ready is not None and not self.address:
            found = self.spec.ready.search(self._log_text())
            if found:
                self.address = found.group("address")
                break
            self._check_alive(deadline)
            time.sleep(0.05)
        if self.spec.probe is not None:
            url = self.spec.probe(self.address)
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=2.0).status_code == 200:
                        break
                self._check_alive(deadline)
                time.sleep(0.05)
        return self.address

    def _check_alive(self, deadline: float) -> None:
        code = self._proc.poll()
        if code is not None:
            self.exit_code = code
            raise ProcessStartError(
                f"{self.spec.role} exited with status {code} while starting: {self._last_line()} (log: {self.log_path})"
            )
        if time.monotonic() > deadline:
            raise ProcessStartError(
                f"{self.spec.role} was not ready after {self.spec.timeout:.0f} s (log: {self.log_path})"
            )

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                self._proc.wait(timeout=grace)
        self.exit_code = self._proc.returncode
        self._log.close()
        return self.exit_code

    def record(self) -> ProcessRecord:
        # argv names files and ports only: every secret reaches a server through a file or its environment
        return ProcessRecord(
            self.spec.role, self.pid, ("tenantcard", *self.spec.args), self.address, str(self.log_path), self.exit_code
        )


class ProcessGroup:
    """The servers of one run; leaving the ``with`` block stops them all, last started first."""

    def __init__(self, workdir: Path, logdir: Path, on_change: Callable[[ProcessRecord], None]) -> None:
        self._workdir = workdir
        self._logdir = logdir
        self._on_change = on_change
        self._servers: list[ServerProcess] = []

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def __iter__(self) -> Iterator[ServerProcess]:
        return iter(list(self._servers))

    def start(self, spec: ServerSpec) -> ServerProcess:
        server = ServerProcess(spec, self._logdir / f"{spec.role}.log", self._workdir)
        self._servers.append(server)
        self._on_change(server.record())
        server.wait_ready()
        self._on_change(server.record())
        return server

    def stop_all(self) -> None:
        # a second Ctrl-C while stopping must not leave the rest running: signals wait until all are stopped
        with _signals_deferred():
            while self._servers:
                server = self._servers.pop()
                server.stop()
                self._on_change(server.record())


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM are held back (and delivered afterwards) while the servers are being stopped."""
    if sys.platform != "linux":  # pragma: no cover
        yield
        return
    signals = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
