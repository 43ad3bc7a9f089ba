"""The scenario told with rich: a progress display while it runs, a table at the end of each phase, a summary."""

from __future__ import annotations

import signal
from collections.abc import Sequence

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tenantcard.scenario.runner import Step
from tenantcard.scenario.trace import Expect, Outcome, Phase, ProcessRecord, StepRecord, Trace

ACTOR_NAMES = {
    "operator": "Operator",
    "device": "Device",
    "holder": "Holder",
    "idp": "IdP",
    "bank": "Bank",
    "mail": "Mail",
    "vpn": "VPN",
}


def actor_name(key: str) -> str:
    return ACTOR_NAMES.get(key, key)


def result_text(record: StepRecord) -> str:
    if record.outcome is Outcome.NOT_RUN:
        return "[yellow]- not run[/]"
    if record.ok:
        return "[green]✓ done[/]" if record.expect is Expect.SUCCESS else "[green]✓ refused[/]"
    if record.expect is Expect.FAILURE and record.outcome is Outcome.SUCCEEDED:
        return "[bold red]✗ not refused[/]"
    return "[bold red]✗ failed[/]"


class RichNarrator:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def begin(self, total: int) -> None:
        # auto_refresh off: no refresh thread (servers are forked while the display runs)
        self._progress = Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
            auto_refresh=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("starting", total=total)

    def step_started(self, step: Step) -> None:
        if self._progress is not None and self._task is not None:
            label = f"phase {int(step.phase)} · {actor_name(step.actor)}: {step.name}"
            self._progress.update(self._task, description=label, refresh=True)

    def step_finished(self, record: StepRecord) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, refresh=True)

    def phase_finished(self, phase: Phase, records: Sequence[StepRecord]) -> None:
        # the step and what happened share a column: it stays readable on an 80-column terminal or CI log
        table = Table(title=phase.title, title_justify="left", expand=True, show_lines=True)
        table.add_column("who", no_wrap=True)
        table.add_column("result", no_wrap=True)
        table.add_column("step: what happened", ratio=1)
        table.add_column("s", justify="right", no_wrap=True)
        for r in records:
            text = Text(r.step, style="bold")
            text.append("\n" + r.detail, style="dim" if r.ok else "red")
            table.add_row(actor_name(r.actor), result_text(r), text, f"{r.duration:.2f}")
        self._print(table)

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _print(self, renderable: object) -> None:
        console = self._progress.console if self._progress is not None else self._console
        console.print(renderable)


def summary_table(trace: Trace) -> Table:
    """One row per actor, one column per phase: expected outcomes that happened / steps."""
    phases = list(Phase)
    table = Table(title="Summary", title_justify="left")
    table.add_column("who", no_wrap=True)
    for phase in phases:
        table.add_column(f"phase {int(phase)}", justify="center")
    table.add_column("all", justify="center")
    actors: list[str] = []
    for r in trace.steps:
        if r.actor not in actors:
            actors.append(r.actor)
    for actor in actors:
        cells = []
        mine = [r for r in trace.steps if r.actor == actor]
        for phase in phases:
            rows = [r for r in mine if r.phase is phase]
            cells.append(_cell(rows) if rows else "")
        table.add_row(actor_name(actor), *cells, _cell(mine))
    return table


def _cell(rows: Sequence[StepRecord]) -> str:
    good = sum(r.ok for r in rows)
    colour = "green" if good == len(rows) else "bold red"
    return f"[{colour}]{good}/{len(rows)}[/]"


def processes_table(processes: Sequence[ProcessRecord]) -> Table:
    table = Table(title="Servers (real processes on loopback)", title_justify="left")
    for column in ("role", "pid", "address", "exit status"):
        table.add_column(column, overflow="fold")
    for p in processes:
        if p.exit_code is None:
            status = "running"
        elif p.exit_code < 0:  # uvicorn re-raises the SIGTERM it handled, once it has shut down
            status = f"stopped ({signal.Signals(-p.exit_code).name})"
        else:
            status = f"stopped (exit {p.exit_code})"
        table.add_row(p.role, str(p.pid), p.address or "-", status)
    return table


def banner(console: Console, workdir: str, kept: bool) -> None:
    where = f"state kept in {workdir}" if kept else "state in a temporary directory, removed at the end"
    console.print(
        Panel(
            "One device with three secure containers; an operator that manufactures it and places authorizations; "
            "an identity provider that authenticates the device; three providers (a bank, a mail service, a VPN) "
            "that take a container each, use it, and lose it when the holder reports the device lost.\n"
            f"[dim]{where}[/]",
            title="tenantcard demo",
        )
    )
