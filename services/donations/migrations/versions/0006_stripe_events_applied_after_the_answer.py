"""stripe events applied after the answer: the webhook commits a received event and answers;
the worker's applier claims it (claimed_until), applies it once and settles it, with the
request's correlation id; on PostgreSQL committing one notifies the applier (LISTEN
difts_stripe_events)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:30:00

SQLite has no notification: there the applier polls (every 50 ms, an indexed read), and a
commit in the worker's own process wakes it at once (services/shared/wake.py).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from services.donations.store.webhooks import STRIPE_EVENTS_CHANNEL
from services.shared.wake import notify_on_insert


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CREATE, DROP = notify_on_insert('stripe_events', STRIPE_EVENTS_CHANNEL)


def upgrade() -> None:
    """The claim and correlation columns, the applier's index and, on PostgreSQL, the
    trigger."""
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('correlation_id', sa.String(length=64), nullable=True))
        batch_op.create_index(
            'ix_stripe_events_outcome_received_at', ['outcome', 'received_at'], unique=False
        )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(CREATE)


def downgrade() -> None:
    """Without them the webhook would have to apply events itself again."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(DROP)
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_index('ix_stripe_events_outcome_received_at')
        batch_op.drop_column('correlation_id')
        batch_op.drop_column('claimed_until')
