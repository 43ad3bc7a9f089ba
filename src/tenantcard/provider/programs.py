"""The provider's side of programs: its program-signing key, building modules and signing manifests.

The device checks what this module signs (docs/programs.md "Manifest"): Ed25519 (RFC 8032) or ECDSA
P-256/SHA-256 (FIPS 186-5, DER signature) over ``Manifest.signing_input()``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import wasmtime
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tenantcard.wire.programs import HOST_API_VERSION, LoadFile, Manifest, SignedManifest, SigningAlgorithm

ProgramSigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

DEFAULT_MEMORY = 1 << 16  # one 64 KiB page (WebAssembly core spec §4.2.8)
DEFAULT_FUEL = 10_000_000
DEFAULT_DEADLINE_MS = 500


class ProgramBuildError(Exception):
    """A module could not be built, or a key could not be read. The message carries no key material."""


def generate_signing_key(algorithm: SigningAlgorithm = SigningAlgorithm.ED25519) -> ProgramSigningKey:
    if algorithm == SigningAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def algorithm_of(key: ProgramSigningKey) -> SigningAlgorithm:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return SigningAlgorithm.ED25519
    if isinstance(key.curve, ec.SECP256R1):
        return SigningAlgorithm.ECDSA_P256_SHA256
    raise ProgramBuildError("program-signing keys are Ed25519 or P-256")


def public_key_bytes(key: ProgramSigningKey) -> bytes:
    """What PUT SIGNING KEY carries: raw Ed25519 key or uncompressed SEC 1 point."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.public_key().public_bytes_raw()
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def save_signing_key(key: ProgramSigningKey, path: Path, password: bytes | None = None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)


def load_signing_key(path: Path, password: bytes | None = None) -> ProgramSigningKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password)
    except (OSError, ValueError, TypeError) as exc:
        raise ProgramBuildError(f"cannot read a program-signing key from {path.name}") from exc
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ProgramBuildError("program-signing keys are Ed25519 or P-256")


def build_module(source: Path) -> bytes:
    """A .wasm file as is, or a .wat file compiled with wasmtime.wat2wasm."""
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ProgramBuildError(f"cannot read {source.name}") from exc
    if raw.startswith(b"\x00asm"):
        return raw
    try:
        return bytes(wasmtime.wat2wasm(raw.decode()))
    except (UnicodeDecodeError, wasmtime.WasmtimeError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "not WebAssembly text"
        raise ProgramBuildError(f"{source.name}: {message}") from exc


# The C toolchain (docs/programs.md "From C"): Debian 12's clang-14 and lld-14, or unversioned names.
CLANG_NAMES = ("clang", "clang-14")
WASM_LD_NAMES = ("wasm-ld", "wasm-ld-14")
C_BUILD_TIMEOUT_S = 120
# Freestanding wasm32 (no libc), WebAssembly 1.0 plus bulk memory (-mcpu=mvp keeps newer clang from emitting
# features the device refuses); no entry point; exports memory and invoke only; one 64 KiB page of memory,
# of which a 16 KiB stack (wasm-ld's default stack, 64 KiB, would not fit).
C_FLAGS = (
    "--target=wasm32",
    "-mcpu=mvp",
    "-mbulk-memory",
    "-O2",
    "-ffreestanding",
    "-nostdlib",
    "-Wl,--no-entry",
    "-Wl,--export=invoke",
    "-Wl,--initial-memory=65536",
    "-Wl,--max-memory=65536",
    "-Wl,-z,stack-size=16384",
    "-Wl,--strip-all",
)


def find_c_toolchain() -> tuple[str, str]:
    """Paths of clang and wasm-ld (``CLANG_NAMES``, ``WASM_LD_NAMES``, searched on ``PATH``)."""
    clang = next((found for name in CLANG_NAMES if (found := shutil.which(name))), None)
    wasm_ld = next((found for name in WASM_LD_NAMES if (found := shutil.which(name))), None)
    missing = [what for what, found in (("clang", clang), ("wasm-ld", wasm_ld)) if found is None]
    if clang is None or wasm_ld is None:
        raise ProgramBuildError(
            f"{' and '.join(missing)} not found on PATH: install clang and lld "
            "(Debian 12: apt-get install clang-14 lld-14)"
        )
    return clang, wasm_ld


def c_build_command(clang: str, wasm_ld: str, source: Path, out: Path) -> list[str]:
    """The command ``build_c`` runs; ``-fuse-ld`` makes clang link with the wasm-ld that was found (clang 14
    ignores ``--ld-path`` for wasm32)."""
    return [clang, *C_FLAGS, f"-fuse-ld={wasm_ld}", "-o", str(out), str(source)]


def build_c(source: Path, out: Path) -> bytes:
    """Compile and link a freestanding C program (including ``tenantcard.h``) to ``out``; returns the module."""
    if not source.is_file():
        raise ProgramBuildError(f"cannot read {source.name}")
    clang, wasm_ld = find_c_toolchain()
    try:
        done = subprocess.run(
            c_build_command(clang, wasm_ld, source, out),
            capture_output=True,
            text=True,
            timeout=C_BUILD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProgramBuildError(f"{source.name}: cannot run {Path(clang).name}: {exc}") from exc
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        detail = "\n".join(lines[:20]) or f"exit status {done.returncode}"
        raise ProgramBuildError(f"{source.name}: {Path(clang).name} failed:\n{detail}")
    try:
        module = out.read_bytes()
    except OSError as exc:
        raise ProgramBuildError(f"{source.name}: no module written to {out.name}") from exc
    if not module.startswith(b"\x00asm"):
        raise ProgramBuildError(f"{out.name} is not a WebAssembly module")
    return module


def make_manifest(
    module: bytes,
    *,
    container_aid: bytes,
    program_id: int,
    version: int,
    memory_bytes: int = DEFAULT_MEMORY,
    fuel: int = DEFAULT_FUEL,
    deadline_ms: int = DEFAULT_DEADLINE_MS,
    access: int = 0x02,
    name: str = "",
) -> Manifest:
    return Manifest(
        container_aid=container_aid,
        program_id=program_id,
        version=version,
        module_sha256=hashlib.sha256(module).digest(),
        module_size=len(module),
        memory_bytes=memory_bytes,
        fuel=fuel,
        deadline_ms=deadline_ms,
        access=access,
        name=name,
        host_api=HOST_API_VERSION,
    )


def sign_manifest(key: ProgramSigningKey, manifest: Manifest) -> SignedManifest:
    message = manifest.signing_input()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return SignedManifest(manifest, key.sign(message))
    return SignedManifest(manifest, key.sign(message, ec.ECDSA(hashes.SHA256())))


def signed_load_file(key: ProgramSigningKey, module: bytes, **manifest_fields: object) -> LoadFile:
    """Manifest for ``module`` (fields as ``make_manifest`` takes them), signed, with the module."""
    manifest = make_manifest(module, **manifest_fields)  # type: ignore[arg-type]
    return LoadFile(sign_manifest(key, manifest), module)
