"""``programs``: a provider's commands for sandboxed WebAssembly programs in its containers (docs/programs.md).

keygen, build, sign and examples work offline. The other commands open the container named by their CONTAINER
argument (an entry of the provider's keystore) with the provider's keys, as ``tenantcard provider`` does; the
keystore is this group's ``--keystore`` or, mounted under ``tenantcard provider``, that command's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tenantcard.cli.provider_common import (
    ACCESS_NAMES,
    KEYSTORE_ENV,
    PASSPHRASE_ENV,
    access_option,
    expected_errors,
    open_file_keystore,
)
from tenantcard.wire.tenant import Access

if TYPE_CHECKING:
    from tenantcard.client.container import ContainerSession

SIGNING_PASSWORD_ENV = "TENANTCARD_PROGRAM_KEY_PASSWORD"

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    from tenantcard.provider.programs import ProgramBuildError

    with expected_errors(ProgramBuildError):
        yield


def _password() -> bytes | None:
    value = os.environ.get(SIGNING_PASSWORD_ENV)
    return value.encode() if value else None


def _container_argument(fn: F) -> F:
    return click.argument("container")(fn)


@contextlib.contextmanager
def _session(container: str) -> Iterator[ContainerSession]:
    """The container's session with the provider's channel open (level 33)."""
    where = click.get_current_context().find_object(_Where)
    if where is None:
        raise click.UsageError(f"give --keystore (or ${KEYSTORE_ENV})")
    with _errors():
        provider = where.provider()
        with provider.open(container) as session:
            yield session


@dataclass
class _Where:
    """Where the container keys are: ``--keystore`` of this group, else the enclosing provider command's."""

    keystore: Path | None
    parent: object

    def provider(self) -> Any:
        from tenantcard.provider.sdk import Provider

        if self.keystore is not None:
            return Provider(open_file_keystore(self.keystore))
        make = getattr(self.parent, "provider", None)
        if callable(make):
            return make()
        raise click.UsageError(f"give --keystore (or ${KEYSTORE_ENV})")


@click.group("programs")
@click.option(
    "--keystore",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=KEYSTORE_ENV,
    default=None,
    help=f"Keystore file (or ${KEYSTORE_ENV}; default: that of 'tenantcard provider'); passphrase from "
    f"${PASSPHRASE_ENV} or a prompt.",
)
@click.pass_context
def programs(ctx: click.Context, keystore: Path | None) -> None:
    """Sign, load and run sandboxed WebAssembly programs in your containers (docs/programs.md).

    A container is named by its keystore entry, DEVICE_ID/AID, as in 'tenantcard provider list'.
    """
    ctx.obj = _Where(keystore, ctx.obj)


@programs.command("keygen")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PEM file to create.")
@click.option(
    "--algorithm",
    type=click.Choice(["ed25519", "p256"]),
    default="ed25519",
    show_default=True,
    help="Signature scheme.",
)
def keygen(out: Path, algorithm: str) -> None:
    """Create a program-signing key (PKCS#8 PEM, mode 0600; encrypted when $TENANTCARD_PROGRAM_KEY_PASSWORD
    is set) and print its public key."""
    from tenantcard.provider.programs import generate_signing_key, public_key_bytes, save_signing_key
    from tenantcard.wire.programs import SigningAlgorithm

    alg = SigningAlgorithm.ED25519 if algorithm == "ed25519" else SigningAlgorithm.ECDSA_P256_SHA256
    if out.exists():
        raise click.ClickException(f"{out} exists already; a signing key is never overwritten")
    key = generate_signing_key(alg)
    with _errors():
        save_signing_key(key, out, _password())
    click.echo(f"{algorithm} program-signing key written to {out}")
    click.echo(f"public key {public_key_bytes(key).hex()}")


