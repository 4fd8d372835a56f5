"""Progress of a version being processed: bytes done and expected (an archive's download).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("progress_done", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("progress_total", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("progress_total")
        batch.drop_column("progress_done")
