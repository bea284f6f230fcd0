"""Every Stripe event the webhook accepted, by Stripe's id: its deduplication and audit trail,
and the events kept for later (waiting for what they follow, or unreadable, for a person)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from services.shared.db import insert_if_absent

from .tables import stripe_events

UNREADABLE = "unreadable"


@dataclass(frozen=True)
class KeptEvent:
    """A Stripe event kept to be applied later: its body, and what it waits for."""

    id: str
    payload: str
    waiting_for: str | None


def _kept(row: Any) -> KeptEvent:
    return KeptEvent(row.id, row.payload, row.waiting_for)


class StripeEvents:
    """The Stripe events received, what became of each, and those kept."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record(self, event_id: str, event_type: str, when: datetime) -> bool:
        """Remember a Stripe event id; False if it was seen before (a webhook retry)."""
        row = {"id": event_id, "type": event_type, "outcome": "received", "received_at": when}
        return insert_if_absent(self.conn, stripe_events, row, key="id")

    def settle(
        self, event_id: str, outcome: str, donation_id: str | None, kept: KeptEvent | None = None
    ) -> None:
        """Say what became of a Stripe event (and keep its body, and what it waits for, if it
        must wait)."""
        waits = {"payload": kept.payload, "waiting_for": kept.waiting_for} if kept else {}
        self.conn.execute(
            update(stripe_events)
            .where(stripe_events.c.id == event_id)
            .values(outcome=outcome, donation_id=donation_id, payload=None, waiting_for=None)
            .values(**waits)
        )

    def keep_unreadable(self, event_id: str, payload: str, problem: str) -> None:
        """Keep a signed event that cannot be applied, with what is wrong, for a person."""
        self.conn.execute(
            update(stripe_events)
            .where(stripe_events.c.id == event_id)
            .values(
                outcome=UNREADABLE,
                donation_id=None,
                payload=payload,
                waiting_for=None,
                problem=problem[:2000],
            )
        )

    def waiting_for(self, keys: list[str], outcomes: tuple[str, ...]) -> list[KeptEvent]:
        """The events kept (with one of `outcomes`) until one of `keys` is known, oldest
        first."""
        wanted = [key for key in keys if key]
        if not wanted:
            return []
        rows = self.conn.execute(
            select(stripe_events)
            .where(stripe_events.c.outcome.in_(outcomes), stripe_events.c.waiting_for.in_(wanted))
            .order_by(stripe_events.c.received_at)
        )
        return [_kept(row) for row in rows]

    def kept_ids(self, outcomes: tuple[str, ...], limit: int) -> list[str]:
        """The events kept to be applied later, oldest first."""
        return list(
            self.conn.execute(
                select(stripe_events.c.id)
                .where(stripe_events.c.outcome.in_(outcomes))
                .order_by(stripe_events.c.received_at)
                .limit(limit)
            ).scalars()
        )

    def lock_kept(self, event_id: str, outcomes: tuple[str, ...]) -> KeptEvent | None:
        """A kept event, locked, unless another worker holds it or it was applied meanwhile."""
        row = self.conn.execute(
            select(stripe_events)
            .where(stripe_events.c.id == event_id, stripe_events.c.outcome.in_(outcomes))
            .with_for_update(skip_locked=True)
        ).first()
        return _kept(row) if row is not None else None
