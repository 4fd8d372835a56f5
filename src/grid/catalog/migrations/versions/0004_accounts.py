"""Accounts for team mode: owners are users or teams, team memberships, and API keys (only a
hash of each key is stored).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch copy would drop "owners", which datastores
    # reference.
    op.add_column("owners", sa.Column("kind", sa.String(8), nullable=False, server_default="user"))
    op.add_column(
        "owners", sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.Integer, sa.ForeignKey("owners.id"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("owners.id"), primary_key=True),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("owners.id"), nullable=False, index=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("team_members")
    with op.batch_alter_table("owners") as batch:
        batch.drop_column("disabled")
        batch.drop_column("kind")