def _hex(value: str, what: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise click.BadParameter(f"{what} must be hex") from None


@programs.command("sign")
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Program-signing key (PEM, from 'programs keygen').",
)
@click.option(
    "--module",
    "module_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The program: a .wasm binary, or WebAssembly text compiled here with wasmtime.wat2wasm.",
)
@click.option("--container-aid", required=True, metavar="HEX", help="AID of the container it is for.")
@click.option("--program-id", type=click.IntRange(1, 254), required=True, help="INVOKE P1 of the program.")
@click.option(
    "--version", "version", type=click.IntRange(0, 0xFFFFFFFF), required=True, help="Program version (must grow)."
)
@click.option(
    "--memory",
    type=click.IntRange(65536, 0xFFFFFFFF),
    default=65536,
    show_default=True,
    help="Linear memory limit, bytes.",
)
@click.option("--fuel", type=click.IntRange(1), default=10_000_000, show_default=True, help="Budget per call.")
@click.option(
    "--deadline-ms", type=click.IntRange(1, 0xFFFFFFFF), default=500, show_default=True, help="Time limit per call."
)
@access_option("provider")
@click.option("--name", default="", help="A name for people (up to 32 bytes).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Load file to write.")
def sign(
    key: Path,
    module_path: Path,
    container_aid: str,
    program_id: int,
    version: int,
    memory: int,
    fuel: int,
    deadline_ms: int,
    access: str,
    name: str,
    out: Path,
) -> None:
    """Sign a manifest for a module and write the load file (signed manifest + module)."""
    from tenantcard.provider.programs import build_module, load_signing_key, signed_load_file

    aid = _hex(container_aid, "--container-aid")
    with _errors():
        module = build_module(module_path)
        signer = load_signing_key(key, _password())
        load_file = signed_load_file(
            signer,
            module,
            container_aid=aid,
            program_id=program_id,
            version=version,
            memory_bytes=memory,
            fuel=fuel,
            deadline_ms=deadline_ms,
            access=ACCESS_NAMES[access],
            name=name,
        )
        out.write_bytes(load_file.to_bytes())
    click.echo(
        f"program {program_id} version {version}: {len(module)} bytes, sha256 {hashlib.sha256(module).hexdigest()}"
    )
    click.echo(f"load file written to {out}")


@programs.command("trust")
@_container_argument
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Program-signing key (PEM) whose public half the container will trust.",
)
def trust(container: str, key: Path) -> None:
    """Install the public half of a program-signing key in the container: from then on it accepts only
    programs signed by that key."""
    from tenantcard.client.programs import ProgramsClient
    from tenantcard.provider.programs import algorithm_of, load_signing_key, public_key_bytes

    with _errors():
        signer = load_signing_key(key, _password())
    with _session(container) as session, _errors():
        ProgramsClient(session).put_signing_key(algorithm_of(signer), public_key_bytes(signer))
    click.echo("program-signing key installed")


