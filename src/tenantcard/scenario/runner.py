"""Run a plan of steps: time each one, record its outcome in the trace, tell the narrator.

A step is an action that returns a one-line detail. A step that expects a refusal raises ``Refused`` when the
refusal it demonstrates happened; returning normally then means the attempt went through, which is a failure
of the scenario. Once a step of an actor misses its expected outcome, that actor's later steps are not run
(they would only fail for the same reason) and are recorded as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tenantcard.scenario.errors import Interrupted
from tenantcard.scenario.trace import Expect, Outcome, Phase, StepRecord, Trace


class Refused(Exception):
    """Raised by an expect-failure step when the refusal it demonstrates happened."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Step:
    phase: Phase
    actor: str
    name: str
    action: Callable[[], str]
    expect: Expect = Expect.SUCCESS
    needs: tuple[str, ...] = ()  # other actors whose earlier failure makes this step pointless


class Narrator(Protocol):
    def begin(self, total: int) -> None: ...

    def step_started(self, step: Step) -> None: ...

    def step_finished(self, record: StepRecord) -> None: ...

    def phase_finished(self, phase: Phase, records: Sequence[StepRecord]) -> None: ...

    def end(self) -> None: ...


def describe(exc: BaseException) -> str:
    """One line for an unexpected error: its type and message (every layer keeps secrets out of messages)."""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}"[:300]


class StepRunner:
    def __init__(self, trace: Trace, narrator: Narrator, clock: Callable[[], float] = time.time) -> None:
        self._trace = trace
        self._narrator = narrator
        self._clock = clock
        self._broken: set[str] = set()

    def run_plan(self, steps: Sequence[Step]) -> None:
        self._narrator.begin(len(steps))
        try:
            for i, step in enumerate(steps):
                self.run(step)
                last_of_phase = i + 1 == len(steps) or steps[i + 1].phase is not step.phase
                if last_of_phase:
                    self._narrator.phase_finished(step.phase, self._trace.of_phase(step.phase))
        finally:
            self._narrator.end()

    def run(self, step: Step) -> StepRecord:
        self._narrator.step_started(step)
        started = self._clock()
        t0 = time.perf_counter()
        blocked = sorted({step.actor, *step.needs} & self._broken)
        if blocked:
            outcome, detail = Outcome.NOT_RUN, f"not run: an earlier step of {', '.join(blocked)} failed"
        else:
            outcome, detail = self._attempt(step)
        record = StepRecord(
            step.phase, step.actor, step.name, step.expect, outcome, detail, started, time.perf_counter() - t0
        )
        if not record.ok:
            self._broken.add(step.actor)
        self._trace.add(record)
        self._narrator.step_finished(record)
        return record

    @staticmethod
    def _attempt(step: Step) -> tuple[Outcome, str]:
        try:
            detail = step.action()
        except Refused as refusal:
            return Outcome.REFUSED, refusal.detail
        except (Interrupted, KeyboardInterrupt):
            raise
        except Exception as exc:  # any other failure is the step's outcome, recorded, never a traceback
            return Outcome.ERROR, describe(exc)
        if step.expect is Expect.FAILURE:
            return Outcome.SUCCEEDED, f"NOT refused: {detail}"
        return Outcome.SUCCEEDED, detail
