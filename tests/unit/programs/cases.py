"""Hostile and broken modules (WebAssembly text) that the sandbox and the validator must contain."""

from __future__ import annotations

import wasmtime

HOST = """
  (import "tenantcard" "input" (func $input (param i32 i32) (result i32)))
  (import "tenantcard" "output" (func $output (param i32 i32) (result i32)))
  (import "tenantcard" "obj_get" (func $obj_get (param i32 i32 i32 i32) (result i32)))
  (import "tenantcard" "obj_put" (func $obj_put (param i32 i32 i32 i32) (result i32)))
  (import "tenantcard" "mac" (func $mac (param i32 i32 i32 i32 i32) (result i32)))
"""

# P2 selects the misbehaviour; each one first writes the object "mark" so that a test can show the write
# was never committed.
HOSTILE = f"""
(module {HOST}
  (memory (export "memory") 1)
  (data (i32.const 0) "mark")
  (func $rec (param i32) (result i32) (i32.add (call $rec (local.get 0)) (i32.const 1)))
  (func (export "invoke") (param $p2 i32) (param $len i32) (result i32)
    (drop (call $obj_put (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 4)))
    (if (i32.eq (local.get $p2) (i32.const 1)) (then (loop $l (br $l))))
    (if (i32.eq (local.get $p2) (i32.const 2)) (then (return (call $rec (i32.const 0)))))
    (if (i32.eq (local.get $p2) (i32.const 3))
      (then
        (block $full (loop $grow
          (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
          (br $grow)))
        (unreachable)))
    (if (i32.eq (local.get $p2) (i32.const 4))
      (then (return (call $output (i32.const 0xFFFFFFF0) (i32.const 64)))))
    (if (i32.eq (local.get $p2) (i32.const 5))
      (then (return (call $obj_get (i32.const 0) (i32.const 4) (i32.const 65530) (i32.const 100)))))
    (if (i32.eq (local.get $p2) (i32.const 6))
      (then (return (i32.load (i32.const 70000)))))
    (if (i32.eq (local.get $p2) (i32.const 7)) (then (unreachable)))
    (if (i32.eq (local.get $p2) (i32.const 8)) (then (return (i32.const 0x6100))))
    (if (i32.eq (local.get $p2) (i32.const 9))
      (then (return (call $mac (i32.const 1) (i32.const 0) (i32.const -5) (i32.const 0) (i32.const 32)))))
    (i32.const 0x9000)))
"""

EXTRA_IMPORT = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000)))
"""

WRONG_IMPORT_TYPE = """
(module
  (import "tenantcard" "output" (func (param i64) (result i32)))
  (memory (export "memory") 1)
  (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000)))
"""

EXTRA_EXPORT = """
(module
  (memory (export "memory") 1)
  (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000))
  (func (export "backdoor")))
"""

NO_INVOKE = """
(module (memory (export "memory") 1) (func (export "run") (param i32 i32) (result i32) (i32.const 0x9000)))
"""

IMPORTED_MEMORY = """
(module
  (import "tenantcard" "memory" (memory 1))
  (export "memory" (memory 0))
  (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000)))
"""

SIMD = """
(module
  (memory (export "memory") 1)
  (func (export "invoke") (param i32 i32) (result i32)
    (drop (v128.const i64x2 0 0)) (i32.const 0x9000)))
"""

SHARED_MEMORY = """
(module
  (memory (export "memory") 1 1 shared)
  (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000)))
"""

MULTI_MEMORY = """
(module
  (memory (export "memory") 1)
  (memory 1)
  (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000)))
"""

BIG_MEMORY = """
(module
  (memory (export "memory") 64)
  (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000)))
"""

START_LOOP = """
(module
  (memory (export "memory") 1)
  (func $start (loop $l (br $l)))
  (start $start)
  (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000)))
"""

LINKER_GLOBALS = """
(module
  (memory (export "memory") 1)
  (global (export "__heap_base") i32 (i32.const 1024))
  (global (export "__data_end") i32 (i32.const 1024))
  (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000)))
"""


def wasm(wat: str) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))
