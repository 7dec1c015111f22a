# Chain position 0002 (the file name); revision id '0003' (what databases record in
# alembic_version). Keep the id as it is: renumbering it to match the file name would
# make an installed database run a migration twice. See versions/__init__.py.
"""agents: SMTP AUTH user of an inbound mail, pending time of a ticket

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_mail', schema=None) as batch_op:
        batch_op.add_column(sa.Column('authenticated_user', sa.String(length=320),
                                      nullable=True))
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_until', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('pending_until')
    with op.batch_alter_table('inbound_mail', schema=None) as batch_op:
        batch_op.drop_column('authenticated_user')
