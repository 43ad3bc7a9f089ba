"""The provider installs PIV through its secure channel and the holder uses it, over every transport
(in-process, TCP, PC/SC through pcscd + vpcd): the same commands, the same answers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tenantcard.cli.device import ContainerSlot
from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.client.piv import PivError, PivHolder, PivProvisioner
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import container_aid
from tenantcard.wire.piv import PIV_AID, DataTag, KeyRef
from tenantcard.wire.sw import SW
from tests.integration.pcsc.conftest import PIN, PUK, issue
from tests.support.transports import CardConnector


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    vault = FileKeyVault(tmp_path / "vault.key")
    create_device_store(tmp_path / "device.db", dev_spec(2), vault)
    dev = Device.open(tmp_path / "device.db", vault)
    yield dev
    dev.close()


def test_provider_installs_piv_and_holder_signs(device: Device, card_connect: CardConnector) -> None:
    initial, own = StaticKeys.generate(1, 16), StaticKeys.generate(2, 16)
    isd = IsdSession(card_connect(device))
    isd.select()
    isd.authenticate(gp_test_keys())
    isd.place_authorization(container_aid(1), "provider-a", initial, int(time.time()) + 600)
    session = ContainerSession(card_connect(device), container_aid(1))
    session.select()
    session.take_ownership(initial, own)

    # PIN and PUK travel only under C-DECRYPTION: a C-MAC-only channel is refused.
    session.authenticate(own, 0x01)
    piv = PivProvisioner(session)
    with pytest.raises(PivError) as refused:
        piv.setup(PIN, PUK)
    assert refused.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert not piv.status().installed
    session.authenticate(own, 0x33)
    piv.setup(PIN, PUK, pin_tries=5)
    public = piv.generate_key(KeyRef.SIGNATURE)
    cert = issue(ec.generate_private_key(ec.SECP256R1()), public, "holder signature")
    piv.load_certificate(KeyRef.SIGNATURE, cert)
    status = piv.status()
    assert status.installed and status.pin_tries_left == 5 and status.slots == (KeyRef.SIGNATURE,)
    assert DataTag.CERT_9C in status.objects and DataTag.CHUID in status.objects

    # Without the provider's channel nothing of the set-up is reachable.
    plain = ContainerSession(card_connect(device), container_aid(1))
    plain.select()
    with pytest.raises(PivError) as denied:
        PivProvisioner(plain).status()
    assert denied.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED

    # The device's own (unscoped) card does not offer PIV: only a container-scoped card does.
    device_card = card_connect(device)
    select_piv = CommandApdu(0x00, 0xA4, 0x04, 0x00, PIV_AID, 256).to_bytes()
    assert ResponseApdu.parse(device_card.transmit(select_piv)).sw == SW.NOT_FOUND

    holder = PivHolder(card_connect(ContainerSlot(device, 1)))
    holder.select()
    assert holder.certificate(KeyRef.SIGNATURE) == cert
    digest = hashlib.sha256(b"signed by the holder").digest()
    with pytest.raises(PivError):
        holder.sign(KeyRef.SIGNATURE, digest)
    holder.verify(PIN)
    signature = holder.sign(KeyRef.SIGNATURE, digest)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    # 9C wants the PIN again before each signature (SP 800-73-4 Part 1 §3.2.2).
    with pytest.raises(PivError):
        holder.sign(KeyRef.SIGNATURE, digest)
