"""Checking a signed program manifest against the container's program-signing key.

The wire format (``Manifest``, ``SignedManifest``, ``LoadFile``) is in tenantcard.wire.programs; the provider
signs ``Manifest.signing_input()`` with Ed25519 (RFC 8032) or ECDSA P-256/SHA-256 (FIPS 186-5).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tenantcard.wire.programs import Manifest, SignedManifest, SigningAlgorithm

SIGNING_KEY_KIND = "programs.signer"
SIGNING_KEY_NAME = b"\x00"


class ManifestRejected(Exception):
    """The manifest is not signed by the container's program-signing key, or does not match its module."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A provider's program-signing public key as the container stores it: algorithm byte + key bytes."""

    algorithm: SigningAlgorithm
    public_key: bytes

    def __post_init__(self) -> None:
        self._load()

    def _load(self) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey:
        try:
            if self.algorithm == SigningAlgorithm.ED25519:
                if len(self.public_key) != 32:
                    raise ValueError("Ed25519 public key must be 32 bytes")
                return ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)
            if self.algorithm == SigningAlgorithm.ECDSA_P256_SHA256:
                if len(self.public_key) != 65 or self.public_key[0] != 0x04:
                    raise ValueError("P-256 public key must be an uncompressed point")
                return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.public_key)
        except ValueError as exc:
            raise ValueError("not a valid program-signing public key") from exc
        raise ValueError("unknown signing algorithm")

    def to_bytes(self) -> bytes:
        return bytes([self.algorithm]) + self.public_key

    @classmethod
    def parse(cls, raw: bytes) -> SigningKey:
        if len(raw) < 2:
            raise ValueError("signing key record too short")
        return cls(SigningAlgorithm(raw[0]), raw[1:])

    def verify(self, signed: SignedManifest) -> Manifest:
        """The manifest, if the signature is this key's over ``signing_input()``."""
        key = self._load()
        message = signed.manifest.signing_input()
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signed.signature, message)
            else:
                key.verify(signed.signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise ManifestRejected("manifest signature does not verify with the program-signing key") from None
        return signed.manifest
