"""The provider's programs commands against a real device served over TCP, with a real keystore."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tenantcard.cli.programs import SIGNING_PASSWORD_ENV, programs
from tenantcard.cli.provider_common import PASSPHRASE_ENV
from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import ContainerSpec, create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.provider.keystore import ContainerRecord, FileKeystore
from tenantcard.transport.tcp_client import connect
from tenantcard.transport.tcp_server import DeviceServerThread
from tenantcard.wire.gp import container_aid
from tests.unit.programs import cases

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A device with container 1 owned by the provider, served over TCP; the keystore holding its keys."""
    path = tmp_path / "device.db"
    vault = FileKeyVault(tmp_path / "vault.key")
    create_device_store(path, dev_spec([ContainerSpec(quota_bytes=256 * 1024)] * 2), vault)
    device = Device.open(path, vault)
    server = DeviceServerThread(device, "127.0.0.1", 0).start()
    try:
        initial, own = StaticKeys.generate(0x01), StaticKeys.generate(0x31)
        with connect(server.address) as conn:
            isd = IsdSession(conn)
            isd.select()
            isd.authenticate(gp_test_keys())
            isd.place_authorization(container_aid(1), "provider-a", initial, int(time.time()) + 3600)
        with connect(server.address) as conn:
            session = ContainerSession(conn, container_aid(1))
            session.select()
            session.take_ownership(initial, own)
        keystore = tmp_path / "keystore"
        store = FileKeystore.create(keystore, PASSPHRASE, n=2**10)
        store.save(ContainerRecord("c1", device.device_id.hex(), server.address, container_aid(1), own))
        yield keystore, tmp_path
    finally:
        server.stop()
        device.close()


def run(*args: str, keystore: Path | None = None) -> tuple[int, str]:
    options = ["--keystore", str(keystore)] if keystore is not None else []
    env = {PASSPHRASE_ENV: PASSPHRASE, SIGNING_PASSWORD_ENV: "pw"}
    result = CliRunner().invoke(programs, [*options, *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_keygen_sign_trust_install_invoke_delete(served: tuple[Path, Path]) -> None:
    keystore, tmp = served
    cli = functools.partial(run, keystore=keystore)
    where = ["c1"]
    code, out = cli("keygen", "--out", str(tmp / "signer.pem"))
    assert code == 0 and "public key" in out
    assert cli("keygen", "--out", str(tmp / "signer.pem"))[0] == 1  # never overwritten
    assert cli("examples", "--out", str(tmp / "ex"))[0] == 0
    sign = ["sign", "--key", str(tmp / "signer.pem"), "--module", str(tmp / "ex" / "counter.wat")]
    sign += ["--container-aid", container_aid(1).hex(), "--program-id", "7", "--version", "1", "--name", "counter"]
    code, out = cli(*sign, "--out", str(tmp / "counter.load"))
    assert code == 0, out
    code, out = cli("install", *where, str(tmp / "counter.load"))
    assert code == 1 and "no program-signing key is installed" in out
    assert cli("trust", *where, "--key", str(tmp / "signer.pem"))[0] == 0
    code, out = cli("load", *where, str(tmp / "counter.load"))
    assert (code, out.strip()) == (0, "program 7 version 1 installed")
    code, out = cli("install", *where, str(tmp / "counter.load"))
    assert code == 1 and "equal or newer version" in out
    code, out = cli("list", *where, "--json")
    assert code == 0
    [entry] = json.loads(out)
    assert (entry["program_id"], entry["name"], entry["version"], entry["access"]) == (7, "counter", 1, "provider")
    assert cli("list", *where)[0] == 0
    code, out = cli("invoke", *where, "7")
    assert (code, out.splitlines()[0]) == (0, "00000001")
    code, out = cli("invoke", *where, "7", "--p2", "9")
    assert code == 1 and "SW 6A86" in out
    assert cli("delete", *where, "7")[0] == 0
    code, out = cli("delete", *where, "7")
    assert code == 1 and "no such program" in out


def test_bad_input_is_a_message_not_a_traceback(served: tuple[Path, Path]) -> None:
    keystore, tmp = served
    cli = functools.partial(run, keystore=keystore)
    where = ["c1"]
    (tmp / "broken.wat").write_text("(module (func $f (unknown_instr)))")
    (tmp / "hostile.wat").write_text(cases.HOSTILE)
    cli("keygen", "--out", str(tmp / "k.pem"))
    base = ["sign", "--key", str(tmp / "k.pem"), "--container-aid", container_aid(1).hex(), "--version", "1"]
    code, out = cli(*base, "--module", str(tmp / "broken.wat"), "--program-id", "1", "--out", str(tmp / "x"))
    assert code == 1 and "broken.wat" in out
    code, out = cli(*base, "--module", str(tmp / "hostile.wat"), "--program-id", "1", "--out", str(tmp / "h.load"))
    assert code == 0
    code, out = cli(
        *base,
        "--module",
        str(tmp / "hostile.wat"),
        "--program-id",
        "1",
        "--container-aid",
        "zz",
        "--out",
        str(tmp / "y"),
    )
    assert code == 2 and "hex" in out
    (tmp / "garbage.load").write_bytes(b"\x01\x02\x03")
    code, out = cli("install", *where, str(tmp / "garbage.load"))
    assert code == 1 and "Error" in out
    cli("trust", *where, "--key", str(tmp / "k.pem"))
    assert cli("install", *where, str(tmp / "h.load"))[0] == 0
    code, out = cli("invoke", *where, "1", "--p2", "1")
    assert code == 1 and "SW 6F01: the program ran out of fuel" in out
    code, out = cli("list", "nope")
    assert code == 1 and "Error" in out


def test_keystore_from_this_group_or_the_provider_command(served: tuple[Path, Path]) -> None:
    keystore, _ = served
    code, out = run("list", "c1")
    assert code == 2 and "--keystore" in out
    from tenantcard.cli.main import cli as tenantcard

    args = ["provider", "--keystore", str(keystore), "programs", "list", "c1", "--json"]
    result = CliRunner().invoke(tenantcard, args, env={PASSPHRASE_ENV: PASSPHRASE})
    assert (result.exit_code, json.loads(result.output)) == (0, [])
