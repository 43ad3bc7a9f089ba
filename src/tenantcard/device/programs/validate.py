"""What a module must be to run in a container (docs/programs.md "What the device accepts").

The engine's feature flags (sandbox.py) already refuse threads, shared memory, multiple memories, SIMD,
memory64, GC, exceptions and the component model at compile time; this module checks the rest: a
WebAssembly 1.0 binary (never text, never precompiled code), only host API imports of the exact types, and
exactly the documented exports.
"""

from __future__ import annotations

import wasmtime

from tenantcard.device.programs.hostapi import HOST_FUNCTIONS, HOST_MODULE, host_func_type

WASM_MAGIC = b"\x00asm\x01\x00\x00\x00"  # WebAssembly core spec §5.5.16: magic and version 1
WASM_PAGE = 65536
REQUIRED_EXPORTS = {"memory", "invoke"}
# Immutable i32 globals that wasm-ld exports when asked (--export=__heap_base); harmless, so tolerated.
LINKER_GLOBALS = {"__data_end", "__heap_base"}


class ModuleRejected(Exception):
    """The module is not acceptable; the message says why (it carries no module bytes)."""


def _same_functype(a: wasmtime.FuncType, b: wasmtime.FuncType) -> bool:
    return [str(t) for t in a.params] == [str(t) for t in b.params] and [str(t) for t in a.results] == [
        str(t) for t in b.results
    ]


def check_binary(wasm: bytes) -> None:
    if not wasm.startswith(WASM_MAGIC):
        raise ModuleRejected("not a WebAssembly 1.0 binary module")


def check_module(module: wasmtime.Module, memory_bytes: int) -> None:
    """Imports, exports and memory of a compiled module against the host API and the manifest's memory."""
    for imp in module.imports:
        if imp.module != HOST_MODULE or imp.name not in HOST_FUNCTIONS:
            raise ModuleRejected(f"import {imp.module}.{imp.name} is not part of the host API")
        ty = imp.type
        if not isinstance(ty, wasmtime.FuncType) or not _same_functype(ty, host_func_type(imp.name)):
            raise ModuleRejected(f"import {imp.module}.{imp.name} has the wrong type")
    names = [exp.name for exp in module.exports]
    if len(names) != len(set(names)):
        raise ModuleRejected("duplicate export")
    missing = REQUIRED_EXPORTS - set(names)
    if missing:
        raise ModuleRejected(f"module does not export {', '.join(sorted(missing))}")
    for exp in module.exports:
        ty = exp.type
        if exp.name == "memory":
            if not isinstance(ty, wasmtime.MemoryType):
                raise ModuleRejected("export memory is not a memory")
            if ty.is_64 or ty.is_shared:
                raise ModuleRejected("memory must be a 32-bit, unshared memory")
            if ty.limits.min * WASM_PAGE > memory_bytes:
                raise ModuleRejected("initial memory exceeds the memory the manifest requests")
        elif exp.name == "invoke":
            expected = wasmtime.FuncType([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i32()])
            if not isinstance(ty, wasmtime.FuncType) or not _same_functype(ty, expected):
                raise ModuleRejected("invoke must be (func (param i32 i32) (result i32))")
        elif exp.name in LINKER_GLOBALS:
            if not isinstance(ty, wasmtime.GlobalType) or ty.mutable or str(ty.content) != "i32":
                raise ModuleRejected(f"export {exp.name} must be an immutable i32 global")
        else:
            raise ModuleRejected(f"export {exp.name} is not part of the program interface")
