"""outbound_mail: the lease token of the claim that owns a row, and whether it needs SMTPUTF8

Revision ID: 8e41c0d7a95b
Revises: 0005
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '8e41c0d7a95b'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbound_mail', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_token', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('smtputf8', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index('ix_outbound_mail_lease_token', ['lease_token'])


def downgrade() -> None:
    with op.batch_alter_table('outbound_mail', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_mail_lease_token')
        batch_op.drop_column('smtputf8')
        batch_op.drop_column('lease_token')
