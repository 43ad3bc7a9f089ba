"""The three providers of the scenario, each an SDK client in this process: a bank signing with PKI, a mail
service using TOTP, a VPN using OCRA challenge-response. Each public method is one step of the plan and returns
its detail line; steps that demonstrate a refusal raise ``Refused``.

What a provider keeps to itself (its operator credential, its IdP client secret, its container keys, the OTP and
OCRA secrets it loaded, its CA key) stays in memory or in its passphrase-encrypted keystore; details describe
such things only by what they are.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import os
import secrets
import time
from collections.abc import Iterator

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.client.challenge import ChallengeClient
from tenantcard.client.container import ContainerSession
from tenantcard.client.errors import StatusError
from tenantcard.client.otp import FunctionError, OtpClient
from tenantcard.client.pki import PkiClient
from tenantcard.crypto.errors import CryptoError
from tenantcard.crypto.ocra import OcraInput, verify_ocra
from tenantcard.crypto.otp import TotpVerifier
from tenantcard.provider.errors import OperatorApiError, OwnershipError
from tenantcard.provider.keystore import ContainerRecord, FileKeystore
from tenantcard.provider.oidc import IdToken, OidcClient, TokenError, TokenFailure
from tenantcard.provider.sdk import AuthorizationBundle, OperatorClient, Provider
from tenantcard.scenario.errors import StepFailed
from tenantcard.scenario.runner import Refused
from tenantcard.scenario.world import CONTAINER_QUOTA, HTTP_TIMEOUT, World
from tenantcard.transport.tcp_client import connect
from tenantcard.wire.tenant import Access

SECURITY_LEVEL = 0x33  # GP Amd D §5.1: C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION
KEYSTORE_SCRYPT_N = 2**14  # the demo's keystores: RFC 7914 cost, lower than production's default


class Tenant(abc.ABC):
    """One provider: its contract, its IdP registration, its container and its function."""

    key = "tenant"
    display = "Tenant"
    function = ""
    option = "A"  # DESIGN.md phase 1 step 1: A, a container per request; B, a fixed index
    container_index: int | None = None

    def __init__(self, world: World) -> None:
        self.world = world
        self.redirect_uri = f"https://{self.key}.example/callback"
        self.provider_id = ""
        self.contract_id = ""
        self.container_id = ""
        self._credential = ""
        self._client: tuple[str, str] | None = None
        self._passphrase = secrets.token_urlsafe(24)
        self._sdk: Provider | None = None
        self._oidc: OidcClient | None = None
        self._bundle: AuthorizationBundle | None = None
        self._record: ContainerRecord | None = None
        self._token: IdToken | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider_id={self.provider_id!r}, container={self.container_id!r})"

    # --- helpers ---------------------------------------------------------------------------------------
    @property
    def sdk(self) -> Provider:
        if self._sdk is None:
            raise StepFailed("the provider has no contract with the operator")
        return self._sdk

    @property
    def operator(self) -> OperatorClient:
        assert self.sdk.operator is not None
        return self.sdk.operator

    @property
    def record(self) -> ContainerRecord:
        if self._record is None:
            raise StepFailed("the provider owns no container")
        return self._record

    @property
    def token(self) -> IdToken:
        if self._token is None:
            raise StepFailed("the holder has not logged in")
        return self._token

    @property
    def oidc(self) -> OidcClient:
        if self._oidc is None:
            if self._client is None:
                raise StepFailed("the provider is not registered at the identity provider")
            client_id, client_secret = self._client
            self._oidc = OidcClient(self.world.issuer, client_id, client_secret, self.redirect_uri)
        return self._oidc

    @contextlib.contextmanager
    def session_at(self, address: str) -> Iterator[ContainerSession]:
        """SELECT the container at ``address`` and open SCP03 with the provider's own keys (level 33)."""
        conn = connect(address, timeout=HTTP_TIMEOUT)
        try:
            session = ContainerSession(conn, self.record.aid)
            session.select()
            session.authenticate(self.record.keys, SECURITY_LEVEL)
            yield session
        finally:
            conn.close()

    def close(self) -> None:
        if self._sdk is not None and self._sdk.operator is not None:
            self._sdk.operator.close()
        if self._oidc is not None:
            self._oidc.close()

    # --- phase 0: contract and IdP registration -------------------------------------------------------
    def contract(self) -> str:
        staff = self.world.staff
        provider = staff.call("POST", "/admin/providers", {"name": self.display})
        self.provider_id, self._credential = provider["id"], provider["credential"]
        body: dict[str, object] = {"provider_id": self.provider_id, "option": self.option, "quota": CONTAINER_QUOTA}
        if self.container_index is not None:
            body["container_index"] = self.container_index
        self.contract_id = staff.call("POST", "/admin/contracts", body)["id"]
        keystore = FileKeystore.create(
            self.world.layout.providers / f"{self.key}.keystore", self._passphrase, n=KEYSTORE_SCRYPT_N
        )
        self._sdk = Provider(keystore, OperatorClient(self.world.operator_url, self._credential))
        where = "a container per request" if self.option == "A" else f"fixed container index {self.container_index}"
        return (
            f"provider {self.provider_id}, contract {self.contract_id} (option {self.option}: {where}); "
            "credential shown once, kept in memory; keys in a passphrase-encrypted keystore"
        )

    def register_at_idp(self) -> str:
        self._client = self.world.register_idp_client(self.display, self.redirect_uri)
        return f"relying party {self._client[0]}, redirect URI {self.redirect_uri}, pairwise subjects"

    # --- phase 1: initialization (seed Fig. 2) --------------------------------------------------------
    def request_container(self) -> str:
        """Steps 1-4: the provider names the holder's device; the operator places the authorization over
        SCP03 to the ISD and answers with the bundle."""
        status = self.operator.request_container(self.contract_id, serial=self.world.serial)
        if status.bundle is None:
            status = self.operator.wait_for_bundle(status.id, timeout=30.0, interval=0.2)
        if status.bundle is None:
            raise StepFailed(f"authorization {status.id} is {status.status}: {status.error or 'no bundle'}")
        self._bundle = status.bundle
        self.container_id = status.bundle.container_id
        return (
            f"bundle {status.id}: container {status.bundle.container_aid.hex().upper()} at "
            f"{status.bundle.device_address}, one-time initial keys KVN {status.bundle.kvn:#04x} with KCVs"
        )

    def take_ownership(self) -> str:
        """Steps 5-6: SCP03 with the initial keys, PUT KEY of the provider's own keys at level 33."""
        if self._bundle is None:
            raise StepFailed("no bundle")
        self._record = self.sdk.take_ownership(self._bundle)
        return (
            f"SCP03 with the initial keys, PUT KEY of its own AES-128 key set (KVN {self.record.keys.kvn:#04x}), "
            "KCVs checked, ownership reported: the operator erased the initial keys"
        )

    def replay_authorization(self) -> str:
        """Invariant 3: an authorization works once."""
        if self._bundle is None:
            raise StepFailed("no bundle")
        scratch = Provider(_MemoryKeystore())
        try:
            scratch.take_ownership(self._bundle, name="replay")
        except OwnershipError as exc:
            raise Refused(f"second use of the bundle: {exc}") from None
        return "the container accepted the initial keys a second time"

    def personalize(self) -> str:
        """Step 7: load the function over the provider's own secure channel."""
        with self.sdk.open(self.record.name) as session:
            return self._personalize(session)

    @abc.abstractmethod
    def _personalize(self, session: ContainerSession) -> str:
        """Load the provider's function into its container; the detail line."""

    # --- phase 2: access (seed Fig. 3) ----------------------------------------------------------------
    def _login(self) -> IdToken:
        """The holder's browser, sent to the IdP with the device as login hint (the IdP resolves it at the
        operator, connects to the device and checks its identity); the redirect brings the code back."""
        request = self.oidc.authorization_url(login_hint=self.world.device_id)
        try:
            answer = httpx.get(request.url, follow_redirects=False, timeout=HTTP_TIMEOUT)
        except httpx.HTTPError as exc:
            raise StepFailed(f"the identity provider did not answer ({type(exc).__name__})") from None
        location = answer.headers.get("location")
        if answer.status_code not in (302, 303) or not location:
            raise StepFailed(f"the identity provider answered HTTP {answer.status_code} instead of a redirect")
        return self.oidc.handle_redirect(location, request)

    def login(self) -> str:
        self._token = self._login()
        return (
            f"code flow with PKCE S256; IdP authenticated the device ({', '.join(self._token.amr)}); "
            f"ID token verified (ES256, iss, aud, nonce, exp): pairwise sub {self._token.sub[:12]}..., "
            f"device at {self._token.device_address}"
        )

    def open_channel(self) -> str:
        """SCP03 mutual authentication with the container at the address the ID token gave."""
        with self.session_at(self.token.device_address) as session:
            status = session.status()
        return (
            f"connected to {self.token.device_address}, SELECT {self.record.aid.hex().upper()}, SCP03 level 33 "
            f"with its own keys; container {status.lifecycle.name}, {status.used}/{status.quota} bytes used"
        )

    def use(self) -> str:
        with self.session_at(self.token.device_address) as session:
            return self._use(session)

    @abc.abstractmethod
    def _use(self, session: ContainerSession) -> str:
        """Use the function over the provider's channel; the detail line."""

    def others_keys_refused(self, other: Tenant) -> str:
        """Invariant 2: this provider's keys open no other provider's container."""
        conn = connect(self.token.device_address, timeout=HTTP_TIMEOUT)
        try:
            session = ContainerSession(conn, other.record.aid)
            session.select()
            try:
                session.authenticate(self.record.keys, SECURITY_LEVEL)
            except (StatusError, CryptoError) as exc:
                raise Refused(f"{other.display}'s container refused {self.display}'s keys ({exc})") from None
            return f"{other.display}'s container accepted {self.display}'s keys"
        finally:
            conn.close()

    # --- phase 3: after revocation (seed Fig. 4) ------------------------------------------------------
    def login_after_loss(self) -> str:
        try:
            self._login()
        except TokenError as exc:
            if exc.reason is TokenFailure.OAUTH_ERROR and exc.oauth_error == "access_denied":
                raise Refused("the identity provider refused the lost device: access_denied") from None
            raise
        return "the identity provider logged a lost device in"

    def channel_after_revocation(self) -> str:
        try:
            with self.session_at(self.world.device_address):
                pass
        except (StatusError, CryptoError) as exc:
            raise Refused(f"SCP03 with the provider's keys refused: its key set is gone ({exc})") from None
        return "the container still accepted the provider's keys"

    def container_after_revocation(self) -> str:
        try:
            info = self.operator.container(self.container_id)
        except OperatorApiError as exc:
            if exc.status == 404:
                listed = [c.id for c in self.operator.containers()]
                if self.container_id in listed:
                    return "the operator still lists the container for this provider"
                raise Refused(f"container not found at the operator ({exc.code}); none listed for it") from None
            raise
        return f"the operator still shows the container to its former provider ({info.state})"


