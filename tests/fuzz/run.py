"""Coverage-guided fuzzing of one target with atheris (libFuzzer):

    python -m tests.fuzz.run TARGET [libFuzzer flags] [CORPUS_DIR ...]

TARGET is a name of ``tests.fuzz.targets.TARGETS`` (``parsers``, ``device``). tenantcard and the target module
are imported under ``atheris.instrument_imports`` so that libFuzzer sees their branch coverage. Empty corpus
directories given on the command line are first filled with the target's seeds. A finding (an exception out
of the target) makes libFuzzer write the input to ``-artifact_prefix`` and exit non-zero; such inputs are kept
under tests/fuzz/regressions/TARGET/ and replayed by tests/fuzz/test_fuzz.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m tests.fuzz.run TARGET [libFuzzer flags] [CORPUS_DIR ...]")
    name = argv[1]
    with atheris.instrument_imports(include=["tenantcard", "tests.fuzz.targets"]):
        from tests.fuzz import targets
    if name not in targets.TARGETS:
        raise SystemExit(f"unknown target {name!r}; one of {sorted(targets.TARGETS)}")
    target, seeds = targets.TARGETS[name]()
    rest = argv[2:]
    for arg in rest:
        if not arg.startswith("-"):
            corpus = Path(arg)
            corpus.mkdir(parents=True, exist_ok=True)
            if not any(corpus.iterdir()):
                for i, seed in enumerate(seeds):
                    (corpus / f"seed-{i:03d}").write_bytes(seed)
    atheris.Setup([argv[0], *rest], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
