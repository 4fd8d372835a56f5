"""Gone packs: the packs gc deleted, in order, so that a client forgets them when it syncs
what its owner stores (it would otherwise reuse one a later commit cannot have).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gone_packs",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id"), nullable=False, index=True),
        sa.Column("pack_id", sa.String(64), nullable=False),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gone_packs")