class Bank(Tenant):
    """Signs transactions with a P-256 key generated inside its container, certified by its own CA."""

    key = "bank"
    display = "Bank"
    function = "PKI signing"
    SLOT = 1

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Demo Bank CA")])
        now = datetime.datetime.now(datetime.UTC)
        self._ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._ca_key, hashes.SHA256())
        )

    def _personalize(self, session: ContainerSession) -> str:
        pki = PkiClient(session)
        pki.generate_key(self.SLOT, "p256", access=Access.HOLDER_OR_PROVIDER)
        csr = pki.csr(self.SLOT, "CN=Alice,O=Demo Bank customers")
        if not csr.is_signature_valid:
            raise StepFailed("the CSR signed in the container does not verify")
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self._ca.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(self._ca_key, hashes.SHA256())
        )
        pki.store_certificate(self.SLOT, cert)
        return (
            f"P-256 key generated in the container (slot {self.SLOT}, never leaves it); CSR signed there; "
            f"certificate '{cert.subject.rfc4514_string()}' by Demo Bank CA stored in the container"
        )

    def _use(self, session: ContainerSession) -> str:
        pki = PkiClient(session)
        transaction = b"pay 125.00 EUR to ACME, ref " + secrets.token_hex(8).encode()
        signature = pki.sign(self.SLOT, transaction)
        cert = pki.get_certificate(self.SLOT)
        cert.verify_directly_issued_by(self._ca)
        public = cert.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise StepFailed("the stored certificate holds no P-256 key")
        public.verify(signature, transaction, ec.ECDSA(hashes.SHA256()))
        return (
            f"transaction signed in the container (ECDSA P-256, {len(signature)}-byte DER signature); verified "
            f"with the certificate '{cert.subject.rfc4514_string()}' issued by Demo Bank CA"
        )


