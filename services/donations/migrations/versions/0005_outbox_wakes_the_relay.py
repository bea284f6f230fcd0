"""outbox wakes the relay: on PostgreSQL, committing outbox rows notifies the relay (LISTEN
difts_outbox), so events leave when they are committed rather than at the next poll

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:00:00

SQLite has no notification: there the relay polls (every 50 ms), and a commit in the
relay's own process wakes it at once (services/shared/wake.py).
"""
from typing import Sequence, Union

from alembic import op

from services.shared.outbox import OUTBOX_CHANNEL
from services.shared.wake import notify_on_insert


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CREATE, DROP = notify_on_insert('outbox', OUTBOX_CHANNEL)


def upgrade() -> None:
    """The trigger, on PostgreSQL."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(CREATE)


def downgrade() -> None:
    """Without it the relay polls."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(DROP)
