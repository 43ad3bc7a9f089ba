"""``tenantcard provider`` against a real device over TCP: take ownership, personalize, use, rotate; and
every error as one line with exit status 1."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.cli.main import cli
from tests.support.oath_vectors import HOTP_RFC4226, HOTP_SECRET
from tests.support.provider_rig import Rig
from tests.support.services import SoftHsmToken

PASSPHRASE = "cli test passphrase"
PIN = "135790"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, "tcp")
    yield r
    r.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "TENANTCARD_KEYSTORE": str(tmp_path / "ks.json"),
        "TENANTCARD_KEYSTORE_PASSPHRASE": PASSPHRASE,
        "TENANTCARD_HOLDER_PIN": PIN,
        "TENANTCARD_OPERATOR_URL": "",
        "TENANTCARD_PROVIDER_CREDENTIAL": "",
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["provider", *args], env=env, catch_exceptions=False)


def test_whole_provider_cli_flow(rig: Rig, env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "keystore", "init").exit_code == 0
    bundle_file = tmp_path / "bundle.json"
    rig.authorize(0, "cli-provider").save(bundle_file)
    r = run(env, "take-ownership", str(bundle_file), "--aes256")
    assert r.exit_code == 0, r.output
    assert "owned" in r.output and not bundle_file.exists()
    name = f"{rig.device.device_id.hex().upper()}/F07463000000"
    assert name in run(env, "list").output
    assert run(env, "set-pin", name, "--retries", "3").exit_code == 0
    assert run(env, "store", name, "greeting", "--value", "hello", "--access", "public").exit_code == 0
    r = run(env, "otp", "load", name, "bank", "--secret-hex", HOTP_SECRET.hex())
    assert r.exit_code == 0, r.output
    assert HOTP_SECRET.hex() not in r.output
    codes = [run(env, "otp", "code", name, "bank").output.strip() for _ in range(3)]
    assert codes == HOTP_RFC4226[:3]
    r = run(env, "otp", "verify", codes[2], "--secret-hex", HOTP_SECRET.hex(), "--counter", "1")
    assert r.exit_code == 0 and "next counter 3" in r.output
    r = run(env, "keygen", name, "1", "--algorithm", "p256")
    assert r.exit_code == 0, r.output
    public = serialization.load_pem_public_key(r.output.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    sig = run(env, "sign", name, "1", "--data", "pay 10 EUR", "--as-holder").output.strip()
    public.verify(bytes.fromhex(sig), b"pay 10 EUR", ec.ECDSA(hashes.SHA256()))
    csr_file = tmp_path / "req.pem"
    assert run(env, "csr", name, "1", "--subject", "CN=holder,O=CLI", "--out", str(csr_file)).exit_code == 0
    csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    assert csr.is_signature_valid and csr.public_key() == public
    ca = ec.generate_private_key(ec.SECP256R1())
    now = x509.random_serial_number()
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(csr.subject)
        .public_key(csr.public_key())
        .serial_number(now)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(ca, hashes.SHA256())
    )
    cert_file = tmp_path / "cert.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert run(env, "cert", name, "1", str(cert_file)).exit_code == 0
    status = run(env, "status", name)
    assert status.exit_code == 0
    for word in ("greeting", "bank", "slot 1", "PERSONALIZED", "3/3 tries left", "certificate"):
        assert word in status.output, word
    r = run(env, "rotate", name)
    assert r.exit_code == 0 and "rotated" in r.output
    assert run(env, "otp", "code", name, "bank", "--as-provider").exit_code == 1  # holder-only credential
    assert run(env, "otp", "code", name, "bank").output.strip() == HOTP_RFC4226[3]


def test_errors_are_one_line_and_exit_1(rig: Rig, env: dict[str, str], tmp_path: Path) -> None:
    def fails(*args: str, env_: dict[str, str] | None = None) -> str:
        r = run(env_ or env, *args)
        assert r.exit_code != 0, r.output
        assert "Traceback" not in r.output
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert len(lines) <= 3, r.output
        return r.output

    assert "no keystore" in fails("list")
    assert run(env, "keystore", "init").exit_code == 0
    assert "exists" in fails("keystore", "init")
    assert "wrong passphrase" in fails("list", env_={**env, "TENANTCARD_KEYSTORE_PASSPHRASE": "nope"})
    bundle_file = tmp_path / "bundle.json"
    bundle = rig.authorize(1, "cli-errors")
    bundle.save(bundle_file)
    spare = tmp_path / "spare.json"
    bundle.save(spare)
    assert run(env, "take-ownership", str(bundle_file)).exit_code == 0
    assert "refused the initial keys" in fails("take-ownership", str(spare))  # replayed bundle
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"authorization_id": "x", "kvn": "zz"}))
    assert "malformed" in fails("take-ownership", str(bad))
    name = f"{rig.device.device_id.hex().upper()}/F07463000001"
    assert "no keys for container" in fails("status", "nobody/F07463000009")
    assert "no such credential" in fails("otp", "code", name, "missing", "--as-provider")
    assert "VERIFY" in fails("otp", "code", name, "x")  # no PIN set yet: VERIFY refused
    assert "exactly one" in fails("store", name, "x")
    assert "not valid hex" in fails("otp", "load", name, "x", "--secret-hex", "zz")
    assert "does not match" in fails("otp", "verify", "000000", "--secret-hex", "00" * 20)
    assert "operator is needed" in fails("containers")
    assert "exactly one" in fails("request", "--contract", "c")


def test_keys_on_a_pkcs11_token(rig: Rig, softhsm: SoftHsmToken, tmp_path: Path) -> None:
    env = {
        "TENANTCARD_PKCS11_MODULE": softhsm.module,
        "TENANTCARD_PKCS11_TOKEN": softhsm.label,
        "TENANTCARD_PKCS11_PIN": softhsm.user_pin,
        "TENANTCARD_HOLDER_PIN": PIN,
    }
    assert "PKCS#11 keystore ready" in run(env, "keystore", "init").output
    bundle_file = tmp_path / "bundle.json"
    rig.authorize(1, "hsm-provider").save(bundle_file)
    r = run(env, "take-ownership", str(bundle_file), "--name", "hsm-container")
    assert r.exit_code == 0, r.output
    assert "hsm-container" in run(env, "list").output
    assert run(env, "keygen", "hsm-container", "2", "--algorithm", "ed25519").exit_code == 0
    assert run(env, "rotate", "hsm-container", "--aes256").exit_code == 0
    assert "AES-256" in run(env, "list").output
    assert "slot 2" in run(env, "status", "hsm-container").output
    bad = {**env, "TENANTCARD_PKCS11_PIN": "not-the-pin"}
    r = run(bad, "list")
    assert r.exit_code == 1 and "PKCS#11" in r.output and "not-the-pin" not in r.output
