"""Every Stripe event the webhook accepted, by Stripe's id: its deduplication and audit trail,
the events received and not applied yet (the worker's applier claims them), and the events
kept for later (waiting for what they follow, or unreadable, for a person)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Insert, bindparam, func, or_, select, update
from sqlalchemy.dialects import sqlite

from services.shared.db import as_utc, dialect_insert, insert_if_absent, is_postgres

from .tables import stripe_events

UNREADABLE = "unreadable"
# Committed by the webhook before it answers; the worker's applier applies it once.
RECEIVED = "received"
# Committing a received event notifies this channel on PostgreSQL (migration 0006), which
# wakes the applier of the worker (services/shared/wake.py).
STRIPE_EVENTS_CHANNEL = "difts_stripe_events"


@dataclass(frozen=True)
class KeptEvent:
    """A Stripe event kept to be applied later: its body, and what it waits for."""

    id: str
    payload: str
    waiting_for: str | None


@dataclass(frozen=True)
class ReceivedEvent:
    """A verified Stripe event recorded by the webhook, to be applied by the worker."""

    id: str
    payload: str
    received_at: datetime
    correlation_id: str | None = None


# The webhook's one statement, built once per dialect: building it per request costs more
# than running it.
_RECEIVE: dict[str, Insert] = {}
_RECEIVED_COLUMNS = ("id", "type", "outcome", "received_at", "payload", "correlation_id")


def _receive_statement(conn: Connection) -> Insert:
    statement = _RECEIVE.get(conn.dialect.name)
    if statement is None:
        statement = _RECEIVE[conn.dialect.name] = (
            dialect_insert(conn, stripe_events)
            .values({name: bindparam(name) for name in _RECEIVED_COLUMNS})
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(stripe_events.c.id)
        )
    return statement


class SqliteReceiver:
    """The webhook's insert on SQLite straight through the driver (sqlite3), for the recorder:
    the same statement compiled once from the table, the date bound as SQLAlchemy binds it.
    On the webhook's path SQLAlchemy's connection and transaction machinery cost more than
    SQLite's own work."""

    def __init__(self, engine: Engine) -> None:
        statement = (
            sqlite.insert(stripe_events)
            .values({name: bindparam(name) for name in _RECEIVED_COLUMNS})
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(stripe_events.c.id)
        )
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = compiled.string
        self.order = list(compiled.positiontup or ())
        moment = stripe_events.c.received_at.type.dialect_impl(engine.dialect)
        self.bind_moment = moment.bind_processor(engine.dialect)

    def receive(self, cursor: Any, rows: list[dict[str, Any]]) -> list[bool]:
        """Insert each row unless its id is there (in the cursor's open transaction); for each,
        whether it was inserted."""
        inserted = []
        for row in rows:
            values = dict(row)
            if self.bind_moment is not None:
                values["received_at"] = self.bind_moment(values["received_at"])
            cursor.execute(self.sql, [values[name] for name in self.order])
            inserted.append(cursor.fetchone() is not None)
        return inserted


def received_row(
    event_id: str, event_type: str, payload: str, when: datetime, correlation_id: str | None
) -> dict[str, Any]:
    """The stripe_events row of an event the webhook received."""
    return {
        "id": event_id,
        "type": event_type,
        "outcome": RECEIVED,
        "received_at": when,
        "payload": payload,
        "correlation_id": correlation_id,
    }


def _kept(row: Any) -> KeptEvent:
    return KeptEvent(row.id, row.payload, row.waiting_for)


def _received(row: Any) -> ReceivedEvent:
    return ReceivedEvent(row.id, row.payload or "", as_utc(row.received_at), row.correlation_id)


