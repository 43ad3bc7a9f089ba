"""The wasmtime sandbox: one engine per device process, one store (and instance) per program per card session.

Limits of a call (docs/programs.md "Limits"):
- instructions: wasmtime fuel (wasmtime docs ``Config::consume_fuel``), refilled to the manifest's budget at
  the start of each call;
- wall-clock: epoch interruption (``Config::epoch_interruption``): a daemon thread ticks the engine's epoch
  every ``TICK_SECONDS`` and each call sets its deadline in ticks;
- memory: ``Store::limiter`` caps linear memory at the manifest's figure, which the device capped at the
  container's quota when it installed the program; one instance, one memory, one table per store;
- stack: ``Config::max_wasm_stack``.
Stores are never shared between programs, containers or sessions. Compiled modules are cached in memory
only, keyed by the SHA-256 of the (validated) binary: no machine code is ever read from outside or stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import wasmtime

from tenantcard.device.functions.base import ObjectStore, Rights
from tenantcard.device.programs.hostapi import (
    BufferedObjects,
    HostCall,
    HostEnv,
    PrivateKey,
    ProgramKeys,
    ProgramTrap,
)
from tenantcard.device.programs.validate import WASM_PAGE, ModuleRejected, check_binary, check_module
from tenantcard.wire.programs import ProgramSW, valid_program_sw

TICK_SECONDS = 0.005
MAX_WASM_STACK = 256 * 1024  # bytes of native stack wasm code may use (wasmtime docs Config::max_wasm_stack)
MAX_TABLE_ELEMENTS = 10_000
MODULE_CACHE_SIZE = 64

_TRAP_SW: dict[wasmtime.TrapCode, ProgramSW] = {
    wasmtime.TrapCode.OUT_OF_FUEL: ProgramSW.OUT_OF_FUEL,
    wasmtime.TrapCode.INTERRUPT: ProgramSW.DEADLINE,
    wasmtime.TrapCode.STACK_OVERFLOW: ProgramSW.STACK_OVERFLOW,
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: ProgramSW.MEMORY_OUT_OF_BOUNDS,
    wasmtime.TrapCode.HEAP_MISALIGNED: ProgramSW.MEMORY_OUT_OF_BOUNDS,
}


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int
    fuel: int
    deadline_ms: int


def engine_config() -> wasmtime.Config:
    """The engine's configuration: the features a program may use (WebAssembly 1.0 plus bulk memory, multi
    value, sign extension and reference types) and the metering it runs under."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.max_wasm_stack = MAX_WASM_STACK
    config.wasm_threads = False
    config.shared_memory = False
    config.wasm_multi_memory = False
    config.wasm_simd = False
    config.wasm_relaxed_simd = False
    config.wasm_memory64 = False
    config.wasm_gc = False
    config.wasm_function_references = False
    config.wasm_exceptions = False
    config.wasm_tail_call = False
    config.wasm_stack_switching = False
    config.wasm_wide_arithmetic = False
    config.wasm_custom_page_sizes = False
    config.wasm_component_model = False
    config.cranelift_nan_canonicalization = True  # deterministic results across hosts
    config.parallel_compilation = False
    return config


