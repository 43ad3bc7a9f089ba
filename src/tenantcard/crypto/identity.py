"""Device identity: the ECDSA P-256 key that proves which device answers at an address.

The device signs a verifier's challenge with domain separation (never a raw signing oracle); the verifier
checks the signature and the certificate chain up to the operator's root CA (RFC 5280 path validation by
pyca/cryptography's ``x509.verification``).
"""

from __future__ import annotations

import datetime
import hmac
import re
from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

DEVICE_AUTH_DOMAIN = b"tenantcard-device-auth-v1\x00"
DEVICE_ID_LENGTH = 10
DEVICE_ID_HEX_PATTERN = r"^[0-9A-Fa-f]{20}$"  # a device id written as text (either case)
DEVICE_URN_PREFIX = "urn:tenantcard:device:"
MIN_CHALLENGE = 16
MAX_CHALLENGE = 64
# The challenge of a login (the identity provider asks it, the operator checks the proof later): the 8-byte
# big-endian UNIX time it was made at, then random bytes, so that a stale proof can be told from a fresh one.
LOGIN_CHALLENGE_LENGTH = 32
LOGIN_TIMESTAMP_LENGTH = 8


class IdentityError(Exception):
    """A device identity could not be verified (bad chain, wrong device, bad signature)."""


def _check_challenge(device_id: bytes, challenge: bytes) -> None:
    if len(device_id) != DEVICE_ID_LENGTH:
        raise IdentityError("device id must be 10 bytes")
    if not MIN_CHALLENGE <= len(challenge) <= MAX_CHALLENGE:
        raise IdentityError("challenge must be 16..64 bytes")


def is_device_id_hex(text: str) -> bool:
    """Whether ``text`` is a device id written in hex (``DEVICE_ID_HEX_PATTERN``)."""
    return re.fullmatch(DEVICE_ID_HEX_PATTERN, text) is not None


def login_challenge(now: float, random_bytes: Callable[[int], bytes]) -> bytes:
    """A fresh login challenge made at ``now`` (UNIX seconds)."""
    return int(now).to_bytes(LOGIN_TIMESTAMP_LENGTH, "big") + random_bytes(
        LOGIN_CHALLENGE_LENGTH - LOGIN_TIMESTAMP_LENGTH
    )


def login_challenge_time(challenge: bytes) -> int | None:
    """When a login challenge was made (UNIX seconds); None when it is not one."""
    if len(challenge) != LOGIN_CHALLENGE_LENGTH:
        return None
    return int.from_bytes(challenge[:LOGIN_TIMESTAMP_LENGTH], "big")


def device_auth_message(device_id: bytes, challenge: bytes) -> bytes:
    """The exact message the device signs for INTERNAL AUTHENTICATE (docs/protocol.md)."""
    _check_challenge(device_id, challenge)
    return DEVICE_AUTH_DOMAIN + device_id + bytes([len(challenge)]) + challenge


def sign_challenge(key: ec.EllipticCurvePrivateKey, device_id: bytes, challenge: bytes) -> bytes:
    """DER-encoded ECDSA P-256/SHA-256 signature over ``device_auth_message``."""
    return key.sign(device_auth_message(device_id, challenge), ec.ECDSA(hashes.SHA256()))


def device_id_of(cert: x509.Certificate) -> bytes:
    """The device id a device certificate names (subject serialNumber, hex)."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(attrs) != 1:
        raise IdentityError("certificate names no device id")
    value = attrs[0].value
    try:
        device_id = bytes.fromhex(value if isinstance(value, str) else value.decode("ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IdentityError("certificate device id is not hex") from exc
    if len(device_id) != DEVICE_ID_LENGTH:
        raise IdentityError("certificate device id is not 10 bytes")
    return device_id


def verify_device_auth(
    chain: list[x509.Certificate],
    root: x509.Certificate,
    device_id: bytes,
    challenge: bytes,
    signature: bytes,
    *,
    now: datetime.datetime | None = None,
) -> None:
    """Check that ``signature`` answers ``challenge`` for ``device_id`` under a chain issued by ``root``.

    ``chain`` is the device certificate first, then intermediates (the root is not included).
    Raises ``IdentityError`` on any failure.
    """
    if not chain:
        raise IdentityError("empty certificate chain")
    leaf = chain[0]
    when = now or datetime.datetime.now(datetime.UTC)
    try:
        verifier = PolicyBuilder().store(Store([root])).time(when).build_client_verifier()
        verifier.verify(leaf, chain[1:])
    except VerificationError as exc:
        raise IdentityError("certificate chain does not verify to the root") from exc
    if not hmac.compare_digest(device_id_of(leaf), device_id):
        raise IdentityError("certificate is for another device")
    public_key = leaf.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise IdentityError("device key is not P-256")
    try:
        public_key.verify(signature, device_auth_message(device_id, challenge), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise IdentityError("signature does not verify") from exc


def _name(common_name: str, serial: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if serial is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def _key_usage(*granted: str) -> x509.KeyUsage:
    """RFC 5280 §4.2.1.3 keyUsage with only the ``granted`` bits set."""
    bits = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{bit: bit in granted for bit in bits})


def make_ca(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> x509.Certificate:
    """A self-signed root CA certificate (RFC 5280 §4.2.1.9 basicConstraints CA, keyCertSign)."""
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    end = not_after or start + datetime.timedelta(days=3650)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            _key_usage("key_cert_sign", "crl_sign"),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue_device_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    device_public_key: ec.EllipticCurvePublicKey,
    device_id: bytes,
    serial: str,
    not_after: datetime.datetime,
    *,
    not_before: datetime.datetime | None = None,
) -> x509.Certificate:
    """A device certificate: subject CN = device serial, serialNumber = device id (hex), subjectAltName URI
    ``urn:tenantcard:device:<hex id>``; clientAuth."""
    if len(device_id) != DEVICE_ID_LENGTH:
        raise IdentityError("device id must be 10 bytes")
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(serial, device_id.hex().upper()))
        .issuer_name(ca_cert.subject)
        .public_key(device_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage("digital_signature"),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        # RFC 5280 §4.2.1.6: path validation of an end-entity certificate wants a subjectAltName.
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(DEVICE_URN_PREFIX + device_id.hex())]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(device_public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
