"""Runs every benchmark module (bench/bench_*.py) and writes bench/results.json and bench/results.md.

bench/run            full run
bench/run --quick    fewer rounds (a smoke run)
bench/run -k tcp     only modules whose name contains "tcp"
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import Figure

BENCH_DIR = Path(__file__).resolve().parent


def machine() -> dict[str, Any]:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
    }


def markdown(figures: list[Figure], meta: dict[str, Any]) -> str:
    lines = [
        "# tenantcard benchmark results",
        "",
        f"Run {meta['finished']} on {meta['machine']['cpu']} ({meta['machine']['cores']} cores, "
        f"{meta['machine']['memory_gib']} GiB), Python {meta['machine']['python']}.",
        "Each figure is compared with a baseline measured in the same run; the ratio is value / baseline.",
        "",
        "| figure | value | baseline | unit | ratio | aim | what |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.name} | {f.value:.4g} | {f.baseline:.4g} | {f.unit} | {f.ratio:.3f} | {f.aim} | {f.description} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run")
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run")
    parser.add_argument("-k", default="", help="only modules whose name contains this")
    parser.add_argument("--out", default=str(BENCH_DIR), help="folder for results.json and results.md")
    args = parser.parse_args()
    modules = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py") if args.k in p.stem)
    figures: list[Figure] = []
    failures: dict[str, str] = {}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for name in modules:
        print(f"== {name}", flush=True)
        try:
            mod = importlib.import_module(f"bench.{name}")
            got: list[Figure] = mod.run(args.quick)
        except Exception as exc:
            failures[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            continue
        for f in got:
            print(f"   {f.name}: {f.value:.4g} {f.unit} vs baseline {f.baseline:.4g} -> ratio {f.ratio:.3f} {f.aim}")
        figures.extend(got)
    meta = {
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "machine": machine(),
        "failures": failures,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({**meta, "figures": [f.to_json() for f in figures]}, indent=2) + "\n")
    (out / "results.md").write_text(markdown(figures, meta))
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
