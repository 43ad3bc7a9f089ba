"""Programs built from C with the real toolchain (clang and wasm-ld, a declared system dependency): the
examples pass the device's validation and behave exactly as their WebAssembly text twins."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import wasmtime
from click.testing import CliRunner

from tenantcard.cli.programs import programs
from tenantcard.device.programs.examples import C_EXAMPLES, C_HEADER, c_header, example_c, example_wasm
from tenantcard.device.programs.hostapi import HOST_FUNCTIONS, HOST_MODULE, KEY_KIND, encode_key
from tenantcard.device.programs.sandbox import Limits, Sandbox
from tenantcard.device.programs.validate import check_binary
from tenantcard.provider.programs import C_FLAGS, ProgramBuildError, build_c, find_c_toolchain
from tenantcard.wire.programs import ProgramKeyType
from tests.unit.programs.test_programs_sandbox import KIND, PROVIDER, DictStore

DOCS = Path(__file__).resolve().parents[3] / "docs" / "programs.md"
LIMITS = Limits(memory_bytes=65536, fuel=1_000_000, deadline_ms=200)


def write_examples(directory: Path) -> None:
    for name in C_EXAMPLES:
        (directory / f"{name}.c").write_text(example_c(name))
    (directory / C_HEADER).write_text(c_header())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Each C example compiled and linked with the real clang and wasm-ld."""
    directory = tmp_path_factory.mktemp("c")
    write_examples(directory)
    return {name: build_c(directory / f"{name}.c", directory / f"{name}.wasm") for name in C_EXAMPLES}


@pytest.fixture(scope="module")
def sandbox():
    s = Sandbox()
    yield s
    s.close()


def calls(
    sandbox: Sandbox, wasm: bytes, store: DictStore, commands: list[tuple[int, bytes]]
) -> list[tuple[int, bytes]]:
    """(sw, data) of each command, run by one instance as in one card session."""
    instance = sandbox.instantiate(sandbox.compile(wasm, LIMITS.memory_bytes), LIMITS)
    results: list[tuple[int, bytes]] = []
    for p2, data in commands:
        result = instance.call(store, KIND, PROVIDER, os.urandom, p2, data)
        results.append((result.sw, result.data))
    return results


def test_c_examples_are_modules_the_device_accepts(built: dict[str, bytes], sandbox: Sandbox) -> None:
    for name, wasm in built.items():
        check_binary(wasm)
        module = sandbox.compile(wasm, LIMITS.memory_bytes)  # the device's engine and validation
        assert sorted(e.name for e in module.exports) == ["invoke", "memory"], name
        assert {i.module for i in module.imports} == {HOST_MODULE}
        assert {i.name for i in module.imports} <= set(HOST_FUNCTIONS)
        memory = next(e.type for e in module.exports if e.name == "memory")
        assert isinstance(memory, wasmtime.MemoryType)
        assert (memory.limits.min, memory.limits.max) == (1, 1)
        assert len(wasm) < 1024, name  # no libc, no name section


def test_c_counter_answers_as_counter_wat(built: dict[str, bytes], sandbox: Sandbox) -> None:
    commands = [(0, b""), (0, b""), (1, b""), (7, b"x"), (0, b"ignored"), (1, b"")]
    from_c, from_wat = DictStore(), DictStore()
    answers = calls(sandbox, built["counter"], from_c, commands)
    assert answers == calls(sandbox, example_wasm("counter"), from_wat, commands)
    assert answers[-1] == (0x9000, (3).to_bytes(4, "big"))
    assert answers[3] == (0x6A86, b"")
    assert from_c.objects == from_wat.objects == {(KIND, b"count"): (3).to_bytes(4, "big")}
    # a quota too small for the object: 6A84 and nothing stored, in both
    full_c, full_wat = DictStore(quota=8), DictStore(quota=8)
    assert calls(sandbox, built["counter"], full_c, [(0, b"")]) == [(0x6A84, b"")]
    assert calls(sandbox, example_wasm("counter"), full_wat, [(0, b"")]) == [(0x6A84, b"")]
    assert full_c.objects == full_wat.objects == {}


def test_c_hmac_answers_as_hmac_wat(built: dict[str, bytes], sandbox: Sandbox) -> None:
    from cryptography.hazmat.primitives import hashes, hmac

    store = DictStore()
    secret = bytes(range(32))
    store.put(KEY_KIND, b"\x01", encode_key(ProgramKeyType.HMAC_SHA256, secret))
    store.put(KEY_KIND, b"\x02", encode_key(ProgramKeyType.ED25519, bytes(32)))
    commands = [(0, b"challenge"), (1, b"c" * 128), (0, b""), (0, b"c" * 129), (9, b"challenge"), (2, b"x")]
    answers = calls(sandbox, built["hmac"], store, commands)
    assert answers == calls(sandbox, example_wasm("hmac"), store, commands)
    h = hmac.HMAC(secret, hashes.SHA256())
    h.update(b"challenge")
    assert answers[0] == (0x9000, h.finalize())
    assert [sw for sw, _ in answers[1:]] == [0x9000, 0x6700, 0x6700, 0x6A88, 0x6985]


