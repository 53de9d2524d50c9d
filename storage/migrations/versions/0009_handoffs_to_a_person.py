"""handoffs to a person (waiting, active, closed) replace the unread tickets

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 02:20:00
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
import storage.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# Tickets were promised an answer "in this chat": the newest open one of a chat keeps waiting.
REASONS = {'handoff': 'customer_asked', 'compensation': 'compensation'}


def upgrade() -> None:
    op.create_table('handoffs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('chat_key', sa.String(length=64), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('opened_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claim_deadline', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('timeout_told_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('callback_requested_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('waiting_told_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_customer_message_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('claimed_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=100), nullable=True),
    sa.Column('closed_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('close_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_handoffs_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoffs'))
    )
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.create_index('ix_handoffs_claim_deadline', ['claim_deadline'], unique=False)
        batch_op.create_index(batch_op.f('ix_handoffs_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_handoffs_status_language_opened_at', ['status', 'language', 'opened_at'], unique=False)
        batch_op.create_index('uq_handoffs_open_chat', ['chat_key'], unique=True,
                              sqlite_where=sa.text("status != 'closed'"),
                              postgresql_where=sa.text("status != 'closed'"))

    op.create_table('handoff_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('handoff_id', sa.Integer(), nullable=False),
    sa.Column('sender', sa.String(length=16), nullable=False),
    sa.Column('agent', sa.String(length=100), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('intent', sa.String(length=40), nullable=True),
    sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['handoff_id'], ['handoffs.id'], name=op.f('fk_handoff_messages_handoff_id_handoffs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_messages'))
    )
    with op.batch_alter_table('handoff_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoff_messages_handoff_id'), ['handoff_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lease_until', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failed_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_due', ['delivered_at', 'next_attempt_at'], unique=False)

    op.create_table('agents',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_agents'))
    )

    _tickets_to_handoffs()

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_order_id'))
    op.drop_table('tickets')


def _tickets_to_handoffs() -> None:
    """Each ticket becomes a handoff with its transcript; a chat keeps one open at most."""
    bind = op.get_bind()
    tickets = bind.execute(sa.text(
        "SELECT t.id, t.order_id, t.kind, t.transcript, t.status, t.created_at, "
        "c.language AS customer_language FROM tickets t "
        "LEFT JOIN orders o ON o.id = t.order_id "
        "LEFT JOIN customers c ON c.id = o.customer_id ORDER BY t.id DESC")).mappings().all()
    handoffs = sa.table('handoffs', *(sa.column(n) for n in (
        'id', 'order_id', 'chat_key', 'language', 'status', 'reason', 'opened_at', 'closed_at',
        'closed_by', 'close_note')))
    messages = sa.table('handoff_messages', *(sa.column(n) for n in (
        'handoff_id', 'sender', 'text', 'at')))
    now = datetime.now(UTC)
    chats_with_open: set[str] = set()
    for ticket in tickets:
        chat = bind.execute(sa.text(
            "SELECT chat_key, language FROM chats WHERE order_id = :order ORDER BY id DESC"),
            {"order": ticket["order_id"]}).first() if ticket["order_id"] is not None else None
        chat_key = chat[0] if chat else None
        opened = _aware(ticket["created_at"]) or now
        still_open = ticket["status"] == "open" and chat_key not in chats_with_open
        if still_open and chat_key is not None:
            chats_with_open.add(chat_key)
        result = bind.execute(handoffs.insert().values(
            order_id=ticket["order_id"], chat_key=chat_key,
            language=(chat[1] if chat and chat[1] else None) or ticket["customer_language"] or 'de',
            status='waiting' if still_open else 'closed',
            reason=REASONS.get(ticket["kind"], 'migrated'), opened_at=opened,
            closed_at=None if still_open else now,
            closed_by=None if still_open else 'migration',
            close_note=None if still_open else 'an older ticket of the same chat, or closed before'
        ).returning(handoffs.c.id))
        handoff_id = result.scalar_one()
        for line in (ticket["transcript"] or "").splitlines():
            who, _, text = line.partition(": ")
            if text:
                bind.execute(messages.insert().values(
                    handoff_id=handoff_id, sender=who if who in ('customer', 'bot') else 'bot',
                    text=text, at=opened))


def _aware(value: object) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def downgrade() -> None:
    op.create_table('tickets',
    sa.Column('id', sa.INTEGER(), nullable=False),
    sa.Column('order_id', sa.INTEGER(), nullable=True),
    sa.Column('kind', sa.VARCHAR(length=16), nullable=False),
    sa.Column('transcript', sa.TEXT(), nullable=False),
    sa.Column('status', sa.VARCHAR(length=16), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_tickets_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_order_id'), ['order_id'], unique=False)
    bind = op.get_bind()
    for row in bind.execute(sa.text(
            "SELECT id, order_id, reason, status, opened_at FROM handoffs ORDER BY id")).mappings():
        lines = bind.execute(sa.text(
            "SELECT sender, text FROM handoff_messages WHERE handoff_id = :id ORDER BY id"),
            {"id": row["id"]}).all()
        bind.execute(sa.text(
            "INSERT INTO tickets (order_id, kind, transcript, status, created_at) "
            "VALUES (:order, :kind, :transcript, :status, :at)"),
            {"order": row["order_id"],
             "kind": 'compensation' if row["reason"] == 'compensation' else 'handoff',
             "transcript": "\n".join(f"{s}: {t}" for s, t in lines),
             "status": 'open' if row["status"] != 'closed' else 'closed',
             "at": row["opened_at"]})
    op.drop_table('agents')
    op.drop_table('webhook_deliveries')
    op.drop_table('handoff_messages')
    op.drop_table('handoffs')