class Sandbox:
    """A wasmtime engine, its epoch ticker and its cache of compiled modules."""

    def __init__(self, tick_seconds: float = TICK_SECONDS) -> None:
        self.engine = wasmtime.Engine(engine_config())
        self.tick_seconds = tick_seconds
        self._cache: OrderedDict[bytes, wasmtime.Module] = OrderedDict()
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._running = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Marks guest code running: the epoch ticks only then (an idle device does not wake up)."""
        with self._lock:
            if self._ticker is None or not self._ticker.is_alive():
                self._stop.clear()
                self._ticker = threading.Thread(target=self._tick, name="wasm-epoch", daemon=True)
                self._ticker.start()
            self._running += 1
            self._busy.set()
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    self._busy.clear()

    def _tick(self) -> None:
        while not self._stop.is_set():
            self._busy.wait()
            if self._stop.wait(self.tick_seconds):
                return
            self.engine.increment_epoch()

    def close(self) -> None:
        self._stop.set()
        self._busy.set()
        if self._ticker is not None:
            self._ticker.join()

    def compile(self, wasm: bytes, memory_bytes: int) -> wasmtime.Module:
        """Compile and check ``wasm`` (ModuleRejected when it is not acceptable); cached by its hash."""
        check_binary(wasm)
        digest = hashlib.sha256(wasm).digest()
        with self._lock:
            module = self._cache.get(digest)
            if module is not None:
                self._cache.move_to_end(digest)
        if module is None:
            try:
                module = wasmtime.Module(self.engine, wasm)
            except wasmtime.WasmtimeError as exc:
                raise ModuleRejected(f"module does not validate: {_first_line(exc)}") from exc
        check_module(module, memory_bytes)
        with self._lock:
            self._cache[digest] = module
            while len(self._cache) > MODULE_CACHE_SIZE:
                self._cache.popitem(last=False)
        return module

    def instantiate(self, module: wasmtime.Module, limits: Limits) -> ProgramInstance:
        with self.running():
            return ProgramInstance(self, module, limits)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


@dataclass(frozen=True, slots=True)
class CallResult:
    sw: int
    data: bytes


class ProgramInstance:
    """One program instantiated in its own store, kept for a card session. Its linear memory persists between
    calls of that session (like Java Card CLEAR_ON_DESELECT transient memory); after a trap it is unusable
    (``broken``) and the caller instantiates afresh."""

    def __init__(self, sandbox: Sandbox, module: wasmtime.Module, limits: Limits) -> None:
        self._sandbox = sandbox
        self.limits = limits
        self.broken = False
        self.store = wasmtime.Store(sandbox.engine)
        self.store.set_limits(
            memory_size=limits.memory_bytes, table_elements=MAX_TABLE_ELEMENTS, instances=1, tables=1, memories=1
        )
        self._env = HostEnv(self.store)
        self._parsed_keys: dict[bytes, PrivateKey] = {}
        linker = wasmtime.Linker(sandbox.engine)
        self._env.define(linker)
        # Start functions (WebAssembly core spec §4.5.4) run under the same limits as a call.
        self._arm()
        try:
            self._instance = linker.instantiate(self.store, module)
        except (wasmtime.Trap, wasmtime.WasmtimeError, ProgramTrap) as exc:
            self.broken = True
            raise ProgramTrap(self._classify(exc)) from exc
        exports = self._instance.exports(self.store)
        memory = exports["memory"]
        invoke = exports["invoke"]
        assert isinstance(memory, wasmtime.Memory) and isinstance(invoke, wasmtime.Func)
        self._env.memory = memory
        self._invoke = invoke
        self._initial_memory = memory.data_len(self.store)

    def _arm(self) -> None:
        self.store.set_fuel(self.limits.fuel)
        ticks = math.ceil(self.limits.deadline_ms / 1000 / self._sandbox.tick_seconds) + 1
        self.store.set_epoch_deadline(ticks)

    def memory_size(self) -> int:
        assert self._env.memory is not None
        return self._env.memory.data_len(self.store)

    def _classify(self, exc: BaseException) -> ProgramSW:
        if isinstance(exc, ProgramTrap):
            return exc.sw
        if isinstance(exc, wasmtime.Trap):
            code = exc.trap_code
            if code is not None and code in _TRAP_SW:
                sw = _TRAP_SW[code]
                if sw == ProgramSW.MEMORY_OUT_OF_BOUNDS and self._at_memory_limit():
                    return ProgramSW.MEMORY_LIMIT
                return sw
            return ProgramSW.MEMORY_LIMIT if self._at_memory_limit() else ProgramSW.TRAP
        # WasmtimeError: instantiation refused by the store limiter (memory or table over the limits)
        return ProgramSW.MEMORY_LIMIT

    def _at_memory_limit(self) -> bool:
        """True when the program grew its linear memory up to the limit: a trap then is taken as the program
        running out of memory (memory.grow answers -1 under the limiter, WebAssembly core spec §4.4.7)."""
        if self._env.memory is None:
            return False
        size = self.memory_size()
        return size > self._initial_memory and size + WASM_PAGE > self.limits.memory_bytes

    def call(
        self,
        store: ObjectStore,
        data_kind: str,
        rights: Rights,
        random: Callable[[int], bytes],
        p2: int,
        data: bytes,
    ) -> CallResult:
        """Run ``invoke(p2, len(data))``. Writes of the program reach ``store`` only if it returns normally
        with a valid status word; raises ProgramTrap otherwise (and the instance is then broken)."""
        if self.broken:
            raise ProgramTrap(ProgramSW.TRAP, "instance is broken")
        objects = BufferedObjects(store, data_kind)
        self._env.call = HostCall(objects, ProgramKeys(store, self._parsed_keys), rights, random, data)
        self._arm()
        try:
            with self._sandbox.running():
                result = self._invoke(self.store, p2, len(data))
        except (wasmtime.Trap, wasmtime.WasmtimeError, ProgramTrap) as exc:
            self.broken = True
            raise ProgramTrap(self._classify(exc)) from None
        except BaseException:
            self.broken = True  # e.g. the store failed under a host function: the guest stopped mid-call
            raise
        finally:
            call, self._env.call = self._env.call, None
        if not isinstance(result, int) or not valid_program_sw(result & 0xFFFF) or result >> 16:
            self.broken = True
            raise ProgramTrap(ProgramSW.BAD_STATUS)
        objects.commit()
        return CallResult(result, call.output if call is not None else b"")


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process's sandbox (one engine, one epoch ticker) shared by every container and session."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox()
        return _default
