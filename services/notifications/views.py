"""Reads for operators, straight from the delivery log (no handler, no domain)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from . import store
from .messages import mask_email, redact


def deliveries(
    conn: Connection, donation_id: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest deliveries, optionally of one donation and/or in one status; addresses
    masked, since operators need to see what happened, not whom to."""
    table = store.deliveries
    query = select(
        table.c.id,
        table.c.kind,
        table.c.status,
        table.c.attempts,
        table.c.recipient,
        table.c.donation_id,
        table.c.campaign_id,
        table.c.created_at,
        table.c.sent_at,
        table.c.next_attempt_at,
        table.c.last_error,
    )
    if donation_id is not None:
        query = query.where(table.c.donation_id == donation_id)
    if status is not None:
        query = query.where(table.c.status == status)
    rows = conn.execute(query.order_by(table.c.created_at.desc(), table.c.id).limit(limit))
    return [
        {
            "id": row.id,
            "kind": row.kind,
            "status": row.status,
            "attempts": row.attempts,
            "recipient": mask_email(row.recipient),
            "donation_id": row.donation_id,
            "campaign_id": row.campaign_id,
            "created_at": store.as_utc(row.created_at),
            "sent_at": store.as_utc(row.sent_at),
            "next_attempt_at": (
                store.as_utc(row.next_attempt_at) if row.status == store.PENDING else None
            ),
            "last_error": redact(row.last_error) if row.last_error else None,
        }
        for row in rows
    ]
