"""``tenantcard provider``: a service provider's commands (docs/provider.md).

Ask the operator for a container, take it over with your own keys, personalize it (data objects, holder PIN,
OTP seeds, challenge-response keys, key pairs, certificates), use it, rotate its keys, have it revoked.
Container keys live in the keystore: a passphrase-encrypted file (default) or a PKCS#11 token.
Every expected failure prints one line and exits with status 1.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import importlib.util
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from tenantcard.cli.config import configurable
from tenantcard.cli.provider_common import (
    ACCESS_NAMES,
    KEYSTORE_ENV,
    PASSPHRASE_ENV,
    access_option,
    fails_cleanly,
    open_file_keystore,
    passphrase,
)

PKCS11_MODULE_ENV = "TENANTCARD_PKCS11_MODULE"
PKCS11_TOKEN_ENV = "TENANTCARD_PKCS11_TOKEN"
PKCS11_PIN_ENV = "TENANTCARD_PKCS11_PIN"
OPERATOR_ENV = "TENANTCARD_OPERATOR_URL"
CREDENTIAL_ENV = "TENANTCARD_PROVIDER_CREDENTIAL"
HOLDER_PIN_ENV = "TENANTCARD_HOLDER_PIN"

console = Console(highlight=False)


def _default_keystore() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tenantcard" / "provider-keystore.json"


@dataclass
class Settings:
    keystore_path: Path
    pkcs11_module: str | None
    pkcs11_token: str | None
    operator_url: str | None
    credential: str | None

    def keystore(self) -> Any:
        from tenantcard.provider.keystore import Pkcs11Keystore

        if self.pkcs11_module:
            if not self.pkcs11_token:
                raise click.ClickException(f"give --pkcs11-token (or ${PKCS11_TOKEN_ENV}) with --pkcs11-module")
            pin = os.environ.get(PKCS11_PIN_ENV) or click.prompt("token user PIN", hide_input=True, err=True)
            return Pkcs11Keystore(self.pkcs11_module, self.pkcs11_token, pin)
        return open_file_keystore(self.keystore_path)

    def operator(self) -> Any:
        from tenantcard.provider.sdk import OperatorClient

        if not self.operator_url or not self.credential:
            raise click.ClickException(
                f"the operator is needed: give --operator and --credential (or ${OPERATOR_ENV}, ${CREDENTIAL_ENV})"
            )
        return OperatorClient(self.operator_url, self.credential)

    def provider(self, *, with_operator: bool = False) -> Any:
        from tenantcard.provider.sdk import Provider

        operator = self.operator() if with_operator or (self.operator_url and self.credential) else None
        return Provider(self.keystore(), operator)


pass_settings = click.make_pass_decorator(Settings)


@configurable("TENANTCARD_PROVIDER")
@click.group()
@click.option(
    "--keystore",
    "keystore_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=KEYSTORE_ENV,
    default=_default_keystore,
    show_default="$XDG_CONFIG_HOME/tenantcard/provider-keystore.json",
    help=f"Keystore file (or ${KEYSTORE_ENV}); passphrase from ${PASSPHRASE_ENV} or a prompt.",
)
@click.option("--pkcs11-module", envvar=PKCS11_MODULE_ENV, help="Keep keys on a PKCS#11 token: its module path.")
@click.option("--pkcs11-token", envvar=PKCS11_TOKEN_ENV, help=f"Token label (user PIN from ${PKCS11_PIN_ENV}).")
@click.option("--operator", "operator_url", envvar=OPERATOR_ENV, help=f"Operator base URL (or ${OPERATOR_ENV}).")
@click.option("--credential", envvar=CREDENTIAL_ENV, help=f"Provider bearer credential (or ${CREDENTIAL_ENV}).")
@click.pass_context
def provider(
    ctx: click.Context,
    keystore_path: Path,
    pkcs11_module: str | None,
    pkcs11_token: str | None,
    operator_url: str | None,
    credential: str | None,
) -> None:
    """Take over and use containers as a service provider.

    Typical run: 'keystore init', 'request' (saves the bundle), 'take-ownership BUNDLE', then personalize
    ('set-pin', 'store', 'otp load', 'keygen', 'csr', 'cert') and use ('otp code', 'sign'); later 'rotate'
    and 'revoke'. A container is named by its keystore entry: DEVICE_ID/AID (see 'list').
    """
    ctx.obj = Settings(keystore_path, pkcs11_module, pkcs11_token, operator_url, credential)


# ---------------------------------------------------------------- keystore


@provider.group("keystore")
def keystore_group() -> None:
    """The keystore that holds your container keys."""


@keystore_group.command("init")
@pass_settings
@fails_cleanly
def keystore_init(settings: Settings) -> None:
    """Create an empty keystore file (mode 0600), encrypted under a passphrase (scrypt + AES-256-GCM)."""
    from tenantcard.provider.keystore import FileKeystore

    if settings.pkcs11_module:
        store = settings.keystore()
        console.print(f"PKCS#11 keystore ready: {len(store.names())} container(s) on the token")
        return
    FileKeystore.create(settings.keystore_path, passphrase(new=True))
    console.print(f"created keystore [bold]{settings.keystore_path}[/bold]")


@provider.command("list")
@pass_settings
@fails_cleanly
def list_containers(settings: Settings) -> None:
    """The containers whose keys are in the keystore."""
    store = settings.keystore()
    table = Table("container", "address", "KVN", "key")
    for name in store.names():
        rec = store.load(name)
        table.add_row(name, rec.device_address, f"{rec.keys.kvn:02X}", f"AES-{8 * rec.keys.length}")
    console.print(table)


# ---------------------------------------------------------------- operator


@provider.command("request")
@click.option("--contract", "contract_id", required=True, help="Your contract with the operator.")
@click.option("--serial", help="The holder's device, by serial number ...")
@click.option("--device-id", help="... or by device id (20 hex digits) ...")
@click.option("--idp-pointer", help="... or by the pointer the identity provider gave you.")
@click.option("--wait", type=float, default=30.0, show_default=True, help="Seconds to wait for consent/placement.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bundle.json"),
    show_default=True,
    help="Where to save the authorization bundle (mode 0600).",
)
@pass_settings
@fails_cleanly
def request(
    settings: Settings,
    contract_id: str,
    serial: str | None,
    device_id: str | None,
    idp_pointer: str | None,
    wait: float,
    out: Path,
) -> None:
    """Ask the operator for a container on a holder's device; saves the authorization bundle."""
    if sum(x is not None for x in (serial, device_id, idp_pointer)) != 1:
        raise click.UsageError("name the device by exactly one of --serial, --device-id, --idp-pointer")
    with settings.operator() as operator:
        status = operator.request_container(contract_id, serial=serial, device_id=device_id, idp_pointer=idp_pointer)
        if status.consent_code:
            console.print(f"the holder must approve: show them the code [bold]{status.consent_code}[/bold]")
        if status.bundle is None and wait > 0:
            status = operator.wait_for_bundle(status.id, timeout=wait)
    if status.bundle is None:
        raise click.ClickException(f"authorization {status.id} is {status.status}{_why(status.error)}; no bundle yet")
    status.bundle.save(out)
    b = status.bundle
    console.print(f"authorization [bold]{status.id}[/bold]: container {b.container_aid.hex().upper()} on {b.device_id}")
    console.print(f"bundle saved to {out}; expires {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(b.expires_at))}Z")


