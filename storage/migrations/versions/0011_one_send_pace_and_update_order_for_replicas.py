"""one send pace and one update order for every replica

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 05:30:00
"""
from alembic import op
import sqlalchemy as sa
import storage.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('send_pace',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('next_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_send_pace'))
    )
    op.create_table('chat_updates',
    sa.Column('chat_key', sa.String(length=64), nullable=False),
    sa.Column('update_id', sa.BigInteger(), nullable=False),
    sa.Column('received_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('chat_key', 'update_id', name=op.f('pk_chat_updates'))
    )
    with op.batch_alter_table('chat_updates', schema=None) as batch_op:
        batch_op.create_index('ix_chat_updates_received_at', ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_table('chat_updates')
    op.drop_table('send_pace')
