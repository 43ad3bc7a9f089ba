"""identity providers: a credential role of their own, and the pointers each registered

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_providers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("device_pointers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idp_id", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_device_pointers_idp_id"), ["idp_id"], unique=False)
        batch_op.create_foreign_key("fk_device_pointers_idp_id", "identity_providers", ["idp_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("device_pointers", schema=None) as batch_op:
        batch_op.drop_constraint("fk_device_pointers_idp_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_device_pointers_idp_id"))
        batch_op.drop_column("idp_id")
    op.drop_table("identity_providers")