class StripeEvents:
    """The Stripe events received, what became of each, and those kept."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record(self, event_id: str, event_type: str, when: datetime) -> bool:
        """Remember a Stripe event id; False if it was seen before (a webhook retry)."""
        row = {"id": event_id, "type": event_type, "outcome": "received", "received_at": when}
        return insert_if_absent(self.conn, stripe_events, row, key="id")

    def receive(
        self,
        event_id: str,
        event_type: str,
        payload: str,
        when: datetime,
        correlation_id: str | None = None,
    ) -> bool:
        """Remember a verified Stripe event with its body, to be applied after the webhook
        answered; False if it was seen before (a webhook retry). One statement (as
        db.insert_if_absent's, prepared once)."""
        row = received_row(event_id, event_type, payload, when, correlation_id)
        return self.conn.execute(_receive_statement(self.conn), row).first() is not None

    def record_unreadable(
        self, event_id: str, event_type: str, payload: str, problem: str, when: datetime
    ) -> bool:
        """Remember a signed body that cannot be read as kept for a person, with what is
        wrong; False if it was seen before. One statement."""
        row = {
            "id": event_id,
            "type": event_type,
            "outcome": UNREADABLE,
            "received_at": when,
            "payload": payload,
            "problem": problem[:2000],
        }
        return insert_if_absent(self.conn, stripe_events, row, key="id")

    def claim_received(self, now: datetime, until: datetime, limit: int) -> list[ReceivedEvent]:
        """Claim up to `limit` received events no other applier holds (or whose claim ran
        out: that applier died), oldest first, until `until`. One statement; on PostgreSQL
        rows another applier is claiming are skipped, so concurrent appliers claim apart."""
        claimable = (
            select(stripe_events.c.id)
            .where(
                stripe_events.c.outcome == RECEIVED,
                or_(stripe_events.c.claimed_until.is_(None), stripe_events.c.claimed_until < now),
            )
            .order_by(stripe_events.c.received_at)
            .limit(limit)
        )
        if is_postgres(self.conn):
            claimable = claimable.with_for_update(skip_locked=True)
        rows = self.conn.execute(
            update(stripe_events)
            .where(stripe_events.c.id.in_(claimable), stripe_events.c.outcome == RECEIVED)
            .values(claimed_until=until)
            .returning(
                stripe_events.c.id,
                stripe_events.c.payload,
                stripe_events.c.received_at,
                stripe_events.c.correlation_id,
            )
        ).all()
        return sorted((_received(row) for row in rows), key=lambda event: event.received_at)

    def unapplied(self) -> tuple[int, datetime | None]:
        """How many received events wait to be applied, and when the oldest came (metrics)."""
        count, oldest = self.conn.execute(
            select(func.count(), func.min(stripe_events.c.received_at)).where(
                stripe_events.c.outcome == RECEIVED
            )
        ).one()
        return int(count), as_utc(oldest) if oldest is not None else None

    def any_claimable(self, now: datetime) -> bool:
        """Whether a received event waits for an applier (a read: the applier's poll)."""
        return (
            self.conn.execute(
                select(stripe_events.c.id)
                .where(
                    stripe_events.c.outcome == RECEIVED,
                    or_(
                        stripe_events.c.claimed_until.is_(None),
                        stripe_events.c.claimed_until < now,
                    ),
                )
                .limit(1)
            ).first()
            is not None
        )

    def lock_received(self, event_id: str) -> ReceivedEvent | None:
        """A received event, locked for applying it, unless it was applied meanwhile (or
        another applier is applying it now)."""
        row = self.conn.execute(
            select(stripe_events)
            .where(stripe_events.c.id == event_id, stripe_events.c.outcome == RECEIVED)
            .with_for_update(skip_locked=True)
        ).first()
        return _received(row) if row is not None else None

    def release(self, event_id: str, until: datetime) -> None:
        """Leave a received event unapplied until `until` (what it needs cannot be had now)."""
        self.conn.execute(
            update(stripe_events)
            .where(stripe_events.c.id == event_id, stripe_events.c.outcome == RECEIVED)
            .values(claimed_until=until)
        )

    def settle(
        self, event_id: str, outcome: str, donation_id: str | None, kept: KeptEvent | None = None
    ) -> None:
        """Say what became of a Stripe event (and keep its body, and what it waits for, if it
        must wait)."""
        waits = {"payload": kept.payload, "waiting_for": kept.waiting_for} if kept else {}
        self.conn.execute(
            update(stripe_events)
            .where(stripe_events.c.id == event_id)
            .values(
                outcome=outcome,
                donation_id=donation_id,
                payload=None,
                waiting_for=None,
                claimed_until=None,
            )
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
                claimed_until=None,
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
