# Chain position 0003 (the file name); revision id '0002' (what databases record in
# alembic_version). Keep the id as it is: renumbering it to match the file name would
# make an installed database run a migration twice. See versions/__init__.py.
"""notifier: outbound queue and once-only escalation events

Revision ID: 0002
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbound_mail',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('article_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('mail_from', sa.String(length=998), nullable=False),
        sa.Column('rcpt_to', sa.JSON(), nullable=False),
        sa.Column('rcpt_key', sa.String(length=320), nullable=False),
        sa.Column('message_id', sa.String(length=998), nullable=False),
        sa.Column('subject', sa.Text(), nullable=False),
        sa.Column('raw', sa.LargeBinary(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['article_id'], ['article.id']),
        sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_outbound_mail_ticket_id', 'outbound_mail', ['ticket_id'])
    op.create_index('ix_outbound_mail_message_id', 'outbound_mail', ['message_id'])
    op.create_index('ix_outbound_mail_rcpt_key', 'outbound_mail', ['rcpt_key'])
    op.create_index('ix_outbound_mail_status', 'outbound_mail', ['status'])
    op.create_index('ix_outbound_mail_next_attempt', 'outbound_mail', ['next_attempt'])
    op.create_table(
        'escalation_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=60), nullable=False),
        sa.Column('instant', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('ticket_id', 'event', 'instant'))
    op.create_index('ix_escalation_event_ticket_id', 'escalation_event', ['ticket_id'])


def downgrade() -> None:
    op.drop_table('escalation_event')
    op.drop_table('outbound_mail')
