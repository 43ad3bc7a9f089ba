"""PC/SC figures: a container as a card through pcscd + vsmartcard vpcd, and PKCS#11 signatures through OpenSC.

* ``pcsc.apdu_latency``: one small APDU from pyscard through pcscd and vpcd to a container of a device served
  by ``tenantcard device serve --pcsc`` (PIV GET DATA of the discovery object, answered by the card OS and the
  PIV personality), against a minimal echo card dialing the same pcscd through the same ``VpcdBridge``, in its
  own process too. Same client, same stack, interleaved rounds: the ratio is the device's own share.
* ``pcsc.pkcs11_signatures``: ECDSA P-256 signatures per second by python-pkcs11 on OpenSC's PKCS#11 module,
  through pcscd and vpcd to the container's PIV key 9A (PIN verified once per session). Baseline: the same
  GENERAL AUTHENTICATE signatures with the same key, in-process on the device API (no pcscd, no OpenSC): the
  card's own work, so the ratio is what the middleware stack costs.

Needs pcscd with the vpcd readers of ``scripts/services`` (started here when not running).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.pcsc.vpcd import OPENSC_CONF, OPENSC_MODULE, claim_ports, reader_name

from bench.common import Figure, interleaved, per_op

REPO = Path(__file__).resolve().parents[1]
PIN = "314159"
PUK = "27182818"
TOKEN = "bench"  # OpenSC names a PIV token after the subject CN of its 9A certificate
GET_DISCOVERY = bytes.fromhex("00CB3FFF035C017E00")
ECHO_ATR = bytes.fromhex("3B80800101")


# --- the echo card (child process) ---------------------------------------------------------------------------


class _EchoCard:
    """The floor: answers each C-APDU with its body and 9000, no processing."""

    def power_on(self) -> bytes:
        return ECHO_ATR

    def reset(self) -> bytes:
        return ECHO_ATR

    def power_off(self) -> None:
        return None

    def execute(self, apdu: bytes) -> bytes:
        return apdu[4:] + b"\x90\x00"


class _EchoSlot:
    def connect(self) -> _EchoCard:
        return _EchoCard()


def _echo_main(port: int) -> None:
    from tenantcard.transport.pcsc_bridge import VpcdBridge

    with VpcdBridge(_EchoSlot(), port):
        sys.stdin.read()  # until the parent closes our stdin


# --- the device -------------------------------------------------------------------------------------------------


def _make_device(directory: Path) -> tuple[Path, bytes]:
    """A device store whose container 0 is owned and carries PIV with a 9A key and its certificate.
    Returns the store path and the DER certificate."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tenantcard.client.container import ContainerSession
    from tenantcard.client.isd import IsdSession
    from tenantcard.client.piv import PivProvisioner
    from tenantcard.crypto.scp03 import StaticKeys
    from tenantcard.device.os import Device
    from tenantcard.device.provision import create_device_store, dev_spec, gp_test_keys
    from tenantcard.keyvault import FileKeyVault
    from tenantcard.transport.base import LocalConnection
    from tenantcard.wire.gp import container_aid
    from tenantcard.wire.piv import KeyRef

    store = directory / "device.db"
    vault = FileKeyVault(f"{store}.vault")
    create_device_store(store, dev_spec(1), vault)
    device = Device.open(store, vault)
    try:
        initial, own = StaticKeys.generate(1, 16), StaticKeys.generate(2, 16)
        isd = IsdSession(LocalConnection(device.connect()))
        isd.select()
        isd.authenticate(gp_test_keys())
        isd.place_authorization(container_aid(0), "bench", initial, int(time.time()) + 3600)
        session = ContainerSession(LocalConnection(device.connect()), container_aid(0))
        session.select()
        session.take_ownership(initial, own)
        piv = PivProvisioner(session)
        piv.setup(PIN, PUK)
        public = piv.generate_key(KeyRef.AUTHENTICATION)
        ca = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(ca, hashes.SHA256())
        )
        piv.load_certificate(KeyRef.AUTHENTICATION, cert)
        return store, cert.public_bytes(serialization.Encoding.DER)
    finally:
        device.close()


