"""Key custody: every operator secret is stored wrapped under the master key of a key vault.

The vault is ``tenantcard.keyvault`` (AES-256-GCM with associated data; a 0600 file or a
non-extractable key on a PKCS#11 token). The associated data binds each blob to its purpose and owner
(e.g. ``isd:<device id>:<kvn>``), so a blob copied to another row does not open.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tenantcard.crypto.scp03.keys import StaticKeys
from tenantcard.keyvault import KeyVault, KeyVaultError, open_vault


class CustodyError(Exception):
    """A wrapped secret does not open (wrong vault, tampered blob, wrong owner). Never carries key bytes."""


_PEPPER_SEED_AAD = b"tenantcard-operator/credential-pepper"


class Custody:
    """Wraps and unwraps the operator's secrets under the vault's master key."""

    def __init__(self, vault: KeyVault) -> None:
        self._vault = vault

    @classmethod
    def open(cls, uri: str) -> Custody:
        try:
            return cls(open_vault(uri))
        except KeyVaultError as exc:
            raise CustodyError(f"key vault unavailable: {exc}") from exc

    def wrap(self, purpose: str, secret: bytes) -> bytes:
        try:
            return self._vault.seal(secret, purpose.encode())
        except KeyVaultError as exc:
            raise CustodyError(f"cannot wrap {purpose.split(':')[0]} secret") from exc

    def unwrap(self, purpose: str, blob: bytes) -> bytes:
        try:
            return self._vault.unseal(blob, purpose.encode())
        except KeyVaultError as exc:
            raise CustodyError(f"wrapped {purpose.split(':')[0]} secret does not open") from exc

    # --- SCP03 key sets -------------------------------------------------------------------------------------
    def wrap_keys(self, purpose: str, keys: StaticKeys) -> bytes:
        blob = json.dumps({"enc": keys.enc.hex(), "mac": keys.mac.hex(), "dek": keys.dek.hex(), "kvn": keys.kvn})
        return self.wrap(purpose, blob.encode())

    def unwrap_keys(self, purpose: str, blob: bytes) -> StaticKeys:
        raw = json.loads(self.unwrap(purpose, blob))
        return StaticKeys(bytes.fromhex(raw["enc"]), bytes.fromhex(raw["mac"]), bytes.fromhex(raw["dek"]), raw["kvn"])

    # --- EC private keys (the CA key) ----------------------------------------------------------------------
    def wrap_private_key(self, purpose: str, key: ec.EllipticCurvePrivateKey) -> bytes:
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return self.wrap(purpose, der)

    def unwrap_private_key(self, purpose: str, blob: bytes) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_der_private_key(self.unwrap(purpose, blob), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CustodyError("wrapped key is not an EC key")
        return key


def derive_pepper(seed: bytes) -> bytes:
    """The HMAC key for credential hashes, from a random seed the custody keeps wrapped."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PEPPER_SEED_AAD).derive(seed)


def credential_hash(pepper: bytes, secret: str) -> bytes:
    """HMAC-SHA256 of a credential's secret part (256 random bits, so a fast keyed hash suffices)."""
    return hmac.new(pepper, secret.encode(), hashlib.sha256).digest()
