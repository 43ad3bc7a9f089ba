"""Programs on the real device, in-process and over TCP: two providers in two containers of one device, the
sandbox's limits seen through APDUs, refused load files, and a device killed with SIGKILL mid-call."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenantcard.client.container import ContainerSession
from tenantcard.client.errors import StatusError
from tenantcard.client.isd import IsdSession
from tenantcard.client.programs import ProgramError, ProgramsClient
from tenantcard.crypto.errors import CryptoError
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.programs.examples import C_HEADER, c_header, example_c, example_wasm
from tenantcard.device.provision import ContainerSpec, create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.provider.programs import (
    ProgramSigningKey,
    algorithm_of,
    build_c,
    generate_signing_key,
    public_key_bytes,
    signed_load_file,
)
from tenantcard.transport.base import TransportError
from tenantcard.transport.tcp_client import TcpConnection
from tenantcard.wire.gp import Cla, container_aid
from tenantcard.wire.programs import LoadFile, ProgramKeyType, ProgramSW
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access
from tests.support.transports import CardConnector
from tests.unit.programs import cases

QUOTA = 256 * 1024

# A program that reads what its peer in another container wrote, and uses key 01: it must see neither.
SNOOP = f"""
(module {cases.HOST}
  (memory (export "memory") 1)
  (data (i32.const 0) "secret")
  (func (export "invoke") (param $p2 i32) (param $len i32) (result i32)
    (if (i32.eq (local.get $p2) (i32.const 1))
      (then
        (drop (call $input (i32.const 64) (i32.const 32)))
        (drop (call $obj_put (i32.const 0) (i32.const 6) (i32.const 64) (local.get $len)))
        (return (i32.const 0x9000))))
    (if (i32.eq (local.get $p2) (i32.const 2))
      (then
        (if (i32.lt_s (call $obj_get (i32.const 0) (i32.const 6) (i32.const 64) (i32.const 32)) (i32.const 0))
          (then (return (i32.const 0x6A88))))
        (drop (call $output (i32.const 64) (i32.const 32)))
        (return (i32.const 0x9000))))
    (if (i32.eq (call $mac (i32.const 1) (i32.const 0) (i32.const 6) (i32.const 128) (i32.const 32)) (i32.const -1))
      (then (return (i32.const 0x6A88))))
    (i32.const 0x9000)))
