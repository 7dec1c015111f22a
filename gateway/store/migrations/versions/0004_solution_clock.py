# Chain position 0004 (the file name); revision id '0005' (what databases record in
# alembic_version). Keep the id as it is: renumbering it to match the file name would
# make an installed database run a migration twice. See versions/__init__.py.
"""solution clock: paused working minutes and since when it is stopped

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('solution_paused_minutes', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('solution_stopped_at', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('solution_stopped_at')
        batch_op.drop_column('solution_paused_minutes')