def _why(error: str | None) -> str:
    return f" ({error})" if error else ""


@provider.command("take-ownership")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--aes256", is_flag=True, help="Use AES-256 keys (default AES-128).")
@click.option("--name", help="Keystore entry for the container (default DEVICE_ID/AID).")
@pass_settings
@fails_cleanly
def take_ownership(settings: Settings, bundle_file: Path, aes256: bool, name: str | None) -> None:
    """Replace the operator's one-time keys with your own (SCP03 + PUT KEY at level 33), then confirm.

    After this, neither the operator nor anyone else can open the container with any key but yours.
    """
    from tenantcard.provider.sdk import AuthorizationBundle

    bundle = AuthorizationBundle.load(bundle_file)
    record = settings.provider().take_ownership(bundle, key_length=32 if aes256 else 16, name=name)
    with contextlib.suppress(OSError):
        bundle_file.unlink()  # the initial keys are spent
    console.print(f"[green]owned[/green] {record.name} (KVN {record.keys.kvn:02X}, AES-{8 * record.keys.length})")


@provider.command("containers")
@pass_settings
@fails_cleanly
def containers(settings: Settings) -> None:
    """Your containers as the operator sees them."""
    table = Table("id", "device", "AID", "state")
    with settings.operator() as operator:
        for c in operator.containers():
            table.add_row(c.id, c.device_id, c.aid, c.state)
    console.print(table)


