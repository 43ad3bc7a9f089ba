"""ES256 signing keys with rotation by ``kid`` (RFC 7517, RFC 7638 thumbprints as key ids).

One key is active and signs; after a rotation the previous key stays in the JWKS until every ID token it
signed has expired, so relying parties that cached the set keep verifying while they refetch on an unknown kid.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from joserfc.jwk import ECKey, Key, KeySet

from tenantcard.idp.clock import Clock
from tenantcard.idp.db.repositories import IdpRepository
from tenantcard.idp.domain import SigningKey
from tenantcard.idp.sealing import signing_key_aad
from tenantcard.keyvault import KeyVault

ALGORITHM = "ES256"


def _new_key(now: int, vault: KeyVault) -> SigningKey:
    key = ECKey.generate_key("P-256", private=True)
    kid = key.thumbprint()
    private: dict[str, str] = {k: str(v) for k, v in key.as_dict(private=True).items()}
    private.update(kid=kid, alg=ALGORITHM, use="sig")
    public: dict[str, str] = {k: str(v) for k, v in key.as_dict(private=False).items()}
    public.update(kid=kid, alg=ALGORITHM, use="sig")
    sealed = vault.seal(json.dumps(private).encode(), signing_key_aad(kid))
    return SigningKey(
        kid=kid, public_jwk=public, private_sealed=sealed, created_at=now, retired_at=None, publish_until=None
    )


class KeyService:
    """The private halves live sealed under ``vault`` in the database; an unsealed key is kept in memory only."""

    def __init__(
        self, repository: IdpRepository, vault: KeyVault, clock: Clock, token_lifetime: int, leeway: int = 60
    ) -> None:
        self._repo = repository
        self._vault = vault
        self._clock = clock
        self._keep = token_lifetime + leeway
        self._unsealed: dict[str, ECKey] = {}
        self._lock = threading.Lock()

    def ensure_key(self) -> str:
        """The active key's kid, creating the first key on first start."""
        active = [k for k in self._repo.signing_keys() if k.retired_at is None]
        if active:
            return active[0].kid
        key = _new_key(int(self._clock()), self._vault)
        self._repo.add_key(key)
        return key.kid

    def rotate(self) -> str:
        """Make a new active key; the old ones stay published until their tokens have expired."""
        now = int(self._clock())
        key = _new_key(now, self._vault)
        self._repo.add_key(key, retire_others_at=now, publish_until=now + self._keep)
        return key.kid

    def signing_key(self) -> tuple[str, ECKey]:
        active = [k for k in self._repo.signing_keys() if k.retired_at is None]
        if not active:
            self.ensure_key()
            active = [k for k in self._repo.signing_keys() if k.retired_at is None]
        newest = active[0]
        return newest.kid, self._unseal(newest)

    def _unseal(self, stored: SigningKey) -> ECKey:
        """The private key of ``stored``; ``KeyVaultError`` when the vault does not open it."""
        with self._lock:
            key = self._unsealed.get(stored.kid)
            if key is None:
                private = json.loads(self._vault.unseal(stored.private_sealed, signing_key_aad(stored.kid)))
                key = ECKey.import_key(private)
                self._unsealed[stored.kid] = key
            return key

    def published(self) -> dict[str, Any]:
        """The JWKS document (RFC 7517 §5): public halves of the active key and of retired keys still needed."""
        now = int(self._clock())
        keys: list[Key] = []
        for stored in self._repo.signing_keys():
            if stored.publish_until is not None and stored.publish_until <= now:
                continue
            keys.append(ECKey.import_key(dict(stored.public_jwk)))
        if not keys:
            return {"keys": []}
        public = KeySet(keys).as_dict(private=False)
        return {"keys": [dict(k) for k in public["keys"]]}

    def all_keys(self) -> list[SigningKey]:
        return self._repo.signing_keys()
