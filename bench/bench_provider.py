"""Provider figures: transactions over TCP, and in-container ECDSA P-256 signing against SoftHSM2.

1. ``provider.tcp_transaction``: what a provider's service does per request — SELECT its container, open SCP03
   (INITIALIZE UPDATE + EXTERNAL AUTHENTICATE, security level 33) and have the container sign once — against
   the floor of the same four TCP round trips with no cryptography (four SELECTs of the container), both on
   one kept connection to ``tenantcard device serve`` running in its own process.
2. ``provider.ecdsa_sign_holder``: one ECDSA P-256/SHA-256 signature by a key generated inside a container,
   through the device API in-process (C-APDU bytes to ``Card.execute``, the holder PIN verified, the sealed
   store read for the key) against SoftHSM2's C_Sign (CKM_ECDSA over the message's SHA-256) through
   python-pkcs11.
3. ``provider.ecdsa_sign_provider``: the same signature inside the provider's SCP03 channel at level 33
   (C-MAC, C-ENC, R-MAC, R-ENC on both sides) against the same SoftHSM2 C_Sign.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from tests.support.services import softhsm_init_token, softhsm_module

from bench.common import Figure, compared, interleaved, per_second
from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.client.pki import PkiClient
from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import Connection, LocalConnection
from tenantcard.transport.tcp_client import TcpConnection, parse_address
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.gp import container_aid
from tenantcard.wire.tenant import Access

MESSAGE = b"provider transaction: pay 10 EUR to account 42" * 2
PIN = "123456"


def own_container(connect: Callable[[], Connection], index: int = 0) -> StaticKeys:
    """The operator's placement (development ISD keys) and the provider's takeover; a P-256 key in slot 1."""
    initial, own = StaticKeys.generate(0x01), StaticKeys.generate(0x02)
    conn = connect()
    try:
        isd = IsdSession(conn)
        isd.select()
        isd.authenticate(gp_test_keys())
        isd.place_authorization(container_aid(index), "bench-provider", initial, int(time.time()) + 3600)
    finally:
        conn.close()
    conn = connect()
    try:
        session = ContainerSession(conn, container_aid(index))
        session.select()
        session.take_ownership(initial, own)
        session.set_pin(PIN)
        PkiClient(session).generate_key(1, "p256", access=Access.HOLDER_OR_PROVIDER)
    finally:
        conn.close()
    return own


@contextlib.contextmanager
def served_device(folder: Path) -> Iterator[str]:
    """``tenantcard device serve`` on a development store, in its own process; yields its address."""
    store = folder / "device.db"
    cli = [sys.executable, "-m", "tenantcard.cli.main", "device"]
    subprocess.run(
        [*cli, "init", "--store", str(store), "--containers", "1", "--dev-keys"], check=True, capture_output=True
    )
    proc = subprocess.Popen(
        [*cli, "serve", "--store", str(store), "--listen", "127.0.0.1:0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"device did not start: {line!r}")
        yield line.removeprefix("listening ")
    finally:
        proc.terminate()
        proc.wait(10)


def tcp_figure(folder: Path, quick: bool) -> Figure:
    with served_device(folder) as address:
        host, port = parse_address(address)

        def connect() -> Connection:
            return TcpConnection(host, port)

        keys = own_container(connect)
        conn = connect()
        try:
            session = ContainerSession(conn, container_aid(0))
            pki = PkiClient(session)
            select = CommandApdu(0x00, 0xA4, 0x04, 0x00, container_aid(0), le=256).to_bytes()

            def transaction() -> None:
                session.select()
                session.authenticate(keys, 0x33)
                pki.sign(1, MESSAGE)

            def floor() -> None:
                for _ in range(4):
                    conn.transmit(select)

            tx, base = interleaved(transaction, floor, repeat=3 if quick else 7, number=10 if quick else 50)
        finally:
            conn.close()
    return per_second(
        "provider.tcp_transaction",
        tx,
        base,
        (
            "provider transactions per second over TCP (SELECT + SCP03 INITIALIZE UPDATE/EXTERNAL AUTHENTICATE at "
            "level 33 + one in-container ECDSA P-256 sign), one kept connection to 'tenantcard device serve' in "
            "its own process; baseline: the same 4 round trips with no crypto (4 x SELECT of the container)"
        ),
        aim="ratio >= 0.25",
    )


_TOKEN: tuple[str, str] | None = None


def _softhsm_conf() -> Path:
    """The SoftHSM2 configuration of this process: a PKCS#11 module reads SOFTHSM2_CONF once, when it is first
    initialized, so every token of the process lives in that one token directory."""
    current = os.environ.get("SOFTHSM2_CONF")
    if current and Path(current).is_file():
        return Path(current)
    folder = Path(tempfile.mkdtemp(prefix="tc-bench-softhsm-"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


@contextlib.contextmanager
def softhsm_signer() -> Iterator[Callable[[], bytes]]:
    """A fresh SoftHSM2 token with an EC P-256 key pair; yields SHA-256 on the host + ``C_Sign(CKM_ECDSA)``."""
    import pkcs11
    from pkcs11.util.ec import encode_named_curve_parameters

    module = softhsm_module()
    global _TOKEN
    if _TOKEN is None:  # one token per process: SoftHSM2 does not see tokens made after it was initialized
        label, pin = "bench-" + uuid.uuid4().hex[:8], uuid.uuid4().hex[:12]
        softhsm_init_token(_softhsm_conf(), label, pin, pin)
        _TOKEN = (label, pin)
    label, pin = _TOKEN
    token = pkcs11.lib(module).get_token(token_label=label)
    with token.open(user_pin=pin, rw=True) as session:
        params = session.create_domain_parameters(
            pkcs11.KeyType.EC, {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
        )
        private: Any = params.generate_keypair()[1]
        mechanism: Any = pkcs11.Mechanism.ECDSA  # SoftHSM2 has no CKM_ECDSA_SHA256: hash on the host

        def sign() -> bytes:
            digest = hashes.Hash(hashes.SHA256())
            digest.update(MESSAGE)
            return bytes(private.sign(digest.finalize(), mechanism=mechanism))

        yield sign


def device_figures(folder: Path, quick: bool) -> list[Figure]:
    vault = FileKeyVault(folder / "vault.key")
    create_device_store(folder / "device.db", dev_spec(1), vault)
    device = Device.open(folder / "device.db", vault)
    try:
        keys = own_container(lambda: LocalConnection(device.connect()))
        holder_conn = LocalConnection(device.connect())
        holder = ContainerSession(holder_conn, container_aid(0))
        holder.select()
        holder.verify_pin(PIN)
        provider_conn = LocalConnection(device.connect())
        provider = ContainerSession(provider_conn, container_aid(0))
        provider.select()
        provider.authenticate(keys, 0x33)
        as_holder, as_provider = PkiClient(holder), PkiClient(provider)
        repeat, number = (3, 20) if quick else (7, 200)
        with softhsm_signer() as hsm_sign:
            figures = [
                compared(
                    "provider.ecdsa_sign_holder",
                    lambda: as_holder.sign(1, MESSAGE),
                    hsm_sign,
                    "ECDSA P-256/SHA-256 by a key generated in a container, through the device API in-process "
                    "(APDU in, holder PIN verified, key from the sealed store); baseline: SoftHSM2 C_Sign "
                    "(SHA-256 on the host + CKM_ECDSA) via python-pkcs11, same message",
                    aim="ratio <= 1.0",
                    repeat=repeat,
                    number=number,
                ),
                compared(
                    "provider.ecdsa_sign_provider",
                    lambda: as_provider.sign(1, MESSAGE),
                    hsm_sign,
                    "the same in-container signature inside the provider's SCP03 channel at level 33 (secure "
                    "messaging on host and card); baseline: SoftHSM2 C_Sign (SHA-256 + CKM_ECDSA) via "
                    "python-pkcs11",
                    aim="ratio <= 1.5",
                    repeat=repeat,
                    number=number,
                ),
            ]
        holder_conn.close()
        provider_conn.close()
    finally:
        device.close()
    return figures


def run(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="tc-bench-provider-") as tmp:
        folder = Path(tmp)
        (folder / "tcp").mkdir()
        (folder / "inproc").mkdir()
        return [tcp_figure(folder / "tcp", quick), *device_figures(folder / "inproc", quick)]


if __name__ == "__main__":
    for figure in run("--quick" in sys.argv):
        print(f"{figure.name}: {figure.value:.4g} {figure.unit} vs {figure.baseline:.4g} -> ratio {figure.ratio:.3f}")
