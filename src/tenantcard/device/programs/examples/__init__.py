"""Example programs (docs/programs.md "Examples"): WebAssembly text, and two of them also in C with the host
API header ``tenantcard.h``."""

from __future__ import annotations

from importlib.resources import files

import wasmtime

EXAMPLES = ("counter", "hmac", "pinsigner")
C_EXAMPLES = ("counter", "hmac")  # the same programs as counter.wat and hmac.wat
C_HEADER = "tenantcard.h"


def example_wat(name: str) -> str:
    if name not in EXAMPLES:
        raise KeyError(name)
    return files(__package__).joinpath(f"{name}.wat").read_text()


def example_wasm(name: str) -> bytes:
    """The example compiled with wasmtime.wat2wasm."""
    return bytes(wasmtime.wat2wasm(example_wat(name)))


def example_c(name: str) -> str:
    """The C source of an example (it includes ``C_HEADER``)."""
    if name not in C_EXAMPLES:
        raise KeyError(name)
    return files(__package__).joinpath(f"{name}.c").read_text()


def c_header() -> str:
    """``tenantcard.h``: the host API declared for C."""
    return files(__package__).joinpath(C_HEADER).read_text()
