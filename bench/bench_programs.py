"""Programs in containers: what the sandbox costs.

1. APDUs per second to a program that signs (Ed25519, 32-byte message; its instance kept for the session)
   against the same signature through the built-in PKI function, both in-process on one device, over the
   provider's SCP03 channel at level 33, in interleaved rounds.
2. Memory per loaded, idle program: resident memory growth of N instances of the counter example (each its
   own wasmtime store, linear memory of one 64 KiB page, as a session keeps it) divided by N; baseline the
   linear memory the program asked for (one page), the floor of any runtime.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

from bench.common import Figure, interleaved, per_second, rss_bytes
from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.client.pki import PkiClient
from tenantcard.client.programs import ProgramsClient
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.programs.examples import example_wasm
from tenantcard.device.programs.sandbox import Limits, Sandbox
from tenantcard.device.provision import ContainerSpec, create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.provider.programs import algorithm_of, generate_signing_key, public_key_bytes, signed_load_file
from tenantcard.transport.base import LocalConnection
from tenantcard.wire.gp import container_aid
from tenantcard.wire.programs import ProgramKeyType

WASM_PAGE = 65536

SIGNER = """
(module
  (import "tenantcard" "input" (func $input (param i32 i32) (result i32)))
  (import "tenantcard" "sign" (func $sign (param i32 i32 i32 i32 i32) (result i32)))
  (import "tenantcard" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "invoke") (param $p2 i32) (param $len i32) (result i32)
    (local $n i32)
    (if (i32.gt_u (local.get $len) (i32.const 1024)) (then (return (i32.const 0x6700))))
    (drop (call $input (i32.const 0) (i32.const 1024)))
    (local.set $n (call $sign (i32.const 1) (i32.const 0) (local.get $len) (i32.const 2048) (i32.const 128)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 0x6985))))
    (drop (call $output (i32.const 2048) (local.get $n)))
    (i32.const 0x9000)))
"""


def _provider_session(device: Device, index: int) -> ContainerSession:
    initial, own = StaticKeys.generate(0x01), StaticKeys.generate(0x31)
    isd = IsdSession(LocalConnection(device.connect()))
    isd.select()
    isd.authenticate(gp_test_keys())
    isd.place_authorization(container_aid(index), "bench", initial, int(time.time()) + 3600)
    session = ContainerSession(LocalConnection(device.connect()), container_aid(index))
    session.select()
    session.take_ownership(initial, own)
    return session


def sign_throughput(quick: bool) -> Figure:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "device.db"
        vault = FileKeyVault(Path(tmp) / "vault.key")
        create_device_store(path, dev_spec([ContainerSpec(quota_bytes=256 * 1024)]), vault)
        device = Device.open(path, vault)
        try:
            session = _provider_session(device, 0)
            programs = ProgramsClient(session)
            signer = generate_signing_key()
            programs.put_signing_key(algorithm_of(signer), public_key_bytes(signer))
            programs.generate_key(1, ProgramKeyType.ED25519)
            module = bytes(wasmtime.wat2wasm(SIGNER))
            programs.install(signed_load_file(signer, module, container_aid=container_aid(0), program_id=1, version=1))
            pki = PkiClient(session)
            pki.generate_key(1, "ed25519")
            message = bytes(range(32))
            assert programs.invoke(1, message).sw == 0x9000

            def by_program() -> None:
                assert programs.invoke(1, message).sw == 0x9000

            def by_pki() -> None:
                pki.sign(1, message)

            program_s, pki_s = interleaved(by_program, by_pki, repeat=3 if quick else 7, number=50 if quick else 300)
        finally:
            device.close()
    return per_second(
        "programs.sign_apdus_per_s",
        program_s,
        pki_s,
        "Ed25519 signatures per second by a sandboxed program (INVOKE, instance kept per session) "
        "vs the built-in PKI function's SIGN; in-process device, SCP03 level 33",
        aim="ratio >= 0.5",
        unit="APDUs/s",
    )


def idle_program_rss(count: int) -> float:
    """Resident bytes per loaded, idle program: ``count`` instances of the counter example, each its own store."""
    sandbox = Sandbox()
    try:
        limits = Limits(memory_bytes=4 * WASM_PAGE, fuel=1_000_000, deadline_ms=100)
        module = sandbox.compile(example_wasm("counter"), limits.memory_bytes)
        sandbox.instantiate(module, limits)  # code, ticker and allocator warmed up
        gc.collect()
        before = rss_bytes()
        instances = [sandbox.instantiate(module, limits) for _ in range(count)]
        gc.collect()
        per_program = (rss_bytes() - before) / count
        assert len(instances) == count
        return per_program
    finally:
        sandbox.close()


def idle_program_memory(quick: bool) -> Figure:
    # Measured in a fresh interpreter: in this one, memory freed by earlier benchmarks would be reused and hide
    # what the programs take.
    count = 50 if quick else 200
    code = f"from bench.bench_programs import idle_program_rss; print(idle_program_rss({count}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    per_program = float(out.strip().splitlines()[-1])
    return Figure(
        name="programs.idle_program_memory",
        value=per_program / 1024,
        baseline=WASM_PAGE / 1024,
        unit="KiB",
        description=f"resident memory per loaded, idle program ({count} instances of the counter example, each "
        "its own store, in a fresh process) vs the one 64 KiB page of linear memory it declares",
        aim="ratio <= 4.0",
    )


def run(quick: bool) -> list[Figure]:
    return [sign_throughput(quick), idle_program_memory(quick)]
