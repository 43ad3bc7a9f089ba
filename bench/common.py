"""What every benchmark module returns, and how figures are timed against a baseline of the same run.

A benchmark module is ``bench/bench_<topic>.py`` with ``run(quick: bool) -> list[Figure]``. ``value`` and
``baseline`` are measured in the same run, on the same machine, so their ratio means something even when
absolute times drift on a shared, noisy machine.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    name: str  # e.g. "scp03.card_session_setup"
    value: float  # what tenantcard does
    baseline: float  # the floor or reference measured in the same run
    unit: str  # unit of value and baseline, e.g. "us/op", "ops/s", "MiB"
    description: str  # what value is and what baseline is
    aim: str = ""  # the target, e.g. "ratio <= 2.0"
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 4)}


def per_op(name: str, value: float, baseline: float, description: str, aim: str = "") -> Figure:
    """A figure of seconds per operation (``value`` and ``baseline``), reported in microseconds."""
    return Figure(name, value * 1e6, baseline * 1e6, "us/op", description, aim=aim)


def per_second(
    name: str, seconds: float, baseline_seconds: float, description: str, aim: str = "", *, unit: str = "ops/s"
) -> Figure:
    """A throughput figure from seconds per operation (``seconds`` and ``baseline_seconds``): higher is better."""
    return Figure(name, 1 / seconds, 1 / baseline_seconds, unit, description, aim=aim, higher_is_better=True)


def best_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 100) -> float:
    """Median over ``repeat`` rounds of the mean seconds per call of ``fn`` over ``number`` calls."""
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    return statistics.median(rounds)


def interleaved(
    candidate: Callable[[], object], baseline: Callable[[], object], *, repeat: int = 7, number: int = 100
) -> tuple[float, float]:
    """Seconds per call of candidate and baseline, measured in alternating rounds so that machine noise
    hits both alike; medians of the rounds."""
    c_rounds: list[float] = []
    b_rounds: list[float] = []
    for _ in range(repeat):
        for fn, rounds in ((candidate, c_rounds), (baseline, b_rounds)):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            rounds.append((time.perf_counter() - start) / number)
    return statistics.median(c_rounds), statistics.median(b_rounds)


def compared(
    name: str,
    candidate: Callable[[], object],
    baseline: Callable[[], object],
    description: str,
    aim: str = "",
    *,
    repeat: int = 7,
    number: int = 100,
) -> Figure:
    """The ``per_op`` figure of ``candidate`` against ``baseline``, timed ``interleaved``."""
    value, floor = interleaved(candidate, baseline, repeat=repeat, number=number)
    return per_op(name, value, floor, description, aim)


PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
