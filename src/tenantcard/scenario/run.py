"""One run of the scenario: work directory, servers, plan, trace; the servers are stopped whatever happens
(success, a failed step, Ctrl-C, SIGTERM), and the trace is written even for an interrupted run."""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console

from tenantcard.scenario.errors import Interrupted
from tenantcard.scenario.narrate import RichNarrator, banner, processes_table, summary_table
from tenantcard.scenario.plan import build_plan
from tenantcard.scenario.processes import ProcessGroup
from tenantcard.scenario.runner import StepRunner
from tenantcard.scenario.tenants import TENANTS, Tenant
from tenantcard.scenario.trace import Trace
from tenantcard.scenario.world import Layout, World

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SIGNAL_BASE = 128  # shell convention: 128 + signal number


@dataclass(frozen=True)
class DemoOptions:
    json_path: Path | None
    workdir: Path | None
    holder_pin: str


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` in the main thread while the scenario runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, handler) for sig in watched}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_demo(options: DemoOptions, console: Console) -> int:
    keep = options.workdir is not None
    root = options.workdir if options.workdir is not None else Path(tempfile.mkdtemp(prefix="tenantcard-demo-"))
    layout = Layout(root.resolve())
    layout.create()
    trace = Trace(workdir=str(layout.root), workdir_kept=keep)
    banner(console, str(layout.root), keep)
    exit_code = EXIT_FAILED
    interrupted: Interrupted | None = None
    tenants: list[Tenant] = []
    world: World | None = None
    try:
        with signals_interrupt():
            try:
                with ProcessGroup(layout.root, layout.logs, trace.process) as group:
                    world = World(layout, trace, group, options.holder_pin)
                    tenants = [cls(world) for cls in TENANTS]
                    StepRunner(trace, RichNarrator(console)).run_plan(build_plan(world, tenants))
            except Interrupted as exc:
                interrupted = exc
            except KeyboardInterrupt:
                interrupted = Interrupted("SIGINT")
            finally:
                for t in tenants:
                    t.close()
                if world is not None:
                    world.close()
    finally:
        trace.finished_at = time.time()
        if interrupted is not None:
            trace.error = str(interrupted)
        trace.workdir_kept = keep or not trace.ok
        if options.json_path is not None:
            try:
                trace.write(options.json_path)
            except OSError as exc:
                trace.error = trace.error or f"cannot write the trace: {exc.strerror or type(exc).__name__}"
                console.print(f"[bold red]cannot write the trace to {options.json_path}[/]")
    console.print(summary_table(trace))
    console.print(processes_table(list(trace.processes.values())))
    elapsed = trace.finished_at - trace.started_at
    if interrupted is not None:
        console.print(f"[bold red]{interrupted}[/]: every server was stopped ({elapsed:.1f} s)")
        exit_code = EXIT_SIGNAL_BASE + int(signal.Signals[interrupted.signal_name])
    elif trace.ok:
        console.print(f"[bold green]every expected outcome happened[/] in {elapsed:.1f} s; every server was stopped")
        exit_code = EXIT_OK
    elif trace.error is not None:
        console.print(f"[bold red]{trace.error}[/] ({elapsed:.1f} s)")
    else:
        failed = [s for s in trace.steps if not s.ok]
        console.print(f"[bold red]{len(failed)} step(s) missed their expected outcome[/] ({elapsed:.1f} s)")
    if options.json_path is not None:
        console.print(f"trace: {options.json_path}")
    if trace.workdir_kept:
        console.print(f"state and server logs: {layout.root} (logs in {layout.logs})")
    else:
        shutil.rmtree(layout.root, ignore_errors=True)
    return exit_code