class Mail(Tenant):
    """Logs the holder in with TOTP codes the container computes behind the holder PIN."""

    key = "mail"
    display = "Mail"
    function = "TOTP behind the holder PIN"
    CREDENTIAL = "mail-login"
    DIGITS = 6

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._seed = os.urandom(20)  # RFC 4226 §4 R6: 160-bit shared secret, kept by the provider
        self._verifier = TotpVerifier(self._seed, digits=self.DIGITS)

    def _personalize(self, session: ContainerSession) -> str:
        session.set_pin(self.world.holder_pin, retries=3)
        OtpClient(session).load_seed(self.CREDENTIAL, self._seed, totp=True, digits=self.DIGITS, access=Access.HOLDER)
        return (
            f"holder PIN set (3 tries); TOTP seed (RFC 6238, HMAC-SHA1, {self.DIGITS} digits, 30 s) loaded "
            "encrypted over SCP03, usable only after the holder's PIN"
        )

    @contextlib.contextmanager
    def _holder(self) -> Iterator[ContainerSession]:
        """The holder's side: a plain connection to the container (no provider channel)."""
        conn = connect(self.token.device_address, timeout=HTTP_TIMEOUT)
        try:
            session = ContainerSession(conn, self.record.aid)
            session.select()
            yield session
        finally:
            conn.close()

    def code_without_pin(self) -> str:
        with self._holder() as session:
            try:
                OtpClient(session).generate(self.CREDENTIAL)
            except FunctionError as exc:
                raise Refused(f"no code before the holder's PIN: {exc}") from None
        return "the container computed a code without the holder's PIN"

    def _use(self, session: ContainerSession) -> str:
        with self._holder() as holder:
            holder.verify_pin(self.world.holder_pin)
            code = OtpClient(holder).generate(self.CREDENTIAL)
        step = self._verifier.verify(code.code, time.time())
        if step is None:
            raise StepFailed("the provider did not accept the container's TOTP code")
        self._verifier = TotpVerifier(self._seed, digits=self.DIGITS, last_step=step)
        return (
            f"holder verified her PIN; the container computed a {len(code.code)}-digit TOTP code; the provider "
            f"accepted it at time step {step} (one use only)"
        )


