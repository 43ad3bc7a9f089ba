"""A real device whose containers carry a PIV personality, exposed to the machine's pcscd through vpcd.

The operator places authorizations in the issuer security domain, each provider takes its container over with
its own keys and installs PIV in it through its SCP03 channel (``client.piv.PivProvisioner``), then the
device dials vpcd the way ``tenantcard device serve --pcsc`` does: the device on the first port, container
``i`` on port ``1 + i``.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tenantcard.cli.device import pcsc_exposures
from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.client.piv import PivProvisioner
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection
from tenantcard.transport.pcsc_bridge import BridgeSet
from tenantcard.transport.pcsc_client import wait_for_card, wait_for_removal
from tenantcard.wire.gp import container_aid
from tenantcard.wire.piv import KeyRef
from tests.integration.pcsc.vpcd import OPENSC_CONF, claim_ports, reader_name

CARD_TIMEOUT = 8.0
CONTAINERS = 3
PIN = "123456"
PUK = "12345678"


@dataclass
class Provider:
    """One provider's container with PIV: its keys, its CA, the certificates it loaded."""

    index: int
    name: str
    keys: StaticKeys
    ca_key: ec.EllipticCurvePrivateKey
    certificates: dict[KeyRef, x509.Certificate] = field(default_factory=dict)
    guid: bytes = b""


@dataclass
class PivDevice:
    device: Device
    bridges: BridgeSet
    ports: list[int]
    providers: dict[int, Provider]
    opensc_env: dict[str, str]

    def reader(self, container: int | None = None) -> str:
        return reader_name(self.ports[0 if container is None else 1 + container])

    def operator(self) -> IsdSession:
        isd = IsdSession(LocalConnection(self.device.connect()))
        isd.select()
        isd.authenticate(gp_test_keys())
        return isd

    def revoke(self, index: int) -> None:
        self.operator().revoke(container_aid(index))
        self.bridges.refresh()


def issue(ca_key: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey, subject: str) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{subject} CA")]))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(ca_key, hashes.SHA256())
    )


def take_over(device: Device, index: int, name: str) -> Provider:
    """Operator authorization, then the provider's PUT KEY: the container is OWNED by ``name``."""
    initial = StaticKeys.generate(0x01, 16)
    own = StaticKeys.generate(0x02, 16)
    isd = IsdSession(LocalConnection(device.connect()))
    isd.select()
    isd.authenticate(gp_test_keys())
    isd.place_authorization(container_aid(index), name, initial, int(time.time()) + 3600)
    session = ContainerSession(LocalConnection(device.connect()), container_aid(index))
    session.select()
    session.take_ownership(initial, own)
    return Provider(index, name, own, ec.generate_private_key(ec.SECP256R1()))


def install_piv(device: Device, provider: Provider, *, slots: tuple[KeyRef, ...] = (KeyRef.AUTHENTICATION,)) -> None:
    """The provider installs PIV through its channel: PIN, PUK, GUID, a key pair and a certificate per slot."""
    session = ContainerSession(LocalConnection(device.connect()), container_aid(provider.index))
    session.select()
    session.authenticate(provider.keys, 0x33)
    piv = PivProvisioner(session)
    provider.guid = os.urandom(16)
    piv.setup(PIN, PUK, guid=provider.guid)
    for slot in slots:
        public = piv.generate_key(slot)
        cert = issue(provider.ca_key, public, f"{provider.name} {slot.name.lower()}")
        piv.load_certificate(slot, cert)
        provider.certificates[slot] = cert


@pytest.fixture(scope="module")
def opensc_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """OpenSC configured by ``OPENSC_CONF``."""
    conf = tmp_path_factory.mktemp("opensc") / "opensc.conf"
    conf.write_text(OPENSC_CONF)
    return {**os.environ, "OPENSC_CONF": str(conf)}


@pytest.fixture(scope="module")
def piv_device(tmp_path_factory: pytest.TempPathFactory, opensc_env: dict[str, str]) -> Iterator[PivDevice]:
    """Containers 0 and 1 owned by two providers with PIV; container 2 available (no card)."""
    directory = tmp_path_factory.mktemp("piv-device")
    vault = FileKeyVault(directory / "vault.key")
    create_device_store(directory / "device.db", dev_spec(CONTAINERS), vault)
    device = Device.open(directory / "device.db", vault)
    providers = {i: take_over(device, i, f"provider-{'ab'[i]}") for i in (0, 1)}
    for provider in providers.values():
        install_piv(device, provider)
    with claim_ports(1 + CONTAINERS) as ports:
        bridges = BridgeSet(pcsc_exposures(device), ports, poll_interval=0.05).start()
        setup = PivDevice(device, bridges, ports, providers, opensc_env)
        try:
            for reader in (setup.reader(), setup.reader(0), setup.reader(1)):
                assert wait_for_card(reader, CARD_TIMEOUT)
            yield setup
        finally:
            bridges.stop()
            for port in ports:
                wait_for_removal(reader_name(port), CARD_TIMEOUT)
            device.close()


def run_tool(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, env=env)
