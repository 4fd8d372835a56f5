"""Schedules: re-imports of an archive URL or S3 prefix that the server keeps and its workers
run (a new version only when the source changed).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id"), nullable=False, index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("every_seconds", sa.Integer, nullable=False),
        sa.Column("keep_last", sa.Integer, nullable=True),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("last_job_id", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("schedules")
