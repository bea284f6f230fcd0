"""What the service keeps of each company dift, on the unit of work's transaction: the facts
its invitation, reminder and confirmation state, and when its reminder is due."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from services.shared.db import as_utc, dialect_insert, is_postgres
from services.shared.money import Money

from ..domain import Dift, Recipient, ShortlistedCause
from .donors import address
from .tables import difts


def _shortlist(dift: Dift) -> str:
    return json.dumps(
        [
            {
                "campaign_id": c.campaign_id,
                "slug": c.slug,
                "title": c.title,
                "cause": c.cause,
                "meal_price": c.meal_price.amount,
            }
            for c in dift.shortlist
        ]
    )


def _dift(row: Any) -> Dift:
    currency = row.currency
    recipient = (
        Recipient(row.recipient_email, row.recipient_name or "", row.recipient_locale or "fr")
        if row.recipient_email
        else None
    )
    return Dift(
        dift_id=row.dift_id,
        programme_id=row.programme_id,
        brand_name=row.brand_name,
        value=Money(int(row.value), currency),
        expires_at=as_utc(row.expires_at),
        shortlist=tuple(
            ShortlistedCause(
                c["campaign_id"],
                c["slug"],
                c["title"],
                c["cause"],
                Money(int(c["meal_price"]), currency),
            )
            for c in json.loads(row.shortlist)
        ),
        recipient=recipient,
        redeem_url=row.redeem_url,
        reminder_due_at=as_utc(row.reminder_due_at) if row.reminder_due_at else None,
        settled=row.settled,
    )


class Difts:
    """The company difts this service heard of."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record(self, dift: Dift, now: datetime) -> bool:
        """Keep a dift issued; False if it was kept already (the first announcement stands)."""
        recipient = dift.recipient
        added = self.conn.execute(
            dialect_insert(self.conn, difts)
            .values(
                dift_id=dift.dift_id,
                programme_id=dift.programme_id,
                brand_name=dift.brand_name,
                value=dift.value.amount,
                currency=dift.value.currency,
                recipient_email=address(recipient.email) if recipient else None,
                recipient_name=recipient.name if recipient else None,
                recipient_locale=recipient.locale if recipient else None,
                redeem_url=dift.redeem_url,
                shortlist=_shortlist(dift),
                expires_at=dift.expires_at,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["dift_id"])
            .returning(difts.c.dift_id)
        ).first()
        return added is not None

    def get(self, dift_id: str) -> Dift | None:
        """A dift, if it was issued to this service's knowledge."""
        row = self.conn.execute(select(difts).where(difts.c.dift_id == dift_id)).first()
        return _dift(row) if row is not None else None

    def schedule_reminder(self, dift_id: str, due_at: datetime) -> None:
        """The dift's one reminder is due at `due_at` (unless it ends first)."""
        self.conn.execute(
            update(difts)
            .where(difts.c.dift_id == dift_id, difts.c.settled.is_(None))
            .values(reminder_due_at=due_at)
        )

    def settle(self, dift_id: str, how: str, at: datetime) -> bool:
        """The dift was directed or expired: no reminder any more, and its link is forgotten.
        False if it was settled already, or is unknown here."""
        changed = self.conn.execute(
            update(difts)
            .where(difts.c.dift_id == dift_id, difts.c.settled.is_(None))
            .values(settled=how, settled_at=at, reminder_due_at=None, redeem_url=None)
        ).rowcount
        return bool(changed)

    def with_reminder_due(self, now: datetime, limit: int = 200) -> list[Dift]:
        """Difts whose reminder is due, locked (other workers skip them) on PostgreSQL."""
        query = (
            select(difts)
            .where(difts.c.reminder_due_at <= now)
            .order_by(difts.c.reminder_due_at)
            .limit(limit)
        )
        if is_postgres(self.conn):
            query = query.with_for_update(skip_locked=True)
        return [_dift(row) for row in self.conn.execute(query)]

    def reminder_done(self, dift_id: str) -> None:
        """The reminder was queued (or skipped): nothing is due any more, and the link, which
        only a reminder could need, is forgotten."""
        self.conn.execute(
            update(difts)
            .where(difts.c.dift_id == dift_id)
            .values(reminder_due_at=None, redeem_url=None)
        )

    def erase(self, email: str) -> int:
        """Forget the recipient of every dift sent to an address (a GDPR erasure): no
        reminder or confirmation can reach them any more. Returns how many difts."""
        forgotten = self.conn.execute(
            update(difts)
            .where(difts.c.recipient_email == address(email))
            .values(
                recipient_email=None,
                recipient_name=None,
                recipient_locale=None,
                redeem_url=None,
                reminder_due_at=None,
            )
        ).rowcount
        return int(forgotten or 0)
