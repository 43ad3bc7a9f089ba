"""``tenantcard device``: create a software device, serve it at a network address, show what it holds."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from tenantcard.cli.config import configurable
from tenantcard.transport.base import TransportError

if TYPE_CHECKING:
    from collections.abc import Callable

    from tenantcard.crypto.scp03 import StaticKeys
    from tenantcard.device.os import Device
    from tenantcard.keyvault import KeyVault
    from tenantcard.transport.base import Card
    from tenantcard.transport.pcsc_bridge import BridgeSet, Exposure

DEV_KEYS_WARNING = (
    "DEVELOPMENT DEVICE: its issuer security domain uses the well-known GlobalPlatform test key set "
    "40 41 .. 4F (KVN 30), printed in every GP tool's documentation. Anyone can open the operator's domain "
    "on this device. Never use it for real data."
)


def _stderr() -> Console:
    return Console(stderr=True)


def default_vault_uri(store: Path) -> str:
    """The file vault beside the store: ``<store>.vault``."""
    return f"file:{store}.vault"


def _vault(uri: str, *, create: bool) -> KeyVault:
    """Open the vault at ``uri``; a missing file vault is created only when ``create`` (device init)."""
    from tenantcard.keyvault import open_vault

    scheme, _, rest = uri.partition(":")
    if scheme == "file" and rest and not create and not Path(rest).exists():
        raise click.ClickException(f"no key vault at {rest}")
    return open_vault(uri)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Every expected failure becomes a one-line message and exit status 1, never a traceback."""
    from tenantcard.crypto.errors import CryptoError
    from tenantcard.device.errors import DeviceError
    from tenantcard.keyvault import KeyVaultError

    try:
        yield
    except (DeviceError, KeyVaultError, TransportError, CryptoError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise click.ClickException(f"{exc.strerror or type(exc).__name__}{where}") from None


def open_device(store: Path, vault_uri: str | None) -> Device:
    """Open the device on ``store`` with its vault (default ``<store>.vault``); ClickException on failure."""
    from tenantcard.device.os import Device

    if not store.is_file():
        raise click.ClickException(f"no device store at {store}")
    with _errors():
        return Device.open(store, _vault(vault_uri or default_vault_uri(store), create=False))


def _store_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--store", type=click.Path(dir_okay=False, path_type=Path), required=True, help=help)


_vault_of_store = click.option(
    "--vault", "vault_uri", default=None, metavar="URI", help="Key vault of the store (default file:<store>.vault)."
)


@click.group("device", context_settings={"help_option_names": ["-h", "--help"]})
def device() -> None:
    """Create and serve a software device: a secure element holding an issuer security domain (the
    operator's) and several secure containers rented to service providers.

    A device is one sealed SQLite store file plus a key vault that holds the store's sealing key.
    """


@configurable("TENANTCARD_DEVICE")
@device.command("init")
@_store_option("Store file to create (must not exist).")
@click.option("--containers", type=click.IntRange(1, 255), required=True, help="Number of secure containers (1-255).")
@click.option(
    "--quota",
    type=click.IntRange(min=1),
    default=None,
    help="Memory quota of each container, in bytes (default 65536).",
)
@click.option(
    "--vault",
    "vault_uri",
    default=None,
    metavar="URI",
    help="Key vault for the store's sealing key: file:PATH (created if missing) or "
    "pkcs11:module=...;token=...;key=... (PIN in $TENANTCARD_PKCS11_PIN). Default: file:<store>.vault.",
)
@click.option(
    "--dev-keys",
    is_flag=True,
    help="Give the issuer security domain the well-known GlobalPlatform test keys 40..4F, KVN 30. "
    "For development only: anyone can then act as the operator.",
)
@click.option(
    "--keys-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Without --dev-keys: file (created, mode 0600, must not exist) that receives the random ISD key "
    "set, once. The keys are never printed.",
)
@click.option(
    "--kvn",
    type=click.IntRange(1, 0x7F),
    default=1,
    show_default=True,
    help="Key version number of the random ISD key set (GP 2.3.1 §11.1.8).",
)
@click.option(
    "--key-length",
    type=click.Choice(["16", "24", "32"]),
    default="16",
    show_default=True,
    help="AES key length of the random ISD key set, in bytes.",
)
def init(
    store: Path,
    containers: int,
    quota: int | None,
    vault_uri: str | None,
    dev_keys: bool,
    keys_out: Path | None,
    kvn: int,
    key_length: str,
) -> None:
    """Manufacture a new device store: device id, identity key with a certificate from a throw-away
    development CA, the operator's ISD key set, and N empty containers.

    Either --dev-keys (well-known test keys) or --keys-out PATH (random keys written once to PATH).
    """
    from tenantcard.crypto.scp03 import StaticKeys
    from tenantcard.device.provision import DEFAULT_QUOTA, ContainerSpec, create_device_store, dev_spec

    if dev_keys and keys_out is not None:
        raise click.UsageError("--keys-out is for random ISD keys; --dev-keys uses the well-known test keys")
    if not dev_keys and keys_out is None:
        raise click.UsageError("give --keys-out PATH (random ISD keys, written there once) or --dev-keys")
    if store.exists():
        raise click.ClickException(f"{store} exists already; a device store is never overwritten")
    specs = [ContainerSpec(quota_bytes=quota or DEFAULT_QUOTA) for _ in range(containers)]
    isd_keys = None if dev_keys else StaticKeys.generate(kvn, int(key_length))
    uri = vault_uri or default_vault_uri(store)
    scheme, _, vault_path = uri.partition(":")
    new_vault_file = Path(vault_path) if scheme == "file" and vault_path and not Path(vault_path).exists() else None
    keys_fd: int | None = None
    created: list[Path] = []  # removed again if init fails: nothing half-made stays behind
    done = False
    with _errors():
        try:
            if keys_out is not None:
                # O_EXCL: the key file is written exactly once; 0600 from the start, never wider.
                keys_fd = os.open(keys_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                created.append(keys_out)
            if new_vault_file is not None:
                created.append(new_vault_file)
            vault = _vault(uri, create=True)
            spec = dev_spec(specs, isd_keys=isd_keys)
            create_device_store(store, spec, vault)  # cleans up after itself when it fails
            created += [store, Path(f"{store}-wal"), Path(f"{store}-shm")]
            if keys_fd is not None and isd_keys is not None:
                _write_keys(keys_fd, spec.device_id, spec.serial, isd_keys)
            done = True
        finally:
            if keys_fd is not None:
                os.close(keys_fd)
            if not done:
                for path in created:
                    path.unlink(missing_ok=True)
    if dev_keys:
        _stderr().print(Panel(DEV_KEYS_WARNING, title="WARNING", style="bold red"))
    click.echo(f"created device {spec.device_id.hex()} (serial {spec.serial}) with {containers} containers in {store}")
    if keys_out is not None:
        click.echo(f"ISD key set (KVN {kvn:02X}) written to {keys_out}")


def _write_keys(fd: int, device_id: bytes, serial: str, keys: StaticKeys) -> None:
    enc_kcv, mac_kcv, dek_kcv = keys.kcvs()
    document = {
        "device_id": device_id.hex(),
        "serial": serial,
        "kvn": keys.kvn,
        "key_length": keys.length,
        "enc": keys.enc.hex(),
        "mac": keys.mac.hex(),
        "dek": keys.dek.hex(),
        "kcv": {"enc": enc_kcv.hex(), "mac": mac_kcv.hex(), "dek": dek_kcv.hex()},
    }
    data = (json.dumps(document, indent=2) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


@configurable("TENANTCARD_DEVICE")
@device.command("serve")
@_store_option("The device's store file (made by 'device init').")
@click.option(
    "--listen",
    required=True,
    metavar="HOST:PORT",
    help="Address of the TCP endpoint (vpcd framing). Port 0 picks a free port; the chosen address is "
    "printed as 'listening tcp://HOST:PORT'.",
)
@_vault_of_store
@click.option(
    "--max-connections",
    type=click.IntRange(1, 4096),
    default=64,
    show_default=True,
    help="Connections served at once; more are refused.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0.1),
    default=300.0,
    show_default=True,
    help="Seconds without a command before a connection is closed.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Logging on stderr (APDU headers appear at debug only; data never).",
)
@click.option(
    "--pcsc",
    default=None,
    metavar="HOST:PORT[,PORT...]",
    help="Also appear to PC/SC: dial vsmartcard vpcd at these ports, the first for the device itself, each "
    "next one for the next container (a card only while that container is owned). docs/pcsc.md.",
)
@click.option(
    "--pcsc-port",
    type=click.IntRange(1, 0xFFFF),
    default=None,
    metavar="BASE",
    help="Short for --pcsc 127.0.0.1:BASE,BASE+1,...: the device and every container.",
)
def serve(
    store: Path,
    listen: str,
    vault_uri: str | None,
    max_connections: int,
    idle_timeout: float,
    log_level: str,
    pcsc: str | None,
    pcsc_port: int | None,
) -> None:
    """Serve the device at a network address until SIGTERM or Ctrl-C.

    Each TCP connection is its own card session (selected application, secure channel). Every command is
    one transaction of the store: a crash never leaves a container half-changed.
    """
    from tenantcard.transport.tcp_client import parse_address
    from tenantcard.transport.tcp_server import DeviceServerThread

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with _errors():
        host, port = parse_address(listen)
    if pcsc is not None and pcsc_port is not None:
        raise click.UsageError("give --pcsc or --pcsc-port, not both")
    dev = open_device(store, vault_uri)
    servers: list[DeviceServerThread] = []
    bridges: BridgeSet | None = None
    try:
        with _errors():
            servers.append(
                DeviceServerThread(dev, host, port, max_connections=max_connections, idle_timeout=idle_timeout).start()
            )
        click.echo(f"listening {servers[0].address}")
        if pcsc is not None or pcsc_port is not None:
            with _errors():
                bridges = start_pcsc(dev, pcsc or f"127.0.0.1:{pcsc_port}", all_ports=pcsc is None)
            click.echo(f"pcsc vpcd {', '.join(f'{b.host}:{b.port}' for b in bridges.bridges)}")
        _wait_for_stop()
    finally:
        if bridges is not None:
            bridges.stop()
        for server in servers:
            server.stop()
        dev.close()
    click.echo("stopped", err=True)


class ContainerSlot:
    """The card sessions of one container: each one scoped to it (its SELECTs reach nothing else)."""

    def __init__(self, dev: Device, index: int) -> None:
        self._dev = dev
        self._index = index

    def connect(self) -> Card:
        return self._dev.connect(container=self._index)


def _owned(dev: Device, index: int) -> Callable[[], bool]:
    """Whether container ``index`` is a card right now: OWNED (not available, authorized, locked, revoked)."""
    from tenantcard.device.store import ContainerState

    def present() -> bool:
        with dev.lock:
            row = dev.store.container(index)
        return row is not None and row.state == ContainerState.OWNED

    return present


def pcsc_exposures(dev: Device) -> list[Exposure]:
    """The device itself, then each container in index order, as PC/SC cards (docs/pcsc.md)."""
    from tenantcard.transport.pcsc_bridge import Exposure

    exposures = [Exposure(dev, name="device")]
    for index in dev.container_indexes():
        exposures.append(Exposure(ContainerSlot(dev, index), _owned(dev, index), name=f"container {index}"))
    return exposures


def start_pcsc(dev: Device, target: str, *, all_ports: bool = False) -> BridgeSet:
    """Dial vpcd at ``HOST:PORT[,PORT...]`` (``all_ports``: PORT is the first of consecutive ports enough for
    the device and every container); raises TransportError on a bad target."""
    from tenantcard.transport.pcsc_bridge import BridgeSet, parse_pcsc_target

    host, ports = parse_pcsc_target(target)
    exposures = pcsc_exposures(dev)
    if all_ports:
        ports = [ports[0] + i for i in range(len(exposures))]
        if ports[-1] > 0xFFFF:
            raise TransportError("not enough ports above the vpcd base port")
    return BridgeSet(exposures[: len(ports)], ports, host).start()


def _wait_for_stop() -> None:
    """Block until SIGTERM, SIGINT or SIGHUP."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@configurable("TENANTCARD_DEVICE")
@device.command("info")
@_store_option("The device's store file.")
@_vault_of_store
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(store: Path, vault_uri: str | None, as_json: bool) -> None:
    """Show the device id, serial and each container's AID, state, provider and memory use. No secrets."""
    from tenantcard.wire.gp import container_aid

    dev = open_device(store, vault_uri)
    device_id = dev.device_id.hex()
    try:
        with _errors():
            serial = (dev.store.get_meta("serial") or b"").decode(errors="replace")
            rows = dev.store.containers()
    finally:
        dev.close()
    containers = [
        {
            "index": row.index,
            "aid": container_aid(row.index).hex().upper(),
            "state": row.state.name,
            "provider": row.provider_id,
            "quota": row.quota,
            "used": row.used,
        }
        for row in rows
    ]
    if as_json:
        click.echo(json.dumps({"device_id": device_id, "serial": serial, "containers": containers}))
        return
    console = Console()
    console.print(f"device id [bold]{device_id}[/bold]   serial [bold]{serial}[/bold]")
    table = Table("index", "AID", "state", "provider", "used / quota (bytes)")
    for c in containers:
        table.add_row(
            str(c["index"]), str(c["aid"]), str(c["state"]), str(c["provider"] or "-"), f"{c['used']} / {c['quota']}"
        )
    console.print(table)
