"""The provider side end to end on a real device: the SDK takes containers over, loads OTP / challenge-response
/ PKI functions, and the device computes the RFC vectors; in-process and over TCP. With the real operator over
HTTP: two providers on one device, isolation, replayed bundles, revocation."""

from __future__ import annotations

import datetime
import hmac
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tenantcard.cli.main import cli
from tenantcard.client.challenge import ChallengeClient
from tenantcard.client.container import ContainerSession, PinError
from tenantcard.client.errors import StatusError
from tenantcard.client.otp import FunctionError, OtpClient
from tenantcard.client.pki import PkiClient
from tenantcard.crypto.errors import SecureChannelError
from tenantcard.crypto.otp import HashAlgorithm, HotpVerifier
from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.device.provision import gp_test_keys
from tenantcard.provider.errors import OwnershipError
from tenantcard.provider.keystore import FileKeystore
from tenantcard.provider.sdk import AuthorizationBundle, OperatorClient, Provider, tcp_connect
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access
from tests.integration.operator.conftest import LiveOperator, operator_settings
from tests.support.oath_vectors import (
    HOTP_RFC4226,
    HOTP_SECRET,
    OCRA_PIN,
    OCRA_RFC6287,
    TOTP_RFC6238,
    TOTP_SEEDS,
)
from tests.support.operator_rig import manufacture
from tests.support.provider_rig import Rig

HOLDER_PIN = "246810"


