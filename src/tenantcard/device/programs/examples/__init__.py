"""Example programs in WebAssembly text (docs/programs.md "Examples")."""

from __future__ import annotations

from importlib.resources import files

import wasmtime

EXAMPLES = ("counter", "hmac", "pinsigner")


def example_wat(name: str) -> str:
    if name not in EXAMPLES:
        raise KeyError(name)
    return files(__package__).joinpath(f"{name}.wat").read_text()


def example_wasm(name: str) -> bytes:
    """The example compiled with wasmtime.wat2wasm."""
    return bytes(wasmtime.wat2wasm(example_wat(name)))
