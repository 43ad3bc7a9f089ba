"""The programs function over the real sealed store: loading (signature, hash, validation, quota, versions),
keys, running the examples, access rules, and traps that leave the container as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantcard.device.functions.programs import MANIFEST_KIND, MODULE_KIND, DeviceLimits, ProgramsFunction
from tenantcard.device.programs.examples import example_wasm
from tenantcard.device.programs.hostapi import KEY_KIND, data_kind
from tenantcard.device.programs.manifest import SIGNING_KEY_KIND
from tenantcard.device.programs.sandbox import Sandbox
from tenantcard.provider.programs import (
    ProgramSigningKey,
    algorithm_of,
    generate_signing_key,
    public_key_bytes,
    signed_load_file,
)
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.gp import container_aid
from tenantcard.wire.programs import (
    LoadFile,
    ProgramInfo,
    ProgramIns,
    ProgramKeyType,
    ProgramSW,
    SigningAlgorithm,
)
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access
from tests.support.function_harness import HOLDER, NOBODY, PROVIDER, PROVIDER_MAC_ONLY, FunctionHarness
from tests.unit.programs import cases

AID = container_aid(1)
QUOTA = 256 * 1024


@pytest.fixture(scope="module")
def sandbox():
    s = Sandbox()
    yield s
    s.close()


@pytest.fixture
def h(tmp_path: Path, sandbox: Sandbox) -> FunctionHarness:
    return FunctionHarness(tmp_path, ProgramsFunction(sandbox, DeviceLimits(max_deadline_ms=1000)), quota=QUOTA)


@pytest.fixture
def signer(h: FunctionHarness) -> ProgramSigningKey:
    key = generate_signing_key()
    assert install_signer(h, key) == SW.OK
    return key


def install_signer(h: FunctionHarness, key: ProgramSigningKey) -> SW:
    cmd = CommandApdu(0x84, ProgramIns.PUT_SIGNING_KEY, algorithm_of(key), 0, public_key_bytes(key))
    return h.send(PROVIDER, cmd).sw


def load(h: FunctionHarness, load_file: LoadFile | bytes, rights=PROVIDER, block: int = 2000) -> SW:
    raw = load_file.to_bytes() if isinstance(load_file, LoadFile) else load_file
    blocks = [raw[i : i + block] for i in range(0, len(raw), block)] or [b""]
    for n, chunk in enumerate(blocks):
        r = h.send(rights, CommandApdu(0x84, ProgramIns.LOAD, 0x80 if n == len(blocks) - 1 else 0, n, chunk))
        if r.sw != SW.OK or n == len(blocks) - 1:
            return r.sw
    raise AssertionError("empty load file")


def load_file(key: ProgramSigningKey, module: bytes, **fields) -> LoadFile:
    defaults = {"container_aid": AID, "program_id": 1, "version": 1, "fuel": 2_000_000, "deadline_ms": 500}
    return signed_load_file(key, module, **{**defaults, **fields})


def invoke(h: FunctionHarness, program_id: int, p2: int = 0, data: bytes = b"", rights=PROVIDER):
    return h.send(rights, CommandApdu(0x84, ProgramIns.INVOKE, program_id, p2, data))


def snapshot(h: FunctionHarness) -> dict[tuple[str, bytes], bytes | None]:
    objects = h.store.objects(1)
    kinds = [MANIFEST_KIND, MODULE_KIND, KEY_KIND, SIGNING_KEY_KIND] + [data_kind(i) for i in range(1, 4)]
    return {(k, n): objects.get(k, n) for k in kinds for n in objects.names(k)}


def test_load_list_invoke_counter(h: FunctionHarness, signer: ProgramSigningKey) -> None:
    assert load(h, load_file(signer, example_wasm("counter"), name="counter")) == SW.OK
    listed = h.send(PROVIDER, CommandApdu(0x84, ProgramIns.LIST, 0, 0))
    [info] = ProgramInfo.parse_list(listed.data)
    assert (info.manifest.program_id, info.manifest.version, info.manifest.name) == (1, 1, "counter")
    assert [invoke(h, 1).data for _ in range(3)] == [n.to_bytes(4, "big") for n in (1, 2, 3)]
    assert ProgramInfo.parse_list(h.send(PROVIDER, CommandApdu(0x84, ProgramIns.LIST, 0, 0)).data)[0].data_objects == 1


def test_p256_signing_key_works_too(h: FunctionHarness) -> None:
    key = generate_signing_key(SigningAlgorithm.ECDSA_P256_SHA256)
    assert install_signer(h, key) == SW.OK
    assert load(h, load_file(key, example_wasm("counter"))) == SW.OK


def test_upgrade_needs_a_higher_version_and_keeps_data(h: FunctionHarness, signer: ProgramSigningKey) -> None:
    counter = example_wasm("counter")
    assert load(h, load_file(signer, counter, version=5)) == SW.OK
    invoke(h, 1)
    assert load(h, load_file(signer, counter, version=5)) == SW.ALREADY_EXISTS
    assert load(h, load_file(signer, counter, version=4)) == SW.ALREADY_EXISTS
    assert load(h, load_file(signer, counter, version=6, fuel=3_000_000)) == SW.OK
    assert invoke(h, 1).data == (2).to_bytes(4, "big")


def test_delete_removes_program_and_its_data(h: FunctionHarness, signer: ProgramSigningKey) -> None:
    assert load(h, load_file(signer, example_wasm("counter"))) == SW.OK
    invoke(h, 1)
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.DELETE, 1, 0)).sw == SW.OK
    assert snapshot(h) == {k: v for k, v in snapshot(h).items() if k[0] == SIGNING_KEY_KIND}
    assert invoke(h, 1).sw == SW.REFERENCED_DATA_NOT_FOUND
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.DELETE, 1, 0)).sw == SW.REFERENCED_DATA_NOT_FOUND


def test_refusals_change_nothing(h: FunctionHarness, signer: ProgramSigningKey) -> None:
    counter = example_wasm("counter")
    assert load(h, load_file(signer, counter)) == SW.OK
    before = snapshot(h)
    wrong_key = generate_signing_key()
    assert load(h, load_file(wrong_key, counter, version=2)) == SW.SECURITY_STATUS_NOT_SATISFIED
    good = load_file(signer, counter, version=2)
    changed = bytearray(good.module)
    changed[-3] ^= 0x01
    assert load(h, LoadFile(good.signed, bytes(changed))) == SW.INCORRECT_DATA
    assert load(h, load_file(signer, cases.wasm(cases.EXTRA_IMPORT), version=2)) == SW.FUNCTION_NOT_SUPPORTED
    assert load(h, load_file(signer, counter, version=2, memory_bytes=1 << 20)) == SW.NOT_ENOUGH_MEMORY
    big = cases.wasm(
        '(module (memory (export "memory") 1) (data (i32.const 0) "'
        + "x" * (QUOTA + 1000)
        + '") (func (export "invoke") (param i32 i32) (result i32) (i32.const 0x9000)))'
    )
    assert load(h, load_file(signer, big, program_id=2)) == SW.NOT_ENOUGH_MEMORY
    assert load(h, load_file(signer, counter, version=2, container_aid=container_aid(2))) == (
        SW.REFERENCED_DATA_NOT_FOUND
    )
    assert load(h, load_file(signer, counter, version=2, fuel=10**12)) == SW.INCORRECT_DATA
    assert load(h, b"\xe1\x03\x01\x02\x03") == SW.INCORRECT_DATA
    assert load(h, load_file(signer, counter, version=2), rights=HOLDER) == SW.SECURITY_STATUS_NOT_SATISFIED
    assert snapshot(h) == before


def test_load_without_a_signing_key_or_out_of_sequence(h: FunctionHarness) -> None:
    key = generate_signing_key()
    assert load(h, load_file(key, example_wasm("counter"))) == SW.CONDITIONS_NOT_SATISFIED
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.LOAD, 0x80, 3, b"\x00")).sw == SW.INCORRECT_P1P2
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.LOAD, 0x01, 0, b"\x00")).sw == SW.INCORRECT_P1P2
    assert install_signer(h, key) == SW.OK
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.PUT_SIGNING_KEY, 9, 0, b"\x00" * 32)).sw == (SW.INCORRECT_DATA)
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.PUT_SIGNING_KEY, 1, 0, b"\x00" * 7)).sw == (SW.INCORRECT_DATA)


@pytest.mark.parametrize(
    ("p2", "sw"),
    [
        (1, ProgramSW.OUT_OF_FUEL),
        (2, ProgramSW.STACK_OVERFLOW),
        (3, ProgramSW.MEMORY_LIMIT),
        (4, ProgramSW.HOST_POINTER),
        (6, ProgramSW.MEMORY_OUT_OF_BOUNDS),
    ],
)
def test_traps_answer_their_status_word_and_leave_the_store(
    h: FunctionHarness, signer: ProgramSigningKey, p2: int, sw: ProgramSW
) -> None:
    assert load(h, load_file(signer, cases.wasm(cases.HOSTILE), memory_bytes=4 * 65536)) == SW.OK
    before = snapshot(h)
    assert invoke(h, 1, p2).sw == sw
    assert snapshot(h) == before
    assert invoke(h, 1, 0).sw == SW.OK  # a fresh instance serves the next call
    assert h.store.objects(1).get(data_kind(1), b"mark") == b"mark"


def test_deadline(h: FunctionHarness, signer: ProgramSigningKey) -> None:
    assert load(h, load_file(signer, cases.wasm(cases.HOSTILE), fuel=400_000_000, deadline_ms=100)) == SW.OK
    assert invoke(h, 1, 1).sw == ProgramSW.DEADLINE


def test_hmac_program_with_imported_key(h: FunctionHarness, signer: ProgramSigningKey) -> None:
    secret = bytes(range(20, 52))
    put = CommandApdu(0x84, ProgramIns.PUT_KEY, 1, ProgramKeyType.HMAC_SHA256, secret)
    assert h.send(PROVIDER_MAC_ONLY, put).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert h.send(PROVIDER, put).sw == SW.OK
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.GET_PUBLIC_KEY, 1, 0)).sw == SW.CONDITIONS_NOT_SATISFIED
    assert load(h, load_file(signer, example_wasm("hmac"), access=Access.PUBLIC)) == SW.OK
    import hmac as std_hmac

    r = invoke(h, 1, 0, b"nonce-123", rights=NOBODY)
    assert r.sw == SW.OK
    assert r.data == std_hmac.new(secret, b"nonce-123", hashlib.sha256).digest()
    assert secret not in b"".join(v or b"" for k, v in snapshot(h).items() if k[0] != KEY_KIND)


@pytest.mark.parametrize("key_type", [ProgramKeyType.ED25519, ProgramKeyType.ECDSA_P256])
def test_pin_guarded_signer(h: FunctionHarness, signer: ProgramSigningKey, key_type: ProgramKeyType) -> None:
    gen = h.send(PROVIDER, CommandApdu(0x84, ProgramIns.GENERATE_KEY, 1, key_type))
    assert gen.sw == SW.OK
    pub = h.send(NOBODY, CommandApdu(0x80, ProgramIns.GET_PUBLIC_KEY, 1, 0))
    assert pub.data == bytes([key_type]) + gen.data
    assert load(h, load_file(signer, example_wasm("pinsigner"), access=Access.HOLDER_OR_PROVIDER)) == SW.OK
    assert invoke(h, 1, 1, b"123456", rights=HOLDER).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert invoke(h, 1, 1, b"123456").sw == SW.OK
    assert invoke(h, 1, 2, b"\x06123456hello", rights=NOBODY).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    ok = invoke(h, 1, 2, b"\x06123456hello", rights=HOLDER)
    assert ok.sw == SW.OK
    if key_type == ProgramKeyType.ED25519:
        ed25519.Ed25519PublicKey.from_public_bytes(gen.data).verify(ok.data, b"hello")
    else:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), gen.data)
        public.verify(ok.data, b"hello", ec.ECDSA(hashes.SHA256()))
        with pytest.raises(InvalidSignature):
            public.verify(ok.data, b"hellO", ec.ECDSA(hashes.SHA256()))
    # wrong PINs count down, persist, and block; the right PIN then no longer helps
    assert [invoke(h, 1, 2, b"\x060000001", rights=HOLDER).sw for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert invoke(h, 1, 3, rights=HOLDER).data == b"\x00"
    assert invoke(h, 1, 2, b"\x06123456hello", rights=HOLDER).sw == SW.AUTH_METHOD_BLOCKED


def test_bad_parameters(h: FunctionHarness, signer: ProgramSigningKey) -> None:
    assert h.send(PROVIDER, CommandApdu(0x84, 0x11, 0, 0)).sw == SW.INS_NOT_SUPPORTED
    assert invoke(h, 0).sw == SW.INCORRECT_P1P2
    assert invoke(h, 0xFF).sw == SW.INCORRECT_P1P2
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.GENERATE_KEY, 1, 0x01)).sw == SW.INCORRECT_P1P2
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.GENERATE_KEY, 1, 0x77)).sw == SW.INCORRECT_P1P2
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.PUT_KEY, 2, 1, b"short")).sw == SW.INCORRECT_DATA
    assert h.send(PROVIDER, CommandApdu(0x84, ProgramIns.DELETE_KEY, 2, 0)).sw == SW.REFERENCED_DATA_NOT_FOUND
    assert h.send(NOBODY, CommandApdu(0x80, ProgramIns.LIST, 0, 0)).sw == SW.SECURITY_STATUS_NOT_SATISFIED


LOAD_REFUSALS = {
    SW.INCORRECT_DATA,
    SW.SECURITY_STATUS_NOT_SATISFIED,
    SW.REFERENCED_DATA_NOT_FOUND,
    SW.FUNCTION_NOT_SUPPORTED,
    SW.NOT_ENOUGH_MEMORY,
    SW.ALREADY_EXISTS,
}


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400), flip=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_load_file_gets_a_status_word(
    h: FunctionHarness, signer: ProgramSigningKey, raw: bytes, flip: int, bit: int
) -> None:
    """Random bytes, and a valid load file with one bit flipped anywhere, are refused with a status word and
    change nothing (DESIGN.md invariant 5)."""
    before = snapshot(h)
    assert load(h, raw) in LOAD_REFUSALS
    good = bytearray(load_file(signer, example_wasm("counter"), version=1000).to_bytes())
    good[flip % len(good)] ^= 1 << bit
    sw = load(h, bytes(good))
    assert sw in LOAD_REFUSALS
    assert snapshot(h) == before


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p1=st.integers(0, 255), p2=st.integers(0, 255), data=st.binary(max_size=64))
def test_any_invoke_gets_a_status_word(h: FunctionHarness, signer: ProgramSigningKey, p1: int, p2: int, data: bytes):
    if not h.store.objects(1).names(MANIFEST_KIND):
        assert load(h, load_file(signer, example_wasm("pinsigner"))) == SW.OK
    r = invoke(h, p1, p2, data)
    assert 0x6000 <= r.sw <= 0x9FFF
