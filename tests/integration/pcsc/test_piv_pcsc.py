"""Each container as its own card: PIV through the real pcscd + vpcd, used by OpenSC, pkcs11-tool and pyscard."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tenantcard.client.piv import PivError, PivHolder
from tenantcard.transport.pcsc_client import PcscConnection, card_present, wait_for_card, wait_for_removal
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import ISD_AID, container_aid
from tenantcard.wire.piv import DataTag, KeyRef
from tenantcard.wire.sw import SW
from tests.integration.pcsc.conftest import (
    CARD_TIMEOUT,
    PIN,
    PUK,
    PivDevice,
    install_piv,
    run_tool,
    take_over,
)
from tests.integration.pcsc.vpcd import OPENSC_MODULE

pytestmark = pytest.mark.pcsc


def select(conn: PcscConnection, aid: bytes) -> SW:
    return ResponseApdu.parse(conn.transmit(CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, 256).to_bytes())).sw


def tokens(setup: PivDevice) -> dict[str, dict[str, str]]:
    """pkcs11-tool -T: reader name -> token fields."""
    out = run_tool(setup.opensc_env, "pkcs11-tool", "--module", OPENSC_MODULE, "-T").stdout
    found: dict[str, dict[str, str]] = {}
    for block in re.split(r"^Slot \d+ \(0x[0-9a-f]+\): ", out, flags=re.M)[1:]:
        lines = block.splitlines()
        found[lines[0].strip()] = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:]) if v}
    return found


def test_opensc_lists_the_readers_and_identifies_piv_containers(piv_device: PivDevice) -> None:
    listing = run_tool(piv_device.opensc_env, "opensc-tool", "-l").stdout
    for reader in (piv_device.reader(), piv_device.reader(0), piv_device.reader(1), piv_device.reader(2)):
        assert reader in listing
    for index in (0, 1):
        name = run_tool(piv_device.opensc_env, "opensc-tool", "-r", piv_device.reader(index), "-n").stdout
        assert "Personal Identity Verification Card" in name
    # Container 2 is not owned: its reader is empty.
    assert not card_present(piv_device.reader(2))


def test_pyscard_reaches_the_device_and_each_container_only_its_own(piv_device: PivDevice) -> None:
    with PcscConnection(piv_device.reader()) as device:
        assert select(device, ISD_AID) == SW.OK
        assert select(device, container_aid(0)) == SW.OK
    with PcscConnection(piv_device.reader(0)) as container:
        assert select(container, container_aid(0)) == SW.OK
        assert select(container, ISD_AID) == SW.NOT_FOUND
        assert select(container, container_aid(1)) == SW.NOT_FOUND


def test_two_providers_piv_containers_are_two_tokens(piv_device: PivDevice) -> None:
    found = tokens(piv_device)
    one, two = found[piv_device.reader(0)], found[piv_device.reader(1)]
    assert one["token label"] == "provider-a authentication"
    assert two["token label"] == "provider-b authentication"
    assert one["serial num"] != two["serial num"]
    assert piv_device.reader() not in found or "token label" not in found[piv_device.reader()]


def test_pkcs11_tool_signature_verifies_against_the_loaded_certificate(piv_device: PivDevice, tmp_path: Path) -> None:
    message = tmp_path / "message"
    message.write_bytes(b"a document the holder signs " * 20)
    signature = tmp_path / "signature"
    result = run_tool(
        piv_device.opensc_env,
        "pkcs11-tool",
        "--module",
        OPENSC_MODULE,
        "--token-label",
        "provider-b authentication",
        "--login",
        "--pin",
        PIN,
        "--sign",
        "--id",
        "01",
        "--mechanism",
        "ECDSA-SHA256",
        "--signature-format",
        "openssl",
        "--input-file",
        str(message),
        "--output-file",
        str(signature),
    )
    assert result.returncode == 0, result.stderr
    public = piv_device.providers[1].certificates[KeyRef.AUTHENTICATION].public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature.read_bytes(), message.read_bytes(), ec.ECDSA(hashes.SHA256()))
    # The other provider's certificate does not verify it: each token signs with its own container's key.
    other = piv_device.providers[0].certificates[KeyRef.AUTHENTICATION].public_key()
    assert isinstance(other, ec.EllipticCurvePublicKey)
    with pytest.raises(InvalidSignature):
        other.verify(signature.read_bytes(), message.read_bytes(), ec.ECDSA(hashes.SHA256()))


def test_wrong_pin_is_ckr_pin_incorrect_and_counts_down(piv_device: PivDevice) -> None:
    def login(pin: str) -> str:
        result = run_tool(
            piv_device.opensc_env,
            "pkcs11-tool",
            "--module",
            OPENSC_MODULE,
            "--token-label",
            "provider-a authentication",
            "--login",
            "--pin",
            pin,
            "--list-objects",
            "--type",
            "privkey",
        )
        return result.stdout + result.stderr

    def tries_left() -> int | None:
        with PcscConnection(piv_device.reader(0)) as conn:
            holder = PivHolder(conn)
            holder.select()
            return holder.pin_tries_left()

    assert "CKR_PIN_INCORRECT" in login("999999")
    assert tries_left() == 2
    assert "CKR_PIN_INCORRECT" in login("999998")
    assert tries_left() == 1
    output = login(PIN)
    assert "CKR_PIN_INCORRECT" not in output and "Private Key Object" in output
    with PcscConnection(piv_device.reader(0)) as conn:
        holder = PivHolder(conn)
        holder.select()
        assert holder.pin_tries_left() in (None, 3)
        conn_reset = CommandApdu(0x00, 0x20, 0xFF, 0x80)
        assert ResponseApdu.parse(conn.transmit(conn_reset.to_bytes())).sw == SW.OK
        assert holder.pin_tries_left() == 3


def test_holder_uses_piv_through_pcsc(piv_device: PivDevice) -> None:
    provider = piv_device.providers[1]
    with PcscConnection(piv_device.reader(1), exclusive=True) as conn:
        holder = PivHolder(conn)
        holder.select()
        assert holder.guid() == provider.guid
        assert holder.get_object(DataTag.CARD_CAPABILITY_CONTAINER)
        assert holder.get_object(DataTag.DISCOVERY)
        assert holder.certificate(KeyRef.AUTHENTICATION) == provider.certificates[KeyRef.AUTHENTICATION]

        digest = hashlib.sha256(b"over pc/sc").digest()
        with pytest.raises(PivError) as refused:
            holder.sign(KeyRef.AUTHENTICATION, digest)
        assert refused.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
        holder.verify(PIN)
        signature = holder.sign(KeyRef.AUTHENTICATION, digest)
        public = provider.certificates[KeyRef.AUTHENTICATION].public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

        holder.change_pin(PIN, "7654321")
        with pytest.raises(PivError) as wrong:
            holder.verify(PIN)
        assert wrong.value.tries_left == 2
        for left in (1, 0):
            with pytest.raises(PivError) as wrong:
                holder.verify("000000")
            assert wrong.value.tries_left == left
        with pytest.raises(PivError) as blocked:
            holder.verify("7654321")
        assert blocked.value.sw == SW.AUTH_METHOD_BLOCKED
        holder.unblock_pin(PUK, PIN)  # back to the fixture's PIN, 3 tries
        holder.verify(PIN)
        assert holder.pin_tries_left() is None
        conn.reconnect(reset=True)  # a reset forgets the verified PIN
        holder.select()
        assert holder.pin_tries_left() == 3


def test_a_container_appears_when_owned_and_disappears_when_revoked(piv_device: PivDevice) -> None:
    device = piv_device.device
    reader = piv_device.reader(2)
    assert not card_present(reader)
    piv_device.providers[2] = provider = take_over(device, 2, "provider-c")
    install_piv(device, provider)
    piv_device.bridges.refresh()
    assert wait_for_card(reader, CARD_TIMEOUT)
    assert tokens(piv_device)[reader]["token label"] == "provider-c authentication"
    with PcscConnection(reader) as conn:
        holder = PivHolder(conn)
        holder.select()
        piv_device.revoke(2)
        assert wait_for_removal(reader, CARD_TIMEOUT)
    assert not card_present(reader)
    assert "token label" not in tokens(piv_device).get(reader, {})
    # The others stay.
    assert card_present(piv_device.reader(0)) and card_present(piv_device.reader(1))