"""

# Writes an object, then spins on a host call (slow per unit of fuel) until its wall-clock deadline: the
# object must never reach the store.
SLOW_WRITER = f"""
(module {cases.HOST}
  (import "tenantcard" "rights" (func $rights (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "inflight")
  (func (export "invoke") (param $p2 i32) (param $len i32) (result i32)
    (drop (call $obj_put (i32.const 0) (i32.const 8) (i32.const 0) (i32.const 8)))
    (if (local.get $p2) (then (loop $spin (drop (call $rights)) (br $spin))))
    (i32.const 0x9000)))
"""


def make_store(directory: Path) -> tuple[Path, FileKeyVault]:
    path = directory / "device.db"
    vault = FileKeyVault(directory / "vault.key")
    create_device_store(path, dev_spec([ContainerSpec(quota_bytes=QUOTA)] * 3), vault)
    return path, vault


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    path, vault = make_store(tmp_path)
    dev = Device.open(path, vault)
    yield dev
    dev.close()


def take_over(
    connect, slot, index: int, provider: str, isd: IsdSession | None = None
) -> tuple[StaticKeys, ContainerSession]:
    """Operator places the authorization; the provider opens its channel with the initial keys and replaces
    them with its own (DESIGN.md phase 1); returns its keys and the session, open under them at level 33."""
    initial = StaticKeys.generate(0x01)
    if isd is None:
        isd = IsdSession(connect(slot))
        isd.select()
        isd.authenticate(gp_test_keys())
    isd.place_authorization(container_aid(index), provider, initial, int(time.time()) + 3600)
    own = StaticKeys.generate(0x31)
    session = ContainerSession(connect(slot), container_aid(index))
    session.select()
    session.take_ownership(initial, own)
    return own, session


def reopen(connect, slot, index: int, keys: StaticKeys | None) -> ContainerSession:
    session = ContainerSession(connect(slot), container_aid(index))
    session.select()
    if keys is not None:
        session.authenticate(keys)
    return session


def provider_setup(
    connect, slot, index: int, name: str, isd: IsdSession | None = None
) -> tuple[StaticKeys, ContainerSession, ProgramsClient, ProgramSigningKey]:
    keys, session = take_over(connect, slot, index, name, isd)
    client = ProgramsClient(session)
    signer = generate_signing_key()
    client.put_signing_key(algorithm_of(signer), public_key_bytes(signer))
    return keys, session, client, signer


def load_file(signer: ProgramSigningKey, index: int, module: bytes, **fields) -> LoadFile:
    defaults = {"container_aid": container_aid(index), "program_id": 1, "version": 1, "fuel": 5_000_000}
    return signed_load_file(signer, module, **{**defaults, **fields})


def test_two_providers_run_isolated_programs(device: Device, card_connect: CardConnector) -> None:
    # five connections in all: PC/SC readers are few
    isd = IsdSession(card_connect(device))
    isd.select()
    isd.authenticate(gp_test_keys())
    _, _, a, sign_a = provider_setup(card_connect, device, 1, "provider-a", isd)
    _, b_session, b, sign_b = provider_setup(card_connect, device, 2, "provider-b", isd)
    a.install(load_file(sign_a, 1, example_wasm("counter")))
    a.install(load_file(sign_a, 1, cases.wasm(SNOOP), program_id=2))
    b.install(load_file(sign_b, 2, cases.wasm(SNOOP), program_id=2))
    b.install(load_file(sign_b, 2, example_wasm("hmac"), program_id=3, access=Access.PUBLIC))
    b.put_key(1, ProgramKeyType.HMAC_SHA256, b"K" * 32)

    assert [a.invoke(1).data for _ in range(2)] == [b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"]
    assert b.invoke(3, b"challenge").sw == SW.OK
    # a program does not see its container's other objects (here a STORE DATA object of the same name)
    b_session.put_object(b"secret", b"core object")
    assert b.invoke(2, p2=2).sw == 0x6A88
    # B's program stores a secret; A's program of the same id and code reads the same name: not there
    assert b.invoke(2, b"b-secret", p2=1).sw == SW.OK
    assert b.invoke(2, p2=2).data.startswith(b"b-secret")
    assert b_session.get_object(b"secret") == b"core object"
    assert a.invoke(2, p2=2).sw == 0x6A88
    # B's HMAC key 01 exists for B's program, not for A's
    assert b.invoke(2).sw == SW.OK
    assert a.invoke(2).sw == 0x6A88
    # A's channel does not reach B's container, and B's programs are not A's
    assert [p.manifest.program_id for p in a.list()] == [1, 2]
    assert [p.manifest.program_id for p in b.list()] == [2, 3]
    with pytest.raises(ProgramError):
        a.delete(3)
    with pytest.raises((StatusError, CryptoError)):
        reopen(card_connect, device, 2, StaticKeys.generate(0x31))
    # an unauthenticated caller of B's public program gets its answer, not B's administration
    anonymous = ProgramsClient(reopen(card_connect, device, 2, None))
    assert anonymous.invoke(3, b"x", cla=Cla.GP).sw == SW.OK
    assert anonymous.invoke(2, cla=Cla.GP).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    with pytest.raises(ProgramError, match="access denied"):
        anonymous.list()
    # B's container is as B left it
    assert [p.manifest.program_id for p in b.list()] == [2, 3]


def test_runaway_programs_end_with_their_status_word(device: Device, card_connect: CardConnector) -> None:
    _, _, client, signer = provider_setup(card_connect, device, 0, "provider-a")
    client.install(load_file(signer, 0, example_wasm("counter")))
    client.install(load_file(signer, 0, cases.wasm(cases.HOSTILE), program_id=2, memory_bytes=4 * 65536))
    assert client.invoke(1).data == b"\x00\x00\x00\x01"
    listed = {p.manifest.program_id: p.data_objects for p in client.list()}
    for p2, sw in [
        (1, ProgramSW.OUT_OF_FUEL),
        (2, ProgramSW.STACK_OVERFLOW),
        (3, ProgramSW.MEMORY_LIMIT),
        (4, ProgramSW.HOST_POINTER),
    ]:
        result = client.invoke(2, p2=p2)
        assert result.trapped
        assert int(result.sw) == sw
        # the device keeps serving, and nothing the trapped call wrote was kept
        assert client.invoke(1, p2=1).data == b"\x00\x00\x00\x01"
        assert {p.manifest.program_id: p.data_objects for p in client.list()} == listed


def test_refused_load_files_say_why(device: Device, card_connect: CardConnector) -> None:
    _, _, client, signer = provider_setup(card_connect, device, 1, "provider-a")
    counter = example_wasm("counter")
    with pytest.raises(ProgramError, match="signature does not verify"):
        client.install(load_file(generate_signing_key(), 1, counter))
    good = load_file(signer, 1, counter)
    changed = bytearray(good.module)
    changed[len(changed) // 2] ^= 0x20
    with pytest.raises(ProgramError, match="does not match the manifest"):
        client.install(LoadFile(good.signed, bytes(changed)))
    with pytest.raises(ProgramError, match="outside the program interface"):
        client.install(load_file(signer, 1, cases.wasm(cases.EXTRA_IMPORT)))
    with pytest.raises(ProgramError, match="quota"):
        client.install(load_file(signer, 1, counter, memory_bytes=2 * QUOTA))
    assert client.list() == []
    client.install(good)
    with pytest.raises(ProgramError, match="equal or newer version"):
        client.install(good)


def test_pin_signer_over_the_channel(device: Device, card_connect: CardConnector) -> None:
    _, _, client, signer = provider_setup(card_connect, device, 1, "provider-a")
    public = client.generate_key(1, ProgramKeyType.ED25519)
    assert client.public_key(1) == (ProgramKeyType.ED25519, public)
    client.install(load_file(signer, 1, example_wasm("pinsigner")))
    assert client.invoke(1, b"2468", p2=1).sw == SW.OK
    from cryptography.hazmat.primitives.asymmetric import ed25519

    signature = client.invoke(1, b"\x042468" + b"m" * 600, p2=2)
    assert signature.sw == SW.OK
    ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature.data, b"m" * 600)
    assert client.invoke(1, b"\x041111m", p2=2).sw == 0x63C2


def test_programs_built_from_c_run_like_their_wat_twins(
    device: Device, card_connect: CardConnector, tmp_path: Path
) -> None:
    """The C examples, compiled and linked with the real clang and wasm-ld, signed, loaded over the provider's
    channel and invoked: every answer is the one their WebAssembly text twins give."""
    (tmp_path / C_HEADER).write_text(c_header())
    built = {}
    for name in ("counter", "hmac"):
        (tmp_path / f"{name}.c").write_text(example_c(name))
        built[name] = build_c(tmp_path / f"{name}.c", tmp_path / f"{name}.wasm")
    _, _, client, signer = provider_setup(card_connect, device, 1, "provider-a")
    client.put_key(1, ProgramKeyType.HMAC_SHA256, b"K" * 32)
    client.generate_key(2, ProgramKeyType.ED25519)
    # (C, WAT) program ids
    client.install(load_file(signer, 1, built["counter"], program_id=1, name="counter.c"))
    client.install(load_file(signer, 1, example_wasm("counter"), program_id=2, name="counter.wat"))
    client.install(load_file(signer, 1, built["hmac"], program_id=3, name="hmac.c", access=Access.PUBLIC))
    client.install(load_file(signer, 1, example_wasm("hmac"), program_id=4, name="hmac.wat", access=Access.PUBLIC))
    listed = {p.manifest.program_id: p.manifest for p in client.list()}
    assert (listed[1].module_size, listed[3].module_size) == (len(built["counter"]), len(built["hmac"]))

    def answers(program_id: int, commands: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        return [(int(r.sw), r.data) for r in (client.invoke(program_id, data, p2) for p2, data in commands)]

    counting = [(0, b""), (0, b""), (1, b""), (9, b""), (0, b"x")]
    from_c = answers(1, counting)
    assert from_c == answers(2, counting)
    assert [sw for sw, _ in from_c] == [SW.OK, SW.OK, SW.OK, 0x6A86, SW.OK]
    assert [data for _, data in from_c] == [
        b"\x00\x00\x00\x01",
        b"\x00\x00\x00\x02",
        b"\x00\x00\x00\x02",
        b"",
        b"\x00\x00\x00\x03",
    ]
    # each program counts in its own objects
    assert {p.manifest.program_id: p.data_objects for p in client.list()} == {1: 1, 2: 1, 3: 0, 4: 0}

    from cryptography.hazmat.primitives import hashes, hmac

    challenging = [(0, b"challenge"), (1, b"c" * 128), (0, b""), (0, b"c" * 129), (9, b"x"), (2, b"x")]
    from_c = answers(3, challenging)
    assert from_c == answers(4, challenging)
    h = hmac.HMAC(b"K" * 32, hashes.SHA256())
    h.update(b"challenge")
    assert from_c[0] == (SW.OK, h.finalize())
    assert [sw for sw, _ in from_c[1:]] == [SW.OK, 0x6700, 0x6700, 0x6A88, 0x6985]


# --- SIGKILL during a call ---------------------------------------------------------------------------


def _serve(store: Path, vault: Path) -> tuple[subprocess.Popen[str], _Slot]:
    command = [sys.executable, "-m", "tenantcard.cli.main", "device", "serve", "--store", str(store)]
    command += ["--vault", f"file:{vault}", "--listen", "127.0.0.1:0", "--log-level", "warning"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("listening tcp://"), line
    host, port = line.removeprefix("listening tcp://").rsplit(":", 1)
    return proc, _Slot(host, int(port))


class _Slot:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.opened: list[TcpConnection] = []

    def connect(self) -> TcpConnection:
        conn = TcpConnection(self.host, self.port, timeout=30.0)
        self.opened.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.opened:
            with contextlib.suppress(TransportError, OSError):
                conn.close()


def _connect(slot: _Slot) -> TcpConnection:
    return slot.connect()


@pytest.mark.slow
def test_sigkill_during_a_call_keeps_the_objects_as_before(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    vault = tmp_path / "vault.key"
    proc, slot = _serve(store, vault)
    try:
        keys, _, client, signer = provider_setup(_connect, slot, 1, "provider-a")
        client.install(load_file(signer, 1, example_wasm("counter")))
        client.install(load_file(signer, 1, cases.wasm(SLOW_WRITER), program_id=2, fuel=400_000_000, deadline_ms=2000))
        assert client.invoke(1).data == b"\x00\x00\x00\x01"
        before = [(p.manifest, p.data_objects) for p in client.list()]
        outcome: list[object] = []

        def call() -> None:
            try:
                outcome.append(client.invoke(2, p2=1))
            except TransportError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the call is inside its spin loop, its object written but not committed
        assert outcome == []
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        caller.join(30)
        assert len(outcome) == 1 and isinstance(outcome[0], TransportError)
    finally:
        slot.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    proc, slot = _serve(store, vault)
    try:
        client = ProgramsClient(reopen(_connect, slot, 1, keys))
        assert [(p.manifest, p.data_objects) for p in client.list()] == before
        assert client.invoke(1, p2=1).data == b"\x00\x00\x00\x01"
        assert client.invoke(2, p2=0).sw == SW.OK  # the program still runs, and now its write is kept
        assert [p.data_objects for p in client.list()] == [1, 1]
    finally:
        slot.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
