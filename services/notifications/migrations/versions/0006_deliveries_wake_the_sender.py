"""deliveries wake the sender: on PostgreSQL, committing deliveries notifies the senders (LISTEN
difts_deliveries), so a receipt leaves when it is committed rather than at the next poll

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:30:00

Written by hand. SQLite has no notification: there the senders are woken by a commit in their
own process (the worker's consumer queues every delivery) and poll besides
(NOTIFICATIONS_SEND_POLL; services/shared/wake.py).
"""

from collections.abc import Sequence

from alembic import op

from services.notifications.store.tables import DELIVERIES_CHANNEL
from services.shared.wake import notify_on_insert

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATE, DROP = notify_on_insert("deliveries", DELIVERIES_CHANNEL)


def upgrade() -> None:
    """The trigger, on PostgreSQL."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade() -> None:
    """Without it the senders poll."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP)
