"""The sandbox on its own: limits, traps and their status words, buffered writes, module validation.

The store here is a dict-backed ObjectStore: the sandbox only needs the protocol (the function tests use the
real sealed store)."""

from __future__ import annotations

import os
import time

import pytest
from cryptography.hazmat.primitives import hashes, hmac

from tenantcard.device.functions.base import Rights
from tenantcard.device.programs.examples import EXAMPLES, example_wasm
from tenantcard.device.programs.hostapi import KEY_KIND, ProgramTrap, data_kind, encode_key
from tenantcard.device.programs.sandbox import Limits, Sandbox
from tenantcard.device.programs.validate import ModuleRejected
from tenantcard.wire.programs import ProgramKeyType, ProgramSW
from tenantcard.wire.sw import SW, ApduError
from tests.unit.programs import cases

PROVIDER = Rights(provider=True, holder=False, security_level=0x33)
KIND = data_kind(1)


class DictStore:
    def __init__(self, quota: int = 64 * 1024) -> None:
        self.objects: dict[tuple[str, bytes], bytes] = {}
        self.quota = quota

    def get(self, kind: str, name: bytes) -> bytes | None:
        return self.objects.get((kind, name))

    def put(self, kind: str, name: bytes, value: bytes) -> None:
        old = self.objects.get((kind, name))
        if self.used_bytes() + len(value) - (len(old) if old is not None else 0) > self.quota:
            raise ApduError(SW.NOT_ENOUGH_MEMORY)
        self.objects[(kind, name)] = value

    def delete(self, kind: str, name: bytes) -> bool:
        return self.objects.pop((kind, name), None) is not None

    def names(self, kind: str) -> list[bytes]:
        return [n for k, n in self.objects if k == kind]

    def used_bytes(self) -> int:
        return sum(len(k) + len(n) + len(v) for (k, n), v in self.objects.items())

    def quota_bytes(self) -> int:
        return self.quota


@pytest.fixture(scope="module")
def sandbox():
    s = Sandbox()
    yield s
    s.close()


LIMITS = Limits(memory_bytes=4 * 65536, fuel=2_000_000, deadline_ms=200)


def run(sandbox: Sandbox, wat_or_wasm: str | bytes, store: DictStore, p2: int = 0, data: bytes = b"", limits=LIMITS):
    wasm = cases.wasm(wat_or_wasm) if isinstance(wat_or_wasm, str) else wat_or_wasm
    instance = sandbox.instantiate(sandbox.compile(wasm, limits.memory_bytes), limits)
    return instance, instance.call(store, KIND, PROVIDER, os.urandom, p2, data)


def test_counter_counts_and_commits(sandbox: Sandbox) -> None:
    store = DictStore()
    module = sandbox.compile(example_wasm("counter"), LIMITS.memory_bytes)
    instance = sandbox.instantiate(module, LIMITS)
    for expected in (1, 2, 3):
        result = instance.call(store, KIND, PROVIDER, os.urandom, 0, b"")
        assert (result.sw, result.data) == (0x9000, expected.to_bytes(4, "big"))
    assert store.get(KIND, b"count") == (3).to_bytes(4, "big")
    peek = instance.call(store, KIND, PROVIDER, os.urandom, 1, b"")
    assert peek.data == (3).to_bytes(4, "big")
    assert instance.call(store, KIND, PROVIDER, os.urandom, 7, b"").sw == 0x6A86


def test_hmac_example_uses_the_key_by_id(sandbox: Sandbox) -> None:
    store = DictStore()
    secret = bytes(range(32))
    store.put(KEY_KIND, b"\x01", encode_key(ProgramKeyType.HMAC_SHA256, secret))
    _, result = run(sandbox, example_wasm("hmac"), store, data=b"challenge")
    h = hmac.HMAC(secret, hashes.SHA256())
    h.update(b"challenge")
    assert (result.sw, result.data) == (0x9000, h.finalize())
    _, missing = run(sandbox, example_wasm("hmac"), store, p2=9, data=b"challenge")
    assert missing.sw == 0x6A88


@pytest.mark.parametrize(
    ("p2", "sw"),
    [
        (1, ProgramSW.OUT_OF_FUEL),
        (2, ProgramSW.STACK_OVERFLOW),
        (3, ProgramSW.MEMORY_LIMIT),
        (4, ProgramSW.HOST_POINTER),
        (5, ProgramSW.HOST_POINTER),
        (6, ProgramSW.MEMORY_OUT_OF_BOUNDS),
        (7, ProgramSW.TRAP),
        (8, ProgramSW.BAD_STATUS),
        (9, ProgramSW.HOST_POINTER),
    ],
)
def test_each_trap_has_its_status_word_and_commits_nothing(sandbox: Sandbox, p2: int, sw: ProgramSW) -> None:
    store = DictStore()
    store.put(KIND, b"keep", b"before")
    before = dict(store.objects)
    with pytest.raises(ProgramTrap) as caught:
        run(sandbox, cases.HOSTILE, store, p2=p2)
    assert caught.value.sw == sw
    assert store.objects == before


