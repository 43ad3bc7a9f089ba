"""The machine-readable trace of a scenario run (``tenantcard demo --json PATH``).

One record per step: phase, actor (a provider, the holder, the operator), step name, expected outcome, whether
that outcome happened, a detail line and the duration. The servers started for the run are listed with their
process ids and log files. Nothing secret goes in: the details are written by the steps, which describe keys,
PINs, codes and credentials only by what they are ("a 6-digit code"), never by their value.
"""

from __future__ import annotations

import enum
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tenantcard import __version__

FORMAT = "tenantcard-demo-trace-v1"


class Phase(enum.IntEnum):
    """The seed's phases, with manufacture (and the servers' start) as phase 0."""

    MANUFACTURE = 0
    INITIALIZATION = 1  # seed Fig. 2
    ACCESS = 2  # seed Fig. 3
    REVOCATION = 3  # seed Fig. 4

    @property
    def title(self) -> str:
        return {
            Phase.MANUFACTURE: "Phase 0: servers and manufacture",
            Phase.INITIALIZATION: "Phase 1: initialization",
            Phase.ACCESS: "Phase 2: access",
            Phase.REVOCATION: "Phase 3: revocation",
        }[self]


class Expect(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"  # the step demonstrates a refusal: it is ok when the refusal happens


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    REFUSED = "refused"  # the refusal the step demonstrates (a secure channel, a login, a lookup refused)
    ERROR = "error"  # anything else went wrong
    NOT_RUN = "not run"  # an earlier step of the same actor did not have its expected outcome


@dataclass(frozen=True)
class StepRecord:
    phase: Phase
    actor: str
    step: str
    expect: Expect
    outcome: Outcome
    detail: str
    started_at: float
    duration: float

    @property
    def ok(self) -> bool:
        """The expected outcome happened."""
        if self.expect is Expect.SUCCESS:
            return self.outcome is Outcome.SUCCEEDED
        return self.outcome is Outcome.REFUSED

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": int(self.phase),
            "phase_name": self.phase.name.lower(),
            "provider": self.actor,
            "step": self.step,
            "expect": self.expect.value,
            "outcome": self.outcome.value,
            "ok": self.ok,
            "detail": self.detail,
            "started_at": round(self.started_at, 3),
            "duration": round(self.duration, 4),
        }


@dataclass(frozen=True)
class ProcessRecord:
    role: str
    pid: int
    argv: tuple[str, ...]
    address: str
    log: str
    exit_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        return data


@dataclass
class Trace:
    """Collects the records of one run; ``write`` saves them as JSON (atomically)."""

    started_at: float = field(default_factory=time.time)
    steps: list[StepRecord] = field(default_factory=list)
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    workdir: str = ""
    workdir_kept: bool = False
    error: str | None = None
    finished_at: float | None = None

    def add(self, record: StepRecord) -> None:
        self.steps.append(record)

    def process(self, record: ProcessRecord) -> None:
        self.processes[record.role] = record

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.steps) and all(s.ok for s in self.steps)

    def of_phase(self, phase: Phase) -> list[StepRecord]:
        return [s for s in self.steps if s.phase is phase]

    def to_json(self) -> dict[str, Any]:
        end = self.finished_at if self.finished_at is not None else time.time()
        return {
            "format": FORMAT,
            "version": __version__,
            "ok": self.ok,
            "error": self.error,
            "started_at": round(self.started_at, 3),
            "duration": round(end - self.started_at, 3),
            "workdir": self.workdir,
            "workdir_kept": self.workdir_kept,
            "processes": [p.to_json() for p in self.processes.values()],
            "steps": [s.to_json() for s in self.steps],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