@provider.command("revoke")
@click.argument("container")
@click.option("--container-id", help="The operator's id of the container (looked up when omitted).")
@click.confirmation_option(prompt="Revoke the container? Its content will be destroyed.")
@pass_settings
@fails_cleanly
def revoke(settings: Settings, container: str, container_id: str | None) -> None:
    """Have the operator revoke CONTAINER: its keys and content are destroyed on the device."""
    prov = settings.provider(with_operator=True)
    record = prov.keystore.load(container)
    if container_id is None:
        aid = record.aid.hex().upper()
        matches = [
            c for c in prov.operator.containers() if c.device_id.upper() == record.device_id.upper() and c.aid == aid
        ]
        if len(matches) != 1:
            raise click.ClickException("the operator does not list this container; give --container-id")
        container_id = matches[0].id
    info = prov.revoke(container, container_id)
    console.print(f"container {info.id} is {info.state}; its keys were removed from the keystore")


# ---------------------------------------------------------------- container management


@contextlib.contextmanager
def _session(settings: Settings, container: str, *, as_holder: bool = False) -> Iterator[Any]:
    """Your secure channel to CONTAINER; or, ``as_holder``, the holder's connection with the PIN verified
    ($TENANTCARD_HOLDER_PIN or a prompt)."""
    if not as_holder:
        with settings.provider().open(container) as session:
            yield session
        return
    pin = os.environ.get(HOLDER_PIN_ENV) or click.prompt("holder PIN", hide_input=True, err=True)
    with settings.provider().holder(container) as session:
        session.verify_pin(pin)
        yield session


@provider.command("rotate")
@click.argument("container")
@click.option("--aes256", is_flag=True, help="Switch to AES-256 keys.")
@pass_settings
@fails_cleanly
def rotate(settings: Settings, container: str, aes256: bool) -> None:
    """Replace your key set in CONTAINER with a fresh one."""
    record = settings.provider().rotate(container, key_length=32 if aes256 else None)
    console.print(f"rotated {record.name}: KVN {record.keys.kvn:02X}, AES-{8 * record.keys.length}")


@provider.command("status")
@click.argument("container")
@pass_settings
@fails_cleanly
def status(settings: Settings, container: str) -> None:
    """Life cycle, memory, holder PIN state, and the objects, keys and credentials of CONTAINER."""
    from tenantcard.client.challenge import ChallengeClient
    from tenantcard.client.otp import OtpClient
    from tenantcard.client.pki import PkiClient

    with _session(settings, container) as session:
        st = session.status()
        objects = session.list_objects()
        creds = OtpClient(session).list() + ChallengeClient(session).list()
        keys = PkiClient(session).list()
    console.print(f"[bold]{container}[/bold]  {st.lifecycle.name}  {st.used}/{st.quota} bytes")
    pin = f"{st.pin_tries_left}/{st.pin_max_tries} tries left" if st.pin_set else "not set"
    console.print(f"holder PIN: {pin}")
    table = Table("kind", "name", "details", "access")
    for o in objects:
        table.add_row("object", o.name.decode(errors="replace"), f"{o.size} bytes", o.access.name.lower())
    for c in creds:
        detail = c.suite or f"{c.algorithm.name} {c.digits} digits"
        table.add_row(c.kind.name.lower(), c.name.decode(errors="replace"), detail, c.access.name.lower())
    for k in keys:
        cert = "certificate" if k.has_certificate else "no certificate"
        table.add_row("key", f"slot {k.slot}", f"{k.algorithm.name} {cert}", k.access.name.lower())
    console.print(table)


