"""Instance metadata keeps DICOM JSON only; PS3.19 XML is rendered from it on request.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instance_metadata', schema=None) as batch_op:
        batch_op.drop_column('xml')


def downgrade() -> None:
    # The column comes back empty: code of revision 0001 would answer XML metadata of the
    # instances stored meanwhile with empty documents until they are stored again.
    with op.batch_alter_table('instance_metadata', schema=None) as batch_op:
        batch_op.add_column(sa.Column('xml', sa.LargeBinary(), nullable=False, server_default=sa.text("''")))