def _rate(sign: Callable[[], object], count: int, rounds: int) -> float:
    """Median over ``rounds`` of the operations per second of ``count`` calls."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            sign()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def _in_process_signatures(store: Path, count: int, rounds: int) -> float:
    """Signatures per second on the device API: container-scoped session, VERIFY once, GENERAL AUTHENTICATE."""
    from tenantcard.client.piv import PivHolder
    from tenantcard.device.os import Device
    from tenantcard.keyvault import FileKeyVault
    from tenantcard.transport.base import LocalConnection
    from tenantcard.wire.piv import KeyRef

    device = Device.open(store, FileKeyVault(f"{store}.vault"))
    try:
        holder = PivHolder(LocalConnection(device.connect(container=0)))
        holder.select()
        holder.verify(PIN)
        digest = hashlib.sha256(b"bench").digest()
        holder.sign(KeyRef.AUTHENTICATION, digest)
        return _rate(lambda: holder.sign(KeyRef.AUTHENTICATION, digest), count, rounds)
    finally:
        device.close()


def _pkcs11_signatures(cert_der: bytes, count: int, rounds: int) -> float:
    """Signatures per second through python-pkcs11 -> opensc-pkcs11.so -> pcscd -> vpcd -> the container."""
    import pkcs11
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    lib = pkcs11.lib(OPENSC_MODULE)
    token = lib.get_token(token_label=TOKEN)
    digest = hashlib.sha256(b"bench").digest()
    with token.open(user_pin=PIN) as session:
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=b"\x01")
        assert isinstance(key, pkcs11.SignMixin)
        raw = key.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)
        public = x509.load_der_x509_certificate(cert_der).public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        half = len(raw) // 2
        signature = utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # a real signature
        return _rate(lambda: key.sign(digest, mechanism=pkcs11.Mechanism.ECDSA), count, rounds)


def _wait(reader: str, timeout: float = 15.0) -> None:
    from tenantcard.transport.pcsc_client import wait_for_card

    if not wait_for_card(reader, timeout):
        raise RuntimeError(f"no card in {reader!r}")


def run(quick: bool) -> list[Figure]:
    from tenantcard.transport.pcsc_client import PcscConnection, wait_for_removal

    rounds, number, signatures = (3, 100, 20) if quick else (7, 300, 200)
    with tempfile.TemporaryDirectory() as tmp, claim_ports(3) as ports:
        directory = Path(tmp)
        store, cert_der = _make_device(directory)
        in_process = _in_process_signatures(store, signatures, rounds)
        conf = directory / "opensc.conf"
        conf.write_text(OPENSC_CONF)
        os.environ["OPENSC_CONF"] = str(conf)  # read when the PKCS#11 module initializes, below
        device_port, container_port, echo_port = ports
        server = subprocess.Popen(
            [sys.executable, "-m", "tenantcard.cli.main", "device", "serve", "--store", str(store), "--listen",
             "127.0.0.1:0", "--log-level", "warning", "--pcsc", f"127.0.0.1:{device_port},{container_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip
        echo = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_pcsc", "echo", str(echo_port)], stdin=subprocess.PIPE, cwd=REPO
        )
        container_reader, echo_reader = reader_name(container_port), reader_name(echo_port)
        try:
            _wait(container_reader)
            _wait(echo_reader)
            with PcscConnection(container_reader) as card, PcscConnection(echo_reader) as floor:
                select = bytes.fromhex("00A4040009A00000030800001000") + b"\x00"
                assert card.transmit(select)[-2:] == b"\x90\x00"
                assert card.transmit(GET_DISCOVERY)[-2:] == b"\x90\x00"
                latency, baseline = interleaved(
                    lambda: card.transmit(GET_DISCOVERY),
                    lambda: floor.transmit(GET_DISCOVERY),
                    repeat=rounds,
                    number=number,
                )
            through_pkcs11 = _pkcs11_signatures(cert_der, signatures, rounds)
        finally:
            for proc in (server, echo):
                proc.terminate()
            if echo.stdin is not None:
                echo.stdin.close()
            for proc in (server, echo):
                proc.wait(10)
            for port in ports:
                wait_for_removal(reader_name(port), 10.0)
    return [
        per_op(
            "pcsc.apdu_latency",
            latency,
            baseline,
            "pyscard -> pcscd -> vpcd -> container of a served device (PIV GET DATA discovery); baseline: a "
            "minimal echo card behind the same pcscd and VpcdBridge, same APDU, interleaved rounds",
            aim="ratio <= 1.2",
        ),
        Figure(
            "pcsc.pkcs11_signatures",
            through_pkcs11,
            in_process,
            "ops/s",
            "ECDSA P-256 signatures by python-pkcs11 on opensc-pkcs11.so through pcscd + vpcd (PIV key 9A); "
            "baseline: the same GENERAL AUTHENTICATE signatures in-process on the device API",
            aim="ratio >= 0.3",
            higher_is_better=True,
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "echo":
        _echo_main(int(sys.argv[2]))
    else:
        for figure in run(quick="--quick" in sys.argv):
            print(figure.to_json())