def test_the_documented_command_is_the_one_build_c_runs() -> None:
    text = DOCS.read_text()
    section = text[text.index("### From C") : text.index("### From Rust")]
    commands = [" ".join(block.replace("\\\n", " ").split()) for block in re.findall(r"```sh\n(.*?)```", section, re.S)]
    assert any(" ".join(C_FLAGS) in command for command in commands), commands
    assert "src/tenantcard/device/programs/examples/counter.c" in section


def test_missing_toolchain_is_a_build_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_examples(tmp_path)
    clang, _ = find_c_toolchain()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ProgramBuildError, match="clang and wasm-ld not found"):
        build_c(tmp_path / "counter.c", tmp_path / "counter.wasm")
    (bin_dir / "clang").symlink_to(clang)
    with pytest.raises(ProgramBuildError, match=r"^wasm-ld not found .*apt-get install clang-14 lld-14"):
        build_c(tmp_path / "counter.c", tmp_path / "counter.wasm")
    assert not (tmp_path / "counter.wasm").exists()


def test_compiler_and_linker_errors_are_build_errors(tmp_path: Path) -> None:
    write_examples(tmp_path)
    (tmp_path / "broken.c").write_text('#include "tenantcard.h"\nint32_t invoke(int32_t p2, int32_t len) {\n')
    with pytest.raises(ProgramBuildError, match=r"broken\.c: clang(-14)? failed:\n.*error"):
        build_c(tmp_path / "broken.c", tmp_path / "broken.wasm")
    # freestanding: a libc function is an undefined symbol, not an import the device would refuse later
    (tmp_path / "libc.c").write_text(
        '#include "tenantcard.h"\nint puts(const char *);\n'
        'TC_EXPORT("invoke") int32_t invoke(int32_t p2, int32_t len) { return puts("x") ? 0x9000 : 0x6F00; }\n'
    )
    with pytest.raises(ProgramBuildError, match="undefined symbol: puts"):
        build_c(tmp_path / "libc.c", tmp_path / "libc.wasm")
    with pytest.raises(ProgramBuildError, match=r"cannot read absent\.c"):
        build_c(tmp_path / "absent.c", tmp_path / "absent.wasm")


def test_cli_writes_the_c_examples_and_builds_them(tmp_path: Path, built: dict[str, bytes]) -> None:
    runner = CliRunner()
    result = runner.invoke(programs, ["examples", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} >= {"counter.c", "hmac.c", C_HEADER, "counter.wat"}
    for name in C_EXAMPLES:
        out = tmp_path / f"{name}.wasm"
        result = runner.invoke(programs, ["build", str(tmp_path / f"{name}.c"), "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert f"{len(built[name])} bytes" in result.output
        assert out.read_bytes() == built[name]  # the build is reproducible
    (tmp_path / "broken.c").write_text("int invoke(")
    result = runner.invoke(programs, ["build", str(tmp_path / "broken.c"), "-o", str(tmp_path / "b.wasm")])
    assert result.exit_code == 1 and "broken.c" in result.output


def test_the_toolchain_is_installed() -> None:
    """clang and wasm-ld are system dependencies (scripts/system-packages), never optional."""
    clang, wasm_ld = find_c_toolchain()
    assert shutil.which(clang) and shutil.which(wasm_ld)


def test_struct_copies_need_no_libc(tmp_path: Path, sandbox: Sandbox) -> None:
    """-mbulk-memory: a large struct copy is a memory.copy instruction, not a call to a memcpy there is none of."""
    write_examples(tmp_path)
    (tmp_path / "copy.c").write_text(
        '#include "tenantcard.h"\n'
        "struct block { uint8_t b[200]; };\n"
        "static struct block in, out;\n"
        'TC_EXPORT("invoke") int32_t invoke(int32_t p2, int32_t len) {\n'
        "    (void)p2;\n"
        "    tc_input(in.b, sizeof in.b);\n"
        "    out = in;\n"
        "    tc_output(out.b, len);\n"
        "    return 0x9000;\n"
        "}\n"
    )
    wasm = build_c(tmp_path / "copy.c", tmp_path / "copy.wasm")
    assert calls(sandbox, wasm, DictStore(), [(0, b"echo" * 50)]) == [(0x9000, b"echo" * 50)]
