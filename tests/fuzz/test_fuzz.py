"""Invariant 5 (DESIGN.md): no malformed APDU, TLV or key data crashes the device or corrupts its store.

Short coverage-guided runs of each atheris harness (tests/fuzz/run.py) in a subprocess, bounded in executions
and time, must end with exit status 0 (no finding). Every seed and every input kept under
tests/fuzz/regressions/TARGET/ (inputs that once broke an invariant) is replayed in-process. The long run is
``bench/bench_fuzz.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fuzz.targets import DeviceTarget, device_seeds, parse_target, parser_seeds

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).resolve().parent / "regressions"

# (target, libFuzzer flags): bounded by executions and by time, whichever ends first; both are passes.
SHORT_RUNS = {
    "parsers": ["-runs=30000", "-max_total_time=15", "-max_len=1024"],
    "device": ["-runs=3000", "-max_total_time=25", "-max_len=2048", "-len_control=0"],
}

STATS = re.compile(r"cov: (\d+) .*exec/s: (\d+)")


def run_harness(
    target: str, flags: list[str], workdir: Path, timeout: float = 240.0
) -> subprocess.CompletedProcess[str]:
    corpus = workdir / "corpus"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            target,
            *flags,
            "-timeout=60",
            "-print_final_stats=1",
            f"-artifact_prefix={workdir}/",
            str(corpus),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("target", sorted(SHORT_RUNS))
def test_short_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    done = run_harness(target, SHORT_RUNS[target], tmp_path)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert done.returncode == 0, f"{target}: finding {crashes}\n{done.stderr[-4000:]}"
    assert not crashes
    # libFuzzer's last status line: the run did execute the instrumented target and gained coverage.
    stats = STATS.findall(done.stderr)
    assert stats, done.stderr[-2000:]
    assert int(stats[-1][0]) > 100


def saved(target: str) -> list[Path]:
    folder = REGRESSIONS / target
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.exists() else []


@pytest.fixture(scope="module")
def device_target(tmp_path_factory: pytest.TempPathFactory) -> DeviceTarget:
    return DeviceTarget(tmp_path_factory.mktemp("device-target"))


def replay(target: Callable[[bytes], None], inputs: list[bytes]) -> int:
    for data in inputs:
        target(data)
    return len(inputs)


def test_parser_seeds_and_regressions_replay() -> None:
    inputs = parser_seeds() + [p.read_bytes() for p in saved("parsers")]
    assert replay(parse_target, inputs) == len(inputs)


def test_device_seeds_and_regressions_replay(device_target: DeviceTarget) -> None:
    inputs = device_seeds() + [p.read_bytes() for p in saved("device")]
    assert replay(device_target, inputs) == len(inputs)