class Vpn(Tenant):
    """Authenticates the device with OCRA challenge-response (RFC 6287) through its secure channel."""

    key = "vpn"
    display = "VPN"
    function = "OCRA challenge-response"
    option = "B"
    container_index = 2
    SUITE = "OCRA-1:HOTP-SHA256-8:QN08"
    CREDENTIAL = "vpn-gateway"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._key = os.urandom(32)

    def _personalize(self, session: ContainerSession) -> str:
        ChallengeClient(session).load_ocra_key(self.CREDENTIAL, self._key, self.SUITE, access=Access.PROVIDER)
        return f"OCRA key for suite {self.SUITE} loaded encrypted over SCP03, usable only in the provider's channel"

    def _use(self, session: ContainerSession) -> str:
        question = f"{secrets.randbelow(10**8):08d}"
        response = ChallengeClient(session).ocra(self.CREDENTIAL, question)
        if verify_ocra(self.SUITE, self._key, OcraInput(question), response.code) is None:
            raise StepFailed("the gateway did not accept the container's OCRA response")
        return f"gateway challenge {question}: the container's {len(response.code)}-digit OCRA response verified"


def pairwise_subjects(tenants: tuple[Tenant, ...] | list[Tenant]) -> str:
    """Pseudonyms (DESIGN.md phase 2): one device, a different ``sub`` for each provider, the same one for a
    provider at every login."""
    subs = [t.token.sub for t in tenants]
    if len(set(subs)) != len(subs):
        raise StepFailed("two providers received the same subject for one device")
    again = tenants[0]._login()
    if again.sub != subs[0]:
        raise StepFailed(f"{tenants[0].display} received another subject at its second login")
    return (
        f"{len(subs)} providers, {len(subs)} different subjects for one device; "
        f"{tenants[0].display} logged in again and received the same one"
    )


class _MemoryKeystore:
    """A keystore that keeps nothing on disk (the replay attempt must not touch the provider's own)."""

    def __init__(self) -> None:
        self._records: dict[str, ContainerRecord] = {}

    def save(self, record: ContainerRecord) -> None:
        self._records[record.name] = record

    def load(self, name: str) -> ContainerRecord:
        from tenantcard.provider.errors import UnknownContainerError

        try:
            return self._records[name]
        except KeyError:
            raise UnknownContainerError(f"no container {name!r}") from None

    def delete(self, name: str) -> None:
        self._records.pop(name, None)

    def names(self) -> list[str]:
        return list(self._records)


TENANTS: tuple[type[Tenant], ...] = (Bank, Mail, Vpn)