@click.command("install")
@_container_argument
@click.argument("load_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def install(container: str, load_file: Path) -> None:
    """Load a signed load file (made by 'sign'): installs the program, or upgrades it to a higher version."""
    from tenantcard.client.programs import ProgramsClient
    from tenantcard.wire.programs import LoadFile

    with _errors():
        parsed = LoadFile.parse(load_file.read_bytes())
    with _session(container) as session, _errors():
        ProgramsClient(session).install(parsed)
    m = parsed.signed.manifest
    click.echo(f"program {m.program_id} version {m.version} installed")


programs.add_command(install, "install")
programs.add_command(install, "load")


@programs.command("list")
@_container_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_programs(container: str, as_json: bool) -> None:
    """The container's programs."""
    from rich.console import Console
    from rich.table import Table

    from tenantcard.client.programs import ProgramsClient

    with _session(container) as session, _errors():
        entries = ProgramsClient(session).list()
    if as_json:
        rows = [
            {
                "program_id": e.manifest.program_id,
                "name": e.manifest.name,
                "version": e.manifest.version,
                "module_sha256": e.manifest.module_sha256.hex(),
                "module_size": e.manifest.module_size,
                "memory_bytes": e.manifest.memory_bytes,
                "fuel": e.manifest.fuel,
                "deadline_ms": e.manifest.deadline_ms,
                "access": Access(e.manifest.access).name.lower(),
                "data_objects": e.data_objects,
            }
            for e in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "version", "module", "memory", "fuel", "deadline", "access", "objects")
    for e in entries:
        m = e.manifest
        table.add_row(
            str(m.program_id),
            m.name,
            str(m.version),
            f"{m.module_size} B",
            f"{m.memory_bytes} B",
            str(m.fuel),
            f"{m.deadline_ms} ms",
            Access(m.access).name.lower(),
            str(e.data_objects),
        )
    Console().print(table)


@programs.command("invoke")
@_container_argument
@click.argument("program_id", type=click.IntRange(1, 254))
@click.option("--p2", type=click.IntRange(0, 255), default=0, show_default=True, help="P2 byte of INVOKE.")
@click.option("--data", "data_hex", default="", metavar="HEX", help="Command data.")
def invoke(container: str, program_id: int, p2: int, data_hex: str) -> None:
    """Send command data to a program; prints its answer and status word (exit 1 unless 9000)."""
    from tenantcard.client.programs import ProgramsClient, trap_reason

    data = _hex(data_hex, "--data")
    with _session(container) as session, _errors():
        result = ProgramsClient(session).invoke(program_id, data, p2)
    if result.data:
        click.echo(result.data.hex())
    reason = trap_reason(int(result.sw))
    click.echo(f"SW {int(result.sw):04X}" + (f": {reason}" if reason else ""), err=True)
    if int(result.sw) != 0x9000:
        raise SystemExit(1)


@programs.command("delete")
@_container_argument
@click.argument("program_id", type=click.IntRange(1, 254))
def delete(container: str, program_id: int) -> None:
    """Delete a program and its data objects."""
    from tenantcard.client.programs import ProgramsClient

    with _session(container) as session, _errors():
        ProgramsClient(session).delete(program_id)
    click.echo(f"program {program_id} deleted")


@programs.command("genkey")
@_container_argument
@click.argument("key_id", type=click.IntRange(1, 254))
@click.option(
    "--type",
    "key_type",
    type=click.Choice(["ed25519", "p256"]),
    default="ed25519",
    show_default=True,
    help="Key type.",
)
def genkey(container: str, key_id: int, key_type: str) -> None:
    """Generate a signing key for programs in the container (it never leaves it); prints the public key."""
    from tenantcard.client.programs import ProgramsClient
    from tenantcard.wire.programs import ProgramKeyType

    kt = ProgramKeyType.ED25519 if key_type == "ed25519" else ProgramKeyType.ECDSA_P256
    with _session(container) as session, _errors():
        public = ProgramsClient(session).generate_key(key_id, kt)
    click.echo(public.hex())


@programs.command("putkey")
@_container_argument
@click.argument("key_id", type=click.IntRange(1, 254))
@click.option(
    "--hmac-secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="File holding the raw HMAC-SHA256 secret (16..64 bytes); it travels encrypted (level 33).",
)
def putkey(container: str, key_id: int, hmac_secret_file: Path) -> None:
    """Import an HMAC key for programs in the container."""
    from tenantcard.client.programs import ProgramsClient
    from tenantcard.wire.programs import ProgramKeyType

    with _errors():
        secret = hmac_secret_file.read_bytes()
    if not 16 <= len(secret) <= 64:
        raise click.ClickException("an HMAC secret is 16..64 bytes")
    with _session(container) as session, _errors():
        ProgramsClient(session).put_key(key_id, ProgramKeyType.HMAC_SHA256, secret)
    click.echo(f"HMAC key {key_id} imported")


@programs.command("examples")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory to write.")
def examples(out: Path) -> None:
    """Write the example programs (WebAssembly text, some also in C with the header tenantcard.h) to a
    directory, to read, change, build and sign."""
    from tenantcard.device.programs.examples import C_EXAMPLES, C_HEADER, EXAMPLES, c_header, example_c, example_wat

    with _errors():
        out.mkdir(parents=True, exist_ok=True)
        for name in EXAMPLES:
            (out / f"{name}.wat").write_text(example_wat(name))
        for name in C_EXAMPLES:
            (out / f"{name}.c").write_text(example_c(name))
        (out / C_HEADER).write_text(c_header())
    c_files = ", ".join([*(f"{name}.c" for name in C_EXAMPLES), C_HEADER])
    click.echo(f"{', '.join(EXAMPLES)} written to {out} (in C too: {c_files})")


@programs.command("build")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Module (.wasm) to write."
)
def build(source: Path, out: Path) -> None:
    """Compile a freestanding C program (with tenantcard.h) to a WebAssembly module the device accepts, with
    clang and wasm-ld (docs/programs.md "From C")."""
    from tenantcard.provider.programs import build_c

    with _errors():
        module = build_c(source, out)
    click.echo(f"{out}: {len(module)} bytes, sha256 {hashlib.sha256(module).hexdigest()}")
