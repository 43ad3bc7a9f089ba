"""The long coverage-guided fuzzing run (atheris / libFuzzer) of the two harnesses of tests/fuzz/.

Each target runs in its own process for a fixed time, starting from its seeds. Figures:

- ``fuzz.device.exec_rate``: executions per second of the whole-device harness (a fresh sealed store per
  input, a secure channel opened, up to eight wrapped commands, a reopen and integrity check), against the
  parser harness' executions per second in the same run (the floor of the instrumented Python per input).
- ``fuzz.<target>.coverage``: edges covered at the end of the run against the edges the seeds alone cover
  (libFuzzer's ``INITED cov:``): what the mutations added.

A finding (libFuzzer writes ``crash-*`` and exits non-zero) fails the benchmark, naming the saved input; copy it
under tests/fuzz/regressions/TARGET/ once fixed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import Figure

ROOT = Path(__file__).resolve().parents[1]
FLAGS = {
    "parsers": ["-max_len=1024"],
    "device": ["-max_len=2048", "-len_control=0"],
}
INITED = re.compile(r"INITED cov: (\d+)")
DONE = re.compile(r"DONE\s+cov: (\d+) .*exec/s: (\d+)")
EXECUTED = re.compile(r"stat::number_of_executed_units:\s+(\d+)")


@dataclass(frozen=True)
class FuzzRun:
    target: str
    seconds: int
    executions: int
    exec_per_s: float
    seed_coverage: int
    coverage: int


def fuzz(target: str, seconds: int, workdir: Path) -> FuzzRun:
    corpus = workdir / target
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            target,
            *FLAGS[target],
            f"-max_total_time={seconds}",
            "-timeout=60",
            "-print_final_stats=1",
            f"-artifact_prefix={workdir}/{target}-",
            str(corpus),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 300,
    )
    crashes = sorted(str(p) for p in workdir.glob(f"{target}-*") if p.is_file())
    if done.returncode != 0 or crashes:
        raise RuntimeError(f"fuzz target {target!r} found an input that breaks it: {crashes}\n{done.stderr[-3000:]}")
    inited = INITED.search(done.stderr)
    final = DONE.findall(done.stderr)
    executed = EXECUTED.search(done.stderr)
    if inited is None or not final or executed is None:
        raise RuntimeError(f"no libFuzzer statistics from {target!r}:\n{done.stderr[-2000:]}")
    executions = int(executed.group(1))
    return FuzzRun(target, seconds, executions, executions / seconds, int(inited.group(1)), int(final[-1][0]))


def run(quick: bool) -> list[Figure]:
    seconds = 20 if quick else 300
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        work = Path(tmp)
        runs = {name: fuzz(name, seconds, work) for name in ("parsers", "device")}
    device, parsers = runs["device"], runs["parsers"]
    for r in runs.values():
        print(f"   {r.target}: {r.executions} executions in {r.seconds} s, coverage {r.seed_coverage} -> {r.coverage}")
    figures = [
        Figure(
            "fuzz.device.exec_rate",
            device.exec_per_s,
            parsers.exec_per_s,
            "exec/s",
            f"whole-device harness executions per second over {seconds} s (store copy, SCP03, up to 8 wrapped "
            "commands, reopen + check) vs the parser harness in the same run",
            higher_is_better=True,
        ),
    ]
    for r in (device, parsers):
        figures.append(
            Figure(
                f"fuzz.{r.target}.coverage",
                float(r.coverage),
                float(r.seed_coverage),
                "edges",
                f"libFuzzer edges covered after {r.seconds} s ({r.executions} executions) vs the seeds alone",
                higher_is_better=True,
            )
        )
    return figures
