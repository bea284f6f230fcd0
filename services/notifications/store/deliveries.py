"""The delivery log, on the unit of work's transaction: every email decided, and every
attempt to send it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, null, or_, select, update

from services.shared.db import as_utc, dialect_insert, is_postgres

from ..domain import BY_CONSENT
from .donors import address
from .tables import BOUNCED, FAILED, PENDING, RECEIPT, SENT, SKIPPED, deliveries

# --- the delivery log -----------------------------------------------------------------------

# The sender records each outcome in its own short transaction, up to hundreds a second:
# these statements are built once, so SQLAlchemy finds them compiled in its cache.
_STILL_PENDING = (deliveries.c.id == bindparam("delivery_id"), deliveries.c.status == PENDING)
_MARK_SENT = (
    update(deliveries)
    .where(*_STILL_PENDING)
    .values(
        status=SENT,
        last_error=None,
        next_attempt_at=None,
        attempts=deliveries.c.attempts + 1,
        sent_at=bindparam("sent_at"),
    )
)
_MARK_RETRY = (
    update(deliveries)
    .where(*_STILL_PENDING)
    .values(
        attempts=deliveries.c.attempts + 1,
        last_error=bindparam("error"),
        next_attempt_at=bindparam("retry_at"),
    )
)
_MARK_FAILED = (
    update(deliveries)
    .where(*_STILL_PENDING)
    .values(
        status=FAILED,
        last_error=bindparam("error"),
        next_attempt_at=None,
        attempts=deliveries.c.attempts + 1,
    )
)
_MARK_BOUNCED = (
    update(deliveries)
    .where(*_STILL_PENDING)
    .values(
        status=BOUNCED,
        last_error=bindparam("error"),
        next_attempt_at=None,
        attempts=deliveries.c.attempts + 1,
    )
)
_MARK_SKIPPED = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("delivery_ids", expanding=True)))
    .where(deliveries.c.status == PENDING)
    .values(status=SKIPPED, last_error=bindparam("reason"), next_attempt_at=None)
)


@dataclass(frozen=True)
class NewDelivery:
    """One email the service has decided to send (or to skip, with the reason)."""

    event_id: str
    recipient: str
    kind: str
    campaign_id: str
    donation_id: str | None
    subject: str
    message_id: str | None
    message: str | None
    skipped_because: str | None = None
    recipient_ref: str | None = None
    post_id: str | None = None
    milestone: str | None = None
    dift_id: str | None = None
    programme_id: str | None = None
    not_after: datetime | None = None


@dataclass(frozen=True)
class DueDelivery:
    """A pending email the sender has claimed: to whom, what, and (a dift's) which dift and
    programme, and the moment after which it must not go."""

    id: str
    recipient: str
    message: str
    attempts: int
    kind: str = RECEIPT
    campaign_id: str = ""
    dift_id: str | None = None
    programme_id: str | None = None
    not_after: datetime | None = None


class Deliveries:
    """The delivery log: every email decided, and every attempt to send it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, delivery: NewDelivery, now: datetime) -> bool:
        """Queue an email (or log it skipped); False if this event, recipient and kind (or
        this donation's receipt, this news post or this milestone to this recipient, or this
        kind of email of this dift) already has a delivery."""
        columns = asdict(delivery)
        skipped_because = columns.pop("skipped_because")
        status = SKIPPED if skipped_because else PENDING
        inserted = self.conn.execute(
            dialect_insert(self.conn, deliveries)
            .values(
                **columns,
                id=str(uuid.uuid4()),
                status=status,
                attempts=0,
                last_error=skipped_because,
                next_attempt_at=now if status == PENDING else None,
                created_at=now,
            )
            # Any unique index may be the one hit, so no conflict target; RETURNING tells
            # whether a row went in (an INSERT's rowcount is not reported by every driver).
            .on_conflict_do_nothing()
            .returning(deliveries.c.id)
        ).first()
        return inserted is not None

    def get(self, delivery_id: str) -> Any | None:
        """One delivery's row, if it exists."""
        return self.conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()

    def claim_due(
        self,
        now: datetime,
        limit: int,
        lease_until: datetime,
        kinds: Sequence[str] | None = None,
    ) -> list[DueDelivery]:
        """Take up to `limit` pending deliveries that are due (of these `kinds`, or of any),
        and hide them from other senders until `lease_until`; the caller commits, sends, then
        records each outcome."""
        query = (
            select(
                deliveries.c.id,
                deliveries.c.recipient,
                deliveries.c.message,
                deliveries.c.attempts,
                deliveries.c.kind,
                deliveries.c.campaign_id,
                deliveries.c.dift_id,
                deliveries.c.programme_id,
                deliveries.c.not_after,
            )
            .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit)
        )
        if kinds is not None:
            query = query.where(deliveries.c.kind.in_(list(kinds)))
        if is_postgres(self.conn):
            # Concurrent senders each get different rows instead of waiting on each other.
            query = query.with_for_update(skip_locked=True)
        rows = self.conn.execute(query).all()
        if rows:
            self.conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_([row.id for row in rows]))
                .values(next_attempt_at=lease_until)
            )
        return [
            DueDelivery(
                r.id,
                r.recipient,
                r.message or "",
                r.attempts,
                r.kind,
                r.campaign_id,
                r.dift_id,
                r.programme_id,
                as_utc(r.not_after) if r.not_after is not None else None,
            )
            for r in rows
        ]

    def mark_sent(self, delivery_id: str, now: datetime) -> bool:
        """The relay accepted the message; False if the delivery was no longer pending."""
        done = self.conn.execute(_MARK_SENT, {"delivery_id": delivery_id, "sent_at": now})
        return bool(done.rowcount)

    def mark_bounced(self, delivery_id: str, error: str) -> bool:
        """The recipient's server refused the message for good (a dift's invitation or
        reminder); False if the delivery was no longer pending."""
        done = self.conn.execute(_MARK_BOUNCED, {"delivery_id": delivery_id, "error": error[:2000]})
        return bool(done.rowcount)

    def mark_retry(self, delivery_id: str, error: str, retry_at: datetime) -> None:
        """The attempt failed for now; try again at `retry_at`."""
        self.conn.execute(
            _MARK_RETRY, {"delivery_id": delivery_id, "error": error[:2000], "retry_at": retry_at}
        )

    def mark_failed(self, delivery_id: str, error: str) -> None:
        """The attempt failed for good (a permanent refusal, or too many attempts)."""
        self.conn.execute(_MARK_FAILED, {"delivery_id": delivery_id, "error": error[:2000]})

    def mark_skipped(self, delivery_id: str, reason: str) -> None:
        """Not sent, on purpose (the donor unsubscribed after it was queued)."""
        self.mark_all_skipped([delivery_id], reason)

    def mark_all_skipped(self, delivery_ids: Sequence[str], reason: str) -> None:
        """Not sent, on purpose, in one statement (a batch's donors who unsubscribed)."""
        if delivery_ids:
            self.conn.execute(_MARK_SKIPPED, {"delivery_ids": list(delivery_ids), "reason": reason})

    def release(self, delivery_ids: Sequence[str], at: datetime) -> None:
        """Hand claimed deliveries back, unattempted, to be picked up again from `at`."""
        if delivery_ids:
            self.conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(list(delivery_ids)), deliveries.c.status == PENDING)
                .values(next_attempt_at=at)
            )

    def requeue(self, delivery_id: str, now: datetime) -> None:
        """Make a delivery pending again, due now (an operator's resend)."""
        self.conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(status=PENDING, next_attempt_at=now, last_error=None, sent_at=None)
        )

    def skip_pending(self, email_ref: str, campaign_id: str | None, reason: str) -> int:
        """Skip the pending news and impact emails of a donor (of one campaign, or all)."""
        query = update(deliveries).where(
            deliveries.c.recipient_ref == email_ref,
            deliveries.c.status == PENDING,
            deliveries.c.kind.in_(BY_CONSENT),
        )
        if campaign_id is not None:
            query = query.where(deliveries.c.campaign_id == campaign_id)
        skipped = self.conn.execute(
            query.values(status=SKIPPED, last_error=reason, next_attempt_at=None)
        ).rowcount
        return int(skipped or 0)

    def skip_pending_of_dift(self, dift_id: str, kinds: Sequence[str], reason: str) -> int:
        """Skip a dift's emails of these kinds still pending (it was directed, or expired)."""
        skipped = self.conn.execute(
            update(deliveries)
            .where(
                deliveries.c.dift_id == dift_id,
                deliveries.c.status == PENDING,
                deliveries.c.kind.in_(list(kinds)),
            )
            .values(status=SKIPPED, last_error=reason, next_attempt_at=None)
        ).rowcount
        return int(skipped or 0)

    def status_of_dift(self, dift_id: str, kind: str) -> str | None:
        """The status of a dift's email of one kind, if it has one."""
        row = self.conn.execute(
            select(deliveries.c.status).where(
                deliveries.c.dift_id == dift_id, deliveries.c.kind == kind
            )
        ).first()
        return str(row.status) if row is not None else None

    def status_of(self, event_id: str, recipient: str, kind: str) -> str | None:
        """The status of one event's email to one recipient, if there is one."""
        row = self.conn.execute(
            select(deliveries.c.status).where(
                deliveries.c.event_id == event_id,
                deliveries.c.recipient == recipient,
                deliveries.c.kind == kind,
            )
        ).first()
        return str(row.status) if row is not None else None

    def receipt_recipient(self, donation_id: str) -> str | None:
        """The address a donation's receipt went to (None if none, or erased since)."""
        row = self.conn.execute(
            select(deliveries.c.recipient).where(
                deliveries.c.donation_id == donation_id, deliveries.c.kind == RECEIPT
            )
        ).first()
        if row is None or row.recipient.startswith("erased:"):
            return None
        return str(row.recipient)

    def pseudonymise(self, email: str, email_ref: str) -> tuple[int, int]:
        """An erasure: a donor's deliveries keep only the pseudonym, with no message, and the
        pending ones are cancelled. Returns (pseudonymised, cancelled)."""
        mine = or_(
            func.lower(deliveries.c.recipient) == address(email),
            deliveries.c.recipient_ref == email_ref,
        )
        cancelled = self.conn.execute(
            update(deliveries)
            .where(mine, deliveries.c.status == PENDING)
            .values(status=SKIPPED, last_error="erased on request", next_attempt_at=None)
        ).rowcount
        ids = [row.id for row in self.conn.execute(select(deliveries.c.id).where(mine))]
        for delivery_id in ids:
            self.conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                # The id keeps the unique (event, recipient, kind) key distinct per row.
                .values(
                    recipient=f"erased:{delivery_id}",
                    recipient_ref=email_ref,
                    message=None,
                    last_error=case((deliveries.c.last_error.is_(None), null()), else_="(erased)"),
                )
            )
        return len(ids), int(cancelled or 0)
