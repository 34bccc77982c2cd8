"""Instances record whether xdsi wrote their File Meta Information (a data set sent without one).

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not batch mode: on SQLite a batch rebuilds the instance table, and dropping
# the old one would cascade to instance_metadata (foreign keys are on). SQLite >= 3.35 drops columns.
def upgrade() -> None:
    op.add_column('instance', sa.Column('file_meta_added', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    op.drop_column('instance', 'file_meta_added')
