"""a waitlist for earlier windows, and places held for its offers

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 02:55:00
"""
from alembic import op
import sqlalchemy as sa
import storage.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('capacity_slots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held', sa.Integer(), nullable=False, server_default='0'))
    op.create_table('waitlist_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('before', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('part', sa.String(length=16), nullable=True),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('queued_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_waitlist_entries_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entries'))
    )
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.create_index('ix_waitlist_entries_status_queued_at', ['status', 'queued_at'], unique=False)
        batch_op.create_index('uq_waitlist_entries_open_order', ['order_id'], unique=True,
                              sqlite_where=sa.text("status IN ('waiting', 'offered')"),
                              postgresql_where=sa.text("status IN ('waiting', 'offered')"))
    op.create_table('waitlist_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('offered_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['waitlist_entries.id'], name=op.f('fk_waitlist_offers_entry_id_waitlist_entries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['slot_id'], ['capacity_slots.id'], name=op.f('fk_waitlist_offers_slot_id_capacity_slots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_offers'))
    )
    with op.batch_alter_table('waitlist_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_offers_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index('ix_waitlist_offers_status_expires_at', ['status', 'expires_at'], unique=False)


def downgrade() -> None:
    op.drop_table('waitlist_offers')
    op.drop_table('waitlist_entries')
    with op.batch_alter_table('capacity_slots', schema=None) as batch_op:
        batch_op.drop_column('held')