@provider.command("store")
@click.argument("container")
@click.argument("name")
@click.option("--value", help="The object's value (text).")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="... or a file.")
@access_option("provider")
@pass_settings
@fails_cleanly
def store(settings: Settings, container: str, name: str, value: str | None, file: Path | None, access: str) -> None:
    """Store a data object NAME in CONTAINER (STORE DATA), readable per --access."""
    if (value is None) == (file is None):
        raise click.UsageError("give exactly one of --value, --file")
    data = value.encode() if value is not None else file.read_bytes()  # type: ignore[union-attr]
    with _session(settings, container) as session:
        session.put_object(name.encode(), data, ACCESS_NAMES[access])
    console.print(f"stored {name} ({len(data)} bytes, {access})")


@provider.command("set-pin")
@click.argument("container")
@click.option(
    "--retries", type=click.IntRange(1, 15), default=3, show_default=True, help="Wrong PINs before it blocks."
)
@pass_settings
@fails_cleanly
def set_pin(settings: Settings, container: str, retries: int) -> None:
    """Set the holder PIN of CONTAINER (prompted, or $TENANTCARD_HOLDER_PIN) and its retry limit."""
    pin = os.environ.get(HOLDER_PIN_ENV) or click.prompt("holder PIN", hide_input=True, confirmation_prompt=True)
    with _session(settings, container) as session:
        session.set_pin(pin, retries)
    console.print(f"holder PIN set ({retries} tries)")


# ---------------------------------------------------------------- OTP


@provider.group("otp")
def otp() -> None:
    """One-time passwords: load seeds (provider), compute codes (holder), verify codes (offline)."""


@dataclass(frozen=True)
class _Seed:
    """An OTP seed and its parameters as the options give them."""

    secret: bytes
    totp: bool
    algorithm: str
    digits: int
    period: int
    counter: int


