"""Reads for operators, straight from the delivery log (no handler, no domain)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select

from services.shared.db import as_utc

from . import store
from .messages import mask_email, redact


@dataclass(frozen=True)
class DeliveryFilter:
    """What an operator searches the delivery log by; None matches everything."""

    donor: str | None = None
    donor_ref: str | None = None
    campaign_id: str | None = None
    post_id: str | None = None
    donation_id: str | None = None
    kind: str | None = None
    status: str | None = None


def _utc(moment: datetime | None) -> datetime | None:
    return as_utc(moment) if moment is not None else None


def _row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "attempts": row.attempts,
        "recipient": (
            "(erased)" if row.recipient.startswith("erased:") else mask_email(row.recipient)
        ),
        "donation_id": row.donation_id,
        "campaign_id": row.campaign_id,
        "post_id": row.post_id,
        "milestone": row.milestone,
        "subject": row.subject,
        "created_at": _utc(row.created_at),
        "sent_at": _utc(row.sent_at),
        "next_attempt_at": _utc(row.next_attempt_at) if row.status == store.PENDING else None,
        "last_error": redact(row.last_error) if row.last_error else None,
    }


def deliveries(
    conn: Connection,
    donation_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    where: DeliveryFilter | None = None,
) -> list[dict[str, Any]]:
    """The newest deliveries matching every filter given; addresses masked, since operators
    need to see what happened, not whom to."""
    where = where or DeliveryFilter(donation_id=donation_id, status=status)
    table = store.deliveries
    query = select(table)
    if where.donor is not None:
        mine = func.lower(table.c.recipient) == where.donor.strip().lower()
        if where.donor_ref is not None:
            mine = or_(mine, table.c.recipient_ref == where.donor_ref)
        query = query.where(mine)
    for column, value in (
        (table.c.campaign_id, where.campaign_id),
        (table.c.post_id, where.post_id),
        (table.c.donation_id, where.donation_id),
        (table.c.kind, where.kind),
        (table.c.status, where.status),
    ):
        if value is not None:
            query = query.where(column == value)
    rows = conn.execute(query.order_by(table.c.created_at.desc(), table.c.id).limit(limit))
    return [_row(row) for row in rows]


def delivery(conn: Connection, delivery_id: str) -> dict[str, Any] | None:
    """One delivery, or None."""
    row = conn.execute(select(store.deliveries).where(store.deliveries.c.id == delivery_id)).first()
    return _row(row) if row else None


def post_counts(conn: Connection, post_id: str) -> dict[str, Any]:
    """How many of a news post's emails were sent, failed, skipped, or are still pending."""
    table = store.deliveries
    counts = {status: 0 for status in store.STATUSES}
    rows = conn.execute(
        select(table.c.status, func.count())
        .where(table.c.kind == store.NEWS, table.c.post_id == post_id)
        .group_by(table.c.status)
    )
    for status, count in rows:
        counts[status] = int(count)
    return {"post_id": post_id, **counts}
