"""agent replays: applied agent mails, and whether a mail's source vouches for its
Authentication-Results

Revision ID: 7c3e9a41b2d5
Revises: 8e41c0d7a95b
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '7c3e9a41b2d5'
down_revision = '8e41c0d7a95b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'applied_agent_mail',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_key', sa.String(length=64), nullable=False),
        sa.Column('message_id', sa.Text(), nullable=False),
        sa.Column('agent', sa.String(length=200), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('article_id', sa.Integer(), nullable=True),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['article_id'], ['article.id'], ),
        sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('message_key', 'agent', 'ticket_id', name='uq_applied_agent_mail'),
    )
    with op.batch_alter_table('inbound_mail', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trust_auth_results', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('inbound_mail', schema=None) as batch_op:
        batch_op.drop_column('trust_auth_results')
    op.drop_table('applied_agent_mail')