def _seed_options(*, counter_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options that describe an OTP seed and its parameters (loading one, checking a code against one),
    handed to the command as ``seed`` (a ``_Seed``)."""
    options = [
        click.option("--secret-hex", envvar="TENANTCARD_OTP_SECRET_HEX", help="The seed in hex (or that variable)."),
        click.option("--secret-base32", help="... or in base32 (as authenticator apps show it)."),
        click.option("--totp", is_flag=True, help="Time-based (RFC 6238); default counter-based HOTP (RFC 4226)."),
        click.option(
            "--algorithm",
            type=click.Choice(["SHA1", "SHA256", "SHA512"]),
            default="SHA1",
            show_default=True,
            help="HMAC hash.",
        ),
        click.option("--digits", type=click.IntRange(6, 8), default=6, show_default=True, help="Code length."),
        click.option(
            "--period", type=click.IntRange(1, 3600), default=30, show_default=True, help="TOTP step, seconds."
        ),
        click.option("--counter", type=click.IntRange(0), default=0, show_default=True, help=counter_help),
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def command(
            *args: Any,
            secret_hex: str | None,
            secret_base32: str | None,
            totp: bool,
            algorithm: str,
            digits: int,
            period: int,
            counter: int,
            **kwargs: Any,
        ) -> Any:
            seed = _Seed(_secret(secret_hex, secret_base32), totp, algorithm, digits, period, counter)
            return fn(*args, seed=seed, **kwargs)

        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _secret(secret_hex: str | None, secret_base32: str | None) -> bytes:
    if (secret_hex is None) == (secret_base32 is None):
        raise click.UsageError("give exactly one of --secret-hex, --secret-base32")
    try:
        if secret_hex is not None:
            return bytes.fromhex(secret_hex)
        assert secret_base32 is not None
        text = secret_base32.upper().replace(" ", "")
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except (ValueError, binascii.Error):
        raise click.UsageError("the secret is not valid hex / base32") from None


@otp.command("load")
@click.argument("container")
@click.argument("name")
@_seed_options(counter_help="HOTP initial counter.")
@access_option("holder")
@click.option("--replace", is_flag=True, help="Replace a credential of that name.")
@pass_settings
@fails_cleanly
def otp_load(
    settings: Settings,
    container: str,
    name: str,
    seed: _Seed,
    access: str,
    replace: bool,
) -> None:
    """Load an OTP seed NAME into CONTAINER (travels encrypted in your secure channel)."""
    from tenantcard.client.otp import OtpClient

    with _session(settings, container) as session:
        OtpClient(session).load_seed(
            name,
            seed.secret,
            totp=seed.totp,
            algorithm=seed.algorithm,
            digits=seed.digits,
            counter=seed.counter,
            period=seed.period,
            access=ACCESS_NAMES[access],
            replace=replace,
        )
    kind = "TOTP" if seed.totp else "HOTP"
    console.print(f"loaded {kind} {name} ({seed.algorithm}, {seed.digits} digits, {access})")


@otp.command("code")
@click.argument("container")
@click.argument("name")
@click.option("--at", "at", type=int, help="Unix time for a TOTP code (default: the device's clock).")
@click.option("--as-provider", is_flag=True, help="Through your secure channel instead of the holder PIN.")
@pass_settings
@fails_cleanly
def otp_code(settings: Settings, container: str, name: str, at: int | None, as_provider: bool) -> None:
    """Have the container compute a code, as the holder (PIN prompted, or $TENANTCARD_HOLDER_PIN)."""
    from tenantcard.client.otp import OtpClient

    with _session(settings, container, as_holder=not as_provider) as session:
        code = OtpClient(session).generate(name, at=at)
    click.echo(code.code)


@otp.command("verify")
@click.argument("code")
@_seed_options(counter_help="HOTP: the expected counter.")
@click.option("--window", type=click.IntRange(0, 1000), default=10, show_default=True, help="Look-ahead / steps.")
@click.option("--at", "at", type=int, help="TOTP: Unix time (default now).")
def otp_verify(
    code: str,
    seed: _Seed,
    window: int,
    at: int | None,
) -> None:
    """Check CODE against a seed, as your server does (RFC 4226 §7.2 look-ahead, RFC 6238 §5.2 window).

    Prints the counter to expect next (HOTP) or the matching time step (TOTP); exit status 1 when it fails.
    """
    from tenantcard.crypto.otp import HashAlgorithm, HotpVerifier, TotpVerifier

    alg = HashAlgorithm.from_name(seed.algorithm)
    if seed.totp:
        totp = TotpVerifier(seed.secret, seed.digits, alg, seed.period, window=window)
        step = totp.verify(code, time.time() if at is None else at)
        if step is None:
            raise click.ClickException("code does not match")
        click.echo(f"valid: time step {step}")
    else:
        nxt = HotpVerifier(seed.secret, seed.counter, seed.digits, alg, window=window).verify(code)
        if nxt is None:
            raise click.ClickException("code does not match")
        click.echo(f"valid: next counter {nxt}")


# ---------------------------------------------------------------- challenge-response


@provider.command("ocra")
@click.argument("container")
@click.argument("name")
@click.argument("question")
@click.option("--load-suite", help="Provider: load the key NAME for this OCRA suite first (key from --key-hex).")
@click.option("--key-hex", envvar="TENANTCARD_OCRA_KEY_HEX", help="The key in hex, with --load-suite.")
@pass_settings
@fails_cleanly
def ocra(
    settings: Settings, container: str, name: str, question: str, load_suite: str | None, key_hex: str | None
) -> None:
    """OCRA (RFC 6287) response of the container's key NAME to QUESTION, as the holder (PIN from
    $TENANTCARD_HOLDER_PIN or a prompt)."""
    from tenantcard.client.challenge import ChallengeClient

    if load_suite:
        if not key_hex:
            raise click.UsageError("--load-suite needs --key-hex")
        with _session(settings, container) as session:
            ChallengeClient(session).load_ocra_key(name, bytes.fromhex(key_hex), load_suite)
    with _session(settings, container, as_holder=True) as session:
        click.echo(ChallengeClient(session).ocra(name, question).code)


# ---------------------------------------------------------------- PKI


@provider.command("keygen")
@click.argument("container")
@click.argument("slot", type=click.IntRange(1, 127))
@click.option(
    "--algorithm",
    type=click.Choice(["p256", "ed25519"]),
    default="p256",
    show_default=True,
    help="Key type: ECDSA P-256 or Ed25519.",
)
@access_option("holder-or-provider")
@click.option("--replace", is_flag=True, help="Replace the key in that slot (its certificate is dropped).")
@pass_settings
@fails_cleanly
def keygen(settings: Settings, container: str, slot: int, algorithm: str, access: str, replace: bool) -> None:
    """Generate a key pair inside CONTAINER in SLOT; prints the public key (PEM). The private key never
    leaves the container."""
    from cryptography.hazmat.primitives import serialization

    from tenantcard.client.pki import PkiClient

    with _session(settings, container) as session:
        public = PkiClient(session).generate_key(slot, algorithm, access=ACCESS_NAMES[access], replace=replace)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    click.echo(pem.decode(), nl=False)


@provider.command("sign")
@click.argument("container")
@click.argument("slot", type=click.IntRange(1, 127))
@click.option("--data", help="Text to sign.")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="... or a file.")
@click.option("--as-holder", is_flag=True, help="Sign as the holder (PIN from $TENANTCARD_HOLDER_PIN or a prompt).")
@click.option("--base64", "b64", is_flag=True, help="Print base64 instead of hex.")
@pass_settings
@fails_cleanly
def sign(
    settings: Settings, container: str, slot: int, data: str | None, file: Path | None, as_holder: bool, b64: bool
) -> None:
    """Sign with the key in SLOT: ECDSA P-256/SHA-256 (DER) or Ed25519."""
    from tenantcard.client.pki import PkiClient

    if (data is None) == (file is None):
        raise click.UsageError("give exactly one of --data, --file")
    message = data.encode() if data is not None else file.read_bytes()  # type: ignore[union-attr]
    with _session(settings, container, as_holder=as_holder) as session:
        signature = PkiClient(session).sign(slot, message)
    click.echo(base64.b64encode(signature).decode() if b64 else signature.hex())


@provider.command("csr")
@click.argument("container")
@click.argument("slot", type=click.IntRange(1, 127))
@click.option("--subject", required=True, help="RFC 4514 name, e.g. 'CN=alice,O=Example'.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="PEM file (default: stdout).")
@pass_settings
@fails_cleanly
def csr(settings: Settings, container: str, slot: int, subject: str, out: Path | None) -> None:
    """A certificate signing request (PKCS#10) for the key in SLOT, signed inside the container."""
    from cryptography.hazmat.primitives import serialization

    from tenantcard.client.pki import PkiClient

    with _session(settings, container) as session:
        request_ = PkiClient(session).csr(slot, subject)
    pem = request_.public_bytes(serialization.Encoding.PEM)
    if out is None:
        click.echo(pem.decode(), nl=False)
    else:
        out.write_bytes(pem)
        click.echo(f"CSR for slot {slot} written to {out}", err=True)


@provider.command("cert")
@click.argument("container")
@click.argument("slot", type=click.IntRange(1, 127))
@click.argument("certificate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_settings
@fails_cleanly
def cert(settings: Settings, container: str, slot: int, certificate: Path) -> None:
    """Store CERTIFICATE (PEM or DER) for the key in SLOT; the container checks that it matches."""
    from cryptography import x509

    from tenantcard.client.pki import PkiClient

    raw = certificate.read_bytes()
    try:
        parsed = x509.load_pem_x509_certificate(raw) if b"-----BEGIN" in raw else x509.load_der_x509_certificate(raw)
    except ValueError:
        raise click.ClickException(f"{certificate} is not an X.509 certificate") from None
    with _session(settings, container) as session:
        PkiClient(session).store_certificate(slot, parsed)
    console.print(f"certificate stored in slot {slot}: {parsed.subject.rfc4514_string()}")


if importlib.util.find_spec("tenantcard.cli.programs") is not None:  # the programs commands, when installed
    from tenantcard.cli.programs import programs as _programs

    provider.add_command(_programs)
