"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('blob',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    op.create_table('counter',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('ticket',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=50), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=100), nullable=False),
    sa.Column('priority', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=True),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('responsible', sa.String(length=200), nullable=True),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('customer_user', sa.String(length=998), nullable=True),
    sa.Column('customer_id', sa.String(length=200), nullable=True),
    sa.Column('dynamic_fields', sa.JSON(), nullable=False),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_agent_contact', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_contact', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_due', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_notify', sa.DateTime(timezone=True), nullable=True),
    sa.Column('update_due', sa.DateTime(timezone=True), nullable=True),
    sa.Column('update_notify', sa.DateTime(timezone=True), nullable=True),
    sa.Column('solution_due', sa.DateTime(timezone=True), nullable=True),
    sa.Column('solution_notify', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalation_next', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merged_into_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('number')
    )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_escalation_next'), ['escalation_next'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_queue'), ['queue'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_state'), ['state'], unique=False)

    op.create_table('inbound_mail',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('envelope_from', sa.String(length=998), nullable=True),
    sa.Column('envelope_to', sa.JSON(), nullable=False),
    sa.Column('trusted', sa.Boolean(), nullable=False),
    sa.Column('dispatch_queue', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('trace', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key')
    )
    with op.batch_alter_table('inbound_mail', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_mail_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_mail_status'), ['status'], unique=False)

    op.create_table('article',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('inbound_id', sa.Integer(), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('sender_type', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('internal', sa.Boolean(), nullable=False),
    sa.Column('from_addr', sa.Text(), nullable=False),
    sa.Column('to_addr', sa.Text(), nullable=False),
    sa.Column('cc_addr', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('in_reply_to', sa.Text(), nullable=True),
    sa.Column('references', sa.Text(), nullable=True),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound_mail.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('article', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_article_inbound_id'), ['inbound_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_article_message_id'), ['message_id'], unique=False)
        batch_op.create_index('ix_article_ticket_created', ['ticket_id', 'created'], unique=False)
        batch_op.create_index(batch_op.f('ix_article_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('article_attachment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('blob_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=200), nullable=False),
    sa.Column('content_id', sa.String(length=998), nullable=True),
    sa.Column('disposition', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['article.id'], ),
    sa.ForeignKeyConstraint(['blob_id'], ['blob.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('article_attachment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_article_attachment_article_id'), ['article_id'], unique=False)

    op.create_table('history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('type', sa.String(length=50), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['article.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_history_ticket_id'), ['ticket_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_history_ticket_id'))

    op.drop_table('history')
    with op.batch_alter_table('article_attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_article_attachment_article_id'))

    op.drop_table('article_attachment')
    with op.batch_alter_table('article', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_article_ticket_id'))
        batch_op.drop_index('ix_article_ticket_created')
        batch_op.drop_index(batch_op.f('ix_article_message_id'))
        batch_op.drop_index(batch_op.f('ix_article_inbound_id'))

    op.drop_table('article')
    with op.batch_alter_table('inbound_mail', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_mail_status'))
        batch_op.drop_index(batch_op.f('ix_inbound_mail_message_id'))

    op.drop_table('inbound_mail')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_state'))
        batch_op.drop_index(batch_op.f('ix_ticket_queue'))
        batch_op.drop_index(batch_op.f('ix_ticket_escalation_next'))

    op.drop_table('ticket')
    op.drop_table('counter')
    op.drop_table('blob')