def test_normal_return_commits_the_buffered_write(sandbox: Sandbox) -> None:
    store = DictStore()
    _, result = run(sandbox, cases.HOSTILE, store, p2=0)
    assert result.sw == 0x9000
    assert store.get(KIND, b"mark") == b"mark"


def test_wall_clock_deadline_stops_a_loop_with_fuel_to_spare(sandbox: Sandbox) -> None:
    limits = Limits(memory_bytes=65536, fuel=10**15, deadline_ms=50)
    start = time.monotonic()
    with pytest.raises(ProgramTrap) as caught:
        run(sandbox, cases.HOSTILE, DictStore(), p2=1, limits=limits)
    assert caught.value.sw == ProgramSW.DEADLINE
    assert time.monotonic() - start < 2.0


def test_start_function_runs_under_the_limits(sandbox: Sandbox) -> None:
    with pytest.raises(ProgramTrap) as caught:
        run(sandbox, cases.START_LOOP, DictStore())
    assert caught.value.sw == ProgramSW.OUT_OF_FUEL


def test_a_broken_instance_refuses_further_calls(sandbox: Sandbox) -> None:
    store = DictStore()
    wasm = cases.wasm(cases.HOSTILE)
    instance = sandbox.instantiate(sandbox.compile(wasm, LIMITS.memory_bytes), LIMITS)
    with pytest.raises(ProgramTrap):
        instance.call(store, KIND, PROVIDER, os.urandom, 7, b"")
    assert instance.broken
    with pytest.raises(ProgramTrap):
        instance.call(store, KIND, PROVIDER, os.urandom, 0, b"")


def test_host_write_past_the_quota_is_refused_to_the_program(sandbox: Sandbox) -> None:
    store = DictStore(quota=8)
    _, result = run(sandbox, example_wasm("counter"), store)
    assert result.sw == 0x6A84
    assert store.objects == {}


@pytest.mark.parametrize(
    ("wat", "reason"),
    [
        (cases.EXTRA_IMPORT, "not part of the host API"),
        (cases.WRONG_IMPORT_TYPE, "wrong type"),
        (cases.EXTRA_EXPORT, "not part of the program interface"),
        (cases.NO_INVOKE, "does not export invoke"),
        (cases.IMPORTED_MEMORY, "not part of the host API"),
        (cases.SIMD, "does not validate"),
        (cases.SHARED_MEMORY, "does not validate"),
        (cases.MULTI_MEMORY, "does not validate"),
        (cases.BIG_MEMORY, "initial memory exceeds"),
    ],
)
def test_validation_refuses(sandbox: Sandbox, wat: str, reason: str) -> None:
    with pytest.raises(ModuleRejected, match=reason):
        sandbox.compile(cases.wasm(wat), LIMITS.memory_bytes)


def test_text_and_foreign_binaries_are_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ModuleRejected, match=r"not a WebAssembly 1\.0 binary"):
        sandbox.compile(cases.LINKER_GLOBALS.encode(), LIMITS.memory_bytes)
    with pytest.raises(ModuleRejected, match=r"not a WebAssembly 1\.0 binary"):
        sandbox.compile(b"\x7fELF" + bytes(60), LIMITS.memory_bytes)
    with pytest.raises(ModuleRejected, match="does not validate"):
        sandbox.compile(b"\x00asm\x01\x00\x00\x00\x01\xff", LIMITS.memory_bytes)


def test_linker_globals_and_examples_are_accepted(sandbox: Sandbox) -> None:
    sandbox.compile(cases.wasm(cases.LINKER_GLOBALS), LIMITS.memory_bytes)
    for name in EXAMPLES:
        sandbox.compile(example_wasm(name), LIMITS.memory_bytes)


def test_stores_are_separate_per_instance(sandbox: Sandbox) -> None:
    """Two instances of one module share code, never memory or objects."""
    a, b = DictStore(), DictStore()
    module = sandbox.compile(example_wasm("counter"), LIMITS.memory_bytes)
    ia, ib = sandbox.instantiate(module, LIMITS), sandbox.instantiate(module, LIMITS)
    for _ in range(3):
        ia.call(a, KIND, PROVIDER, os.urandom, 0, b"")
    assert ib.call(b, KIND, PROVIDER, os.urandom, 0, b"").data == (1).to_bytes(4, "big")
    assert ia.store is not ib.store


def test_a_trap_at_the_initial_memory_size_is_not_a_memory_failure(sandbox: Sandbox) -> None:
    """A one-page program at its one-page limit that traps for another reason answers 6F07, not 6F03."""
    limits = Limits(memory_bytes=65536, fuel=1_000_000, deadline_ms=100)
    with pytest.raises(ProgramTrap) as caught:
        run(sandbox, cases.HOSTILE, DictStore(), p2=7, limits=limits)
    assert caught.value.sw == ProgramSW.TRAP
