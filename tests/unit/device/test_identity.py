"""Device identity (crypto.identity): the domain-separated message, CA and device certificates, verification."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.crypto.identity import (
    DEVICE_AUTH_DOMAIN,
    IdentityError,
    device_auth_message,
    device_id_of,
    issue_device_certificate,
    make_ca,
    sign_challenge,
    verify_device_auth,
)

DEVICE_ID = bytes.fromhex("00112233445566778899")
NOW = datetime.datetime.now(datetime.UTC)


def test_message_layout() -> None:
    challenge = bytes(range(16))
    msg = device_auth_message(DEVICE_ID, challenge)
    assert msg == b"tenantcard-device-auth-v1\x00" + DEVICE_ID + b"\x10" + challenge
    assert msg.startswith(DEVICE_AUTH_DOMAIN)
    for bad_id, bad_challenge in ((bytes(9), challenge), (DEVICE_ID, bytes(15)), (DEVICE_ID, bytes(65))):
        with pytest.raises(IdentityError):
            device_auth_message(bad_id, bad_challenge)


def test_verify_accepts_the_device_and_nothing_else() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca("Operator Root", ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_device_certificate(ca_key, ca, key.public_key(), DEVICE_ID, "SN-1", NOW + datetime.timedelta(days=1))
    assert device_id_of(cert) == DEVICE_ID
    challenge = b"x" * 32
    sig = sign_challenge(key, DEVICE_ID, challenge)
    verify_device_auth([cert], ca, DEVICE_ID, challenge, sig)

    with pytest.raises(IdentityError, match="signature"):
        verify_device_auth([cert], ca, DEVICE_ID, b"y" * 32, sig)
    with pytest.raises(IdentityError, match="another device"):
        verify_device_auth([cert], ca, bytes(10), challenge, sign_challenge(key, bytes(10), challenge))
    other_ca_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = make_ca("Someone Else", other_ca_key)
    with pytest.raises(IdentityError, match="root"):
        verify_device_auth([cert], other_ca, DEVICE_ID, challenge, sig)
    with pytest.raises(IdentityError, match="empty"):
        verify_device_auth([], ca, DEVICE_ID, challenge, sig)
    # A signature by another key over the right message fails too.
    rogue = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(IdentityError):
        verify_device_auth([cert], ca, DEVICE_ID, challenge, sign_challenge(rogue, DEVICE_ID, challenge))
    # An expired certificate fails path validation.
    with pytest.raises(IdentityError):
        verify_device_auth([cert], ca, DEVICE_ID, challenge, sig, now=NOW + datetime.timedelta(days=2))


def test_chain_with_an_intermediate() -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_ca("Root", root_key)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    # An intermediate is a CA certificate issued by the root (same builder, signed by the root).
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    self_signed = make_ca("Manufacturing CA", inter_key)
    inter = (
        x509.CertificateBuilder()
        .subject_name(self_signed.subject)
        .issuer_name(root.subject)
        .public_key(inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(self_signed.extensions.get_extension_for_class(x509.KeyUsage).value, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_device_certificate(
        inter_key, inter, key.public_key(), DEVICE_ID, "SN-2", NOW + datetime.timedelta(days=1)
    )
    challenge = bytes(64)
    sig = sign_challenge(key, DEVICE_ID, challenge)
    verify_device_auth([cert, inter], root, DEVICE_ID, challenge, sig)
    with pytest.raises(IdentityError):
        verify_device_auth([cert], root, DEVICE_ID, challenge, sig)  # the intermediate is needed


def test_issue_refuses_bad_device_id() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca("Root", ca_key)
    with pytest.raises(IdentityError):
        issue_device_certificate(ca_key, ca, ca_key.public_key(), bytes(4), "SN", NOW + datetime.timedelta(days=1))
