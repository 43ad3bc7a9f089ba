"""Seal the signing keys and server secrets under the key vault's master key.

``idp_signing_keys.private_jwk`` (clear JSON) becomes ``public_jwk`` (clear) + ``private_sealed`` (AES-GCM blob);
``idp_secrets.value`` becomes ``sealed``. Existing rows are sealed with the vault handed to the upgrade
(``config.attributes["vault"]``); a database with such rows does not upgrade without one.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import context, op

from tenantcard.idp.sealing import VaultRequired, secret_aad, signing_key_aad
from tenantcard.keyvault import KeyVault

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "kid", "alg", "use")


def _vault() -> KeyVault:
    vault: KeyVault | None = context.config.attributes.get("vault")
    if vault is None:
        raise VaultRequired("the database holds keys stored in clear: upgrade it with the key vault that seals them")
    return vault


def upgrade() -> None:
    bind = op.get_bind()
    keys = bind.execute(sa.text("SELECT kid, private_jwk FROM idp_signing_keys")).all()
    secrets = bind.execute(sa.text("SELECT name, value FROM idp_secrets")).all()
    vault = _vault() if keys or secrets else None
    if bind.dialect.name == "sqlite":
        # The clear values are overwritten, not left in free pages of the file (PostgreSQL: VACUUM FULL after).
        bind.execute(sa.text("PRAGMA secure_delete = ON"))

    with op.batch_alter_table("idp_signing_keys") as batch:
        batch.add_column(sa.Column("public_jwk", sa.Text(), nullable=True))
        batch.add_column(sa.Column("private_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("idp_secrets") as batch:
        batch.add_column(sa.Column("sealed", sa.LargeBinary(), nullable=True))

    for kid, private_jwk in keys:
        assert vault is not None
        private = json.loads(private_jwk)
        public = {k: v for k, v in private.items() if k in _PUBLIC_MEMBERS}
        bind.execute(
            sa.text("UPDATE idp_signing_keys SET public_jwk = :public, private_sealed = :sealed WHERE kid = :kid"),
            {
                "public": json.dumps(public),
                "sealed": vault.seal(json.dumps(private).encode(), signing_key_aad(kid)),
                "kid": kid,
            },
        )
    for name, value in secrets:
        assert vault is not None
        bind.execute(
            sa.text("UPDATE idp_secrets SET sealed = :sealed WHERE name = :name"),
            {"sealed": vault.seal(bytes(value), secret_aad(name)), "name": name},
        )

    with op.batch_alter_table("idp_signing_keys") as batch:
        batch.drop_column("private_jwk")
        batch.alter_column("public_jwk", existing_type=sa.Text(), nullable=False)
        batch.alter_column("private_sealed", existing_type=sa.LargeBinary(), nullable=False)
    with op.batch_alter_table("idp_secrets") as batch:
        batch.drop_column("value")
        batch.alter_column("sealed", existing_type=sa.LargeBinary(), nullable=False)


def downgrade() -> None:
    # One way only: unsealing keys back into clear columns would undo the point of this revision.
    raise RuntimeError("revision 0003 cannot be downgraded: sealed keys are not unsealed back into the database")
