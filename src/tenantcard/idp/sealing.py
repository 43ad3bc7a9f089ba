"""What the identity provider seals under its key vault's master key, and the associated data binding each blob
to its row (so a blob copied to another row does not open). The vault is ``tenantcard.keyvault``."""

from __future__ import annotations

from tenantcard.idp.errors import IdpError


class VaultRequired(IdpError):
    """The database holds keys stored in clear (before schema revision 0003) and no key vault was given."""


def signing_key_aad(kid: str) -> bytes:
    """Associated data of a sealed private signing JWK."""
    return f"tenantcard-idp/signing-key:{kid}".encode()


def secret_aad(name: str) -> bytes:
    """Associated data of a sealed server secret (e.g. the pairwise-subject key)."""
    return f"tenantcard-idp/secret:{name}".encode()