@pytest.fixture(params=["inprocess", "tcp"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, request.param)
    yield r
    r.close()


def provider_for(rig: Rig, tmp_path: Path, name: str) -> Provider:
    return Provider(FileKeystore.create(tmp_path / f"{name}.keystore", "pass " + name, n=2**10), connect=rig.connect)


def test_rfc_vectors_computed_by_the_device(rig: Rig, tmp_path: Path) -> None:
    provider = provider_for(rig, tmp_path, "otp-provider")
    record = provider.take_ownership(rig.authorize(0, "otp-provider"), key_length=32)
    with provider.open(record.name) as session:
        session.set_pin(HOLDER_PIN, retries=3)
        otp, cr = OtpClient(session), ChallengeClient(session)
        otp.load_seed("hotp", HOTP_SECRET)
        for alg, seed in TOTP_SEEDS.items():
            otp.load_seed(f"totp-{alg}", seed, totp=True, algorithm=alg, digits=8)
        suites = {v.suite: v.key for v in OCRA_RFC6287}
        for i, (suite, key) in enumerate(suites.items()):
            cr.load_ocra_key(f"ocra-{i}", key, suite)
    names = {suite: f"ocra-{i}" for i, suite in enumerate(suites)}

    conn, holder = rig.holder(0)
    try:
        with pytest.raises(FunctionError) as denied:  # no PIN yet
            OtpClient(holder).generate("hotp")
        assert denied.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
        holder.verify_pin(HOLDER_PIN)
        otp, cr = OtpClient(holder), ChallengeClient(holder)
        assert [otp.generate("hotp").code for _ in HOTP_RFC4226] == HOTP_RFC4226  # RFC 4226 Appendix D
        for when, alg, expected in TOTP_RFC6238:  # RFC 6238 Appendix B
            assert otp.generate(f"totp-{alg}", at=when).code == expected
        for v in OCRA_RFC6287:  # RFC 6287 Appendix C
            got = cr.ocra(
                names[v.suite],
                v.question,
                counter=v.counter,
                pin=OCRA_PIN if v.pin else None,
                suite=v.suite,
                at=None if v.timestamp is None else v.timestamp * 60,
            )
            assert got.code == v.response, (v.suite, v.question)
    finally:
        conn.close()


def test_sdk_verifies_device_codes_with_window_and_resync(rig: Rig, tmp_path: Path) -> None:
    provider = provider_for(rig, tmp_path, "bank")
    record = provider.take_ownership(rig.authorize(1, "bank"))
    seed = bytes(range(32))
    with provider.open(record.name) as session:
        session.set_pin(HOLDER_PIN)
        OtpClient(session).load_seed("login", seed, algorithm=HashAlgorithm.SHA256, digits=8)
        ChallengeClient(session).load_hmac_key("hmac", b"k" * 20, algorithm="SHA256", access=Access.HOLDER_OR_PROVIDER)
    conn, holder = rig.holder(1)
    try:
        holder.verify_pin(HOLDER_PIN)
        otp = OtpClient(holder)
        codes = [otp.generate("login").code for _ in range(14)]
        verifier = HotpVerifier(seed, counter=0, digits=8, algorithm=HashAlgorithm.SHA256, window=3)
        assert verifier.verify(codes[2]) == 3  # within the look-ahead window
        assert verifier.verify(codes[12]) is None  # the token ran ahead of the window
        assert verifier.resynchronise(codes[12], codes[13]) == 14  # two consecutive codes resynchronise
        assert ChallengeClient(holder).hmac("hmac", b"abc") == hmac.new(b"k" * 20, b"abc", "sha256").digest()
    finally:
        conn.close()


def test_pki_in_the_container(rig: Rig, tmp_path: Path) -> None:
    provider = provider_for(rig, tmp_path, "pki")
    record = provider.take_ownership(rig.authorize(0, "pki"))
    with provider.open(record.name) as session:
        session.set_pin(HOLDER_PIN)
        pki = PkiClient(session)
        p256 = pki.generate_key(1, "p256", access=Access.HOLDER_OR_PROVIDER)
        ed = pki.generate_key(2, "ed25519", access=Access.HOLDER_OR_PROVIDER)
        assert isinstance(p256, ec.EllipticCurvePublicKey) and isinstance(ed, ed25519.Ed25519PublicKey)
        p256.verify(pki.sign(1, b"provider signs"), b"provider signs", ec.ECDSA(hashes.SHA256()))
        csr = pki.csr(1, "CN=alice,O=Example Provider")
        assert csr.is_signature_valid and csr.public_key() == p256
        assert csr.subject.rfc4514_string() == "CN=alice,O=Example Provider"
        ed_csr = pki.csr(2, x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bob")]))
        assert ed_csr.is_signature_valid and ed_csr.public_key() == ed
        ca_key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Provider CA")]))
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(csr_time())
            .not_valid_after(csr_time(365))
            .sign(ca_key, hashes.SHA256())
        )
        pki.store_certificate(1, cert)
        assert [(e.slot, e.has_certificate) for e in pki.list()] == [(1, True), (2, False)]
        with pytest.raises(FunctionError) as wrong:  # a certificate for another key
            pki.store_certificate(2, cert)
        assert wrong.value.sw == SW.INCORRECT_DATA
    conn, holder = rig.holder(0)
    try:
        pki = PkiClient(holder)
        assert pki.get_certificate(1) == cert  # certificates are public
        with pytest.raises(FunctionError):
            pki.sign(2, b"no PIN")
        holder.verify_pin(HOLDER_PIN)
        ed.verify(pki.sign(2, b"holder signs"), b"holder signs")
        with pytest.raises(FunctionError) as absent:
            pki.sign(9, b"no such key")
        assert absent.value.sw == SW.REFERENCED_DATA_NOT_FOUND
    finally:
        conn.close()


def csr_time(days: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(days=days)


def test_refusals_change_nothing(rig: Rig, tmp_path: Path) -> None:
    provider = provider_for(rig, tmp_path, "strict")
    bundle = rig.authorize(0, "strict")
    record = provider.take_ownership(bundle)
    # Replayed bundle: the device refuses the initial keys; the keystore keeps the real keys.
    with pytest.raises(OwnershipError, match="refused the initial keys"):
        provider.take_ownership(bundle)
    assert provider.keystore.load(record.name).keys == record.keys
    # The operator's own (ISD) keys do not open the owned container.
    conn = rig.connect(rig.address)
    try:
        session = ContainerSession(conn, record.aid)
        session.select()
        with pytest.raises((StatusError, SecureChannelError)):
            session.authenticate(gp_test_keys())
    finally:
        conn.close()
    # Wrong keys.
    other = Provider(FileKeystore.create(tmp_path / "other.keystore", "x", n=2**10), connect=rig.connect)
    forged = type(record)(record.name, record.device_id, record.device_address, record.aid, StaticKeys.generate(0x02))
    other.keystore.save(forged)
    with pytest.raises(OwnershipError, match="refused"):
        other.check(forged)
    with provider.open(record.name) as session:
        session.set_pin(HOLDER_PIN, retries=3)
        OtpClient(session).load_seed("a", HOTP_SECRET)
        session.put_object(b"note", b"x" * 100, Access.PROVIDER)
        PkiClient(session).generate_key(1)
        otp = OtpClient(session)
        filled = 0
        with pytest.raises(FunctionError) as full:  # fill the 16 KiB quota with seeds until it is exceeded
            for filled in range(200):
                otp.load_seed(f"fill-{filled}", b"s" * 128)
        assert full.value.sw == SW.NOT_ENOUGH_MEMORY and filled > 10
        status = session.status()
        assert status.used <= status.quota
        with pytest.raises(FunctionError) as again:  # the refused commands stored nothing
            PkiClient(session).generate_key(2)
        assert again.value.sw == SW.NOT_ENOUGH_MEMORY
        assert session.status().used == status.used
        assert len(otp.list()) == filled + 1 and [e.slot for e in PkiClient(session).list()] == [1]
        with pytest.raises(FunctionError) as unknown:
            otp.delete("missing")
        assert unknown.value.sw == SW.REFERENCED_DATA_NOT_FOUND
        with pytest.raises(FunctionError) as no_cert:
            PkiClient(session).get_certificate(1)
        assert no_cert.value.sw == SW.REFERENCED_DATA_NOT_FOUND
        with pytest.raises(StatusError):
            session.get_object(b"missing")
        assert session.status().used == status.used
    conn, holder = rig.holder(0)
    try:
        with pytest.raises(PinError) as bad_pin:
            holder.verify_pin("000000")
        assert bad_pin.value.tries_left == 2
        with pytest.raises(PinError) as second:
            holder.verify_pin("111111")
        assert second.value.tries_left == 1
        holder.verify_pin(HOLDER_PIN)  # the right PIN resets the counter
        assert OtpClient(holder).generate("a").code == HOTP_RFC4226[0]
    finally:
        conn.close()
    conn, holder = rig.holder(0)
    try:
        for _ in range(3):
            with pytest.raises(PinError):
                holder.verify_pin("999999")
        with pytest.raises(PinError) as blocked:
            holder.verify_pin(HOLDER_PIN)
        assert blocked.value.tries_left in (None, 0)
        with pytest.raises(FunctionError):
            OtpClient(holder).generate("a")
    finally:
        conn.close()


def test_rotation_keeps_the_container_and_drops_the_old_keys(rig: Rig, tmp_path: Path) -> None:
    provider = provider_for(rig, tmp_path, "rotating")
    record = provider.take_ownership(rig.authorize(1, "rotating"))
    with provider.open(record.name) as session:
        PkiClient(session).generate_key(3, "ed25519")
    rotated = provider.rotate(record.name, key_length=32)
    assert rotated.keys.length == 32 and rotated.keys.kvn != record.keys.kvn
    with provider.open(record.name) as session:
        assert [e.slot for e in PkiClient(session).list()] == [3]
    stale = Provider(FileKeystore.create(tmp_path / "stale.keystore", "x", n=2**10), connect=rig.connect)
    stale.keystore.save(record)
    with pytest.raises(OwnershipError):
        stale.check(record)


# --- with the real operator over HTTP ------------------------------------------------------------------------


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[LiveOperator]:
    op = LiveOperator(operator_settings(tmp_path, f"sqlite:///{tmp_path / 'operator.db'}")).start()
    yield op
    op.stop()


def test_two_providers_on_one_device_over_tcp(operator: LiveOperator, tmp_path: Path) -> None:
    admin = operator.admin()
    dev = manufacture(admin, containers=2, quota=8192, serial="SER-PROVIDERS-1")
    try:
        providers: dict[str, Provider] = {}
        records = {}
        container_ids = {}
        requests: dict[str, tuple[OperatorClient, str]] = {}
        for name in ("A", "B"):
            p = admin.post("/v1/admin/providers", json={"name": f"Provider {name}"}).json()
            contract = admin.post("/v1/admin/contracts", json={"provider_id": p["id"], "option": "A", "quota": 4096})
            client = OperatorClient(operator.url, p["credential"])
            requests[name] = (client, contract.json()["id"])
            providers[name] = Provider(FileKeystore.create(tmp_path / f"{name}.ks", f"pw-{name}", n=2**10), client)
            status = client.request_container(contract.json()["id"], serial=dev.serial)
            assert status.bundle is not None and status.bundle.initial_keys is not None
            bundle = status.bundle
            bundle.save(tmp_path / f"{name}.bundle.json")
            records[name] = providers[name].take_ownership(bundle, key_length=16 if name == "A" else 32)
            container_ids[name] = bundle.container_id
            after = client.authorization(bundle.authorization_id)
            assert after.status == "owned" and after.bundle is not None and after.bundle.initial_keys is None
            # The bundle as the operator now serves it is spent; the saved copy is refused by the device.
            with pytest.raises(OwnershipError, match="already used"):
                providers[name].take_ownership(after.bundle)
            with pytest.raises(OwnershipError, match="refused the initial keys"):
                providers[name].take_ownership(AuthorizationBundle.load(tmp_path / f"{name}.bundle.json"))

        a, b = records["A"], records["B"]
        assert a.aid != b.aid
        with providers["A"].open(a.name) as session:
            session.put_object(b"a-secret", b"only for A", Access.PROVIDER)
            pub_a = PkiClient(session).generate_key(1, "p256")
            OtpClient(session).load_seed("a-otp", HOTP_SECRET, access=Access.PROVIDER)
            assert OtpClient(session).generate("a-otp").code == HOTP_RFC4226[0]
            assert {o.name for o in session.list_objects()} == {b"a-secret"}
        with providers["B"].open(b.name) as session:
            session.put_object(b"b-secret", b"only for B", Access.PROVIDER)
            pub_b = PkiClient(session).generate_key(1, "ed25519")
            assert {o.name for o in session.list_objects()} == {b"b-secret"}  # GET STATUS: only B's content
            assert isinstance(pub_b, ed25519.Ed25519PublicKey)
            pub_b.verify(PkiClient(session).sign(1, b"B"), b"B")
            assert OtpClient(session).list() == []  # A's credential is not in B's container
            assert [(e.slot, e.algorithm.name) for e in PkiClient(session).list()] == [(1, "ED25519")]
        with providers["A"].open(a.name) as session:
            assert {o.name for o in session.list_objects()} == {b"a-secret"}  # GET STATUS: only A's content
            assert isinstance(pub_a, ec.EllipticCurvePublicKey)
            pub_a.verify(PkiClient(session).sign(1, b"A"), b"A", ec.ECDSA(hashes.SHA256()))

        # B's keys on A's container, and the initial keys the operator knew, open nothing.
        for keys in (b.keys, AuthorizationBundle.load(tmp_path / "A.bundle.json").initial_keys):
            assert keys is not None
            with closing(tcp_connect(dev.address)) as conn:
                session = ContainerSession(conn, a.aid)
                session.select()
                with pytest.raises((StatusError, SecureChannelError)):  # the card's cryptogram does not verify
                    session.authenticate(keys)
        with providers["A"].open(a.name) as session:  # A's key set was not blocked by those attempts
            assert session.get_object(b"a-secret") == b"only for A"

        # Revocation through the operator, without A's keys; B is untouched.
        info = providers["A"].revoke(a.name, container_ids["A"])
        assert info.state in ("available", "revoked", "revoking")
        with closing(tcp_connect(dev.address)) as conn:
            session = ContainerSession(conn, a.aid)
            session.select()
            with pytest.raises((StatusError, SecureChannelError)):
                session.authenticate(a.keys)
        with providers["B"].open(b.name) as session:
            assert session.get_object(b"b-secret") == b"only for B"

        # The freed container goes out again empty: nothing of A's content or keys survives revocation.
        client, contract_id = requests["A"]
        again = client.request_container(contract_id, serial=dev.serial)
        assert again.bundle is not None and again.bundle.container_aid == a.aid
        fresh = providers["A"].take_ownership(again.bundle)
        with providers["A"].open(fresh.name) as session:
            assert session.list_objects() == [] and OtpClient(session).list() == [] and PkiClient(session).list() == []
            with pytest.raises(FunctionError) as gone:
                PkiClient(session).sign(1, b"old key?")
            assert gone.value.sw == SW.REFERENCED_DATA_NOT_FOUND
    finally:
        dev.stop()


def test_cli_against_the_operator(operator: LiveOperator, tmp_path: Path) -> None:
    """``tenantcard provider`` request -> take-ownership -> containers -> revoke, over real HTTP and TCP."""
    admin = operator.admin()
    dev = manufacture(admin, containers=1, quota=8192, serial="SER-PROVIDER-CLI")
    try:
        p = admin.post("/v1/admin/providers", json={"name": "CLI Provider"}).json()
        contract = admin.post("/v1/admin/contracts", json={"provider_id": p["id"], "option": "A", "quota": 4096})
        env = {
            "TENANTCARD_KEYSTORE": str(tmp_path / "cli.ks"),
            "TENANTCARD_KEYSTORE_PASSPHRASE": "cli passphrase",
            "TENANTCARD_OPERATOR_URL": operator.url,
            "TENANTCARD_PROVIDER_CREDENTIAL": p["credential"],
        }

        def run(*args: str) -> Result:
            return CliRunner().invoke(cli, ["provider", *args], env=env, catch_exceptions=False)

        assert run("keystore", "init").exit_code == 0
        bundle = tmp_path / "bundle.json"
        r = run("request", "--contract", contract.json()["id"], "--serial", dev.serial, "--out", str(bundle))
        assert r.exit_code == 0, r.output
        assert "bundle saved" in r.output and p["credential"] not in r.output
        r = run("take-ownership", str(bundle))
        assert r.exit_code == 0, r.output
        name = f"{dev.device_id.upper()}/F07463000000"
        assert "owned" in run("containers").output
        r = run("request", "--contract", "no-such-contract", "--serial", dev.serial, "--out", str(bundle))
        assert r.exit_code == 1 and "operator:" in r.output and "Traceback" not in r.output
        r = run("revoke", name, "--yes")
        assert r.exit_code == 0, r.output
        assert name not in run("list").output
        assert "no keys for container" in run("status", name).output
    finally:
        dev.stop()
