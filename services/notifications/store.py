"""The notifications database: the donor projection, the delivery log (which is also the email
outbox), and the processed-event ids of the idempotent consumer. Works on SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.shared.consumer import processed_events_table
from services.shared.db import is_postgres

# Named constraints let Alembic alter SQLite tables (batch mode) and PostgreSQL alike.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

PENDING, SENT, FAILED, SKIPPED = "pending", "sent", "failed", "skipped"
RECEIPT = "receipt"

donors = Table(
    "donors",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("campaign_id", String(200), nullable=False),
    # Lower-cased, so one person giving twice with different capitals is one donor.
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    Column("locale", String(35), nullable=False),
    Column("updates_opt_in", Boolean, nullable=False),
    Column("consent_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("campaign_id", "email"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("event_id", String(200), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("campaign_id", String(200), nullable=False),
    Column("donation_id", String(200), nullable=True),
    Column("subject", Text, nullable=False),
    Column("message_id", String(255), nullable=True),
    # The whole RFC 5322 message as it goes on the wire (ASCII: headers and bodies encoded);
    # empty for a delivery skipped before a message could be built.
    Column("message", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("status IN ('pending', 'sent', 'failed', 'skipped')", name="status"),
    UniqueConstraint("event_id", "recipient", "kind"),
    # One receipt per donation and recipient, even if a donation were announced twice.
    UniqueConstraint("kind", "donation_id", "recipient"),
    Index("ix_deliveries_donation_id", "donation_id"),
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)

processed = processed_events_table(metadata)


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands times back without a zone)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    return (postgresql if is_postgres(conn) else sqlite).insert(table)


# --- the donor projection -----------------------------------------------------------------


@dataclass(frozen=True)
class DonorFacts:
    """What a donation event tells us about its donor."""

    campaign_id: str
    email: str
    name: str
    locale: str
    updates_opt_in: bool
    given_at: datetime


def record_donor(conn: Connection, donor: DonorFacts) -> None:
    """Insert or refresh the donor of a campaign. Consent to updates, once given, is kept: a
    later gift without the box ticked does not withdraw it (unsubscribing does)."""
    now = datetime.now(UTC)
    consent_at = donor.given_at if donor.updates_opt_in else None
    statement = _insert(conn, donors).values(
        campaign_id=donor.campaign_id,
        email=donor.email.strip().lower(),
        name=donor.name,
        locale=donor.locale,
        updates_opt_in=donor.updates_opt_in,
        consent_at=consent_at,
        created_at=now,
        updated_at=now,
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["campaign_id", "email"],
            set_={
                "name": statement.excluded.name,
                "locale": statement.excluded.locale,
                "updates_opt_in": donors.c.updates_opt_in | statement.excluded.updates_opt_in,
                "consent_at": func.coalesce(donors.c.consent_at, statement.excluded.consent_at),
                "updated_at": statement.excluded.updated_at,
            },
        )
    )


# --- the delivery log and email outbox -----------------------------------------------------


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


def add_delivery(conn: Connection, delivery: NewDelivery, now: datetime) -> bool:
    """Queue an email in the caller's transaction; False if this event, recipient and kind (or
    this donation, recipient and kind) already has a delivery."""
    status = SKIPPED if delivery.skipped_because else PENDING
    inserted = conn.execute(
        _insert(conn, deliveries)
        .values(
            id=str(uuid.uuid4()),
            event_id=delivery.event_id,
            recipient=delivery.recipient,
            kind=delivery.kind,
            campaign_id=delivery.campaign_id,
            donation_id=delivery.donation_id,
            subject=delivery.subject,
            message_id=delivery.message_id,
            message=delivery.message,
            status=status,
            attempts=0,
            last_error=delivery.skipped_because,
            next_attempt_at=now if status == PENDING else None,
            created_at=now,
        )
        # Either unique constraint may be the one hit, so no conflict target; RETURNING tells
        # whether a row went in (an INSERT's rowcount is not reported by every driver).
        .on_conflict_do_nothing()
        .returning(deliveries.c.id)
    ).first()
    return inserted is not None


@dataclass(frozen=True)
class DueDelivery:
    """A pending email the sender has claimed."""

    id: str
    recipient: str
    message: str
    attempts: int


def claim_due(
    conn: Connection, now: datetime, limit: int, lease_until: datetime
) -> list[DueDelivery]:
    """Take up to `limit` pending deliveries that are due, and hide them from other senders
    until `lease_until`; the caller commits, sends, then records each outcome."""
    query = (
        select(deliveries.c.id, deliveries.c.recipient, deliveries.c.message, deliveries.c.attempts)
        .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if is_postgres(conn):
        # Concurrent senders each get different rows instead of waiting on each other.
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    if not rows:
        return []
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_([row.id for row in rows]))
        .values(next_attempt_at=lease_until)
    )
    return [DueDelivery(row.id, row.recipient, row.message or "", row.attempts) for row in rows]


def mark_sent(conn: Connection, delivery_id: str, now: datetime) -> None:
    """The relay accepted the message."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status == PENDING)
        .values(
            status=SENT,
            attempts=deliveries.c.attempts + 1,
            sent_at=now,
            next_attempt_at=None,
            last_error=None,
        )
    )


def mark_retry(conn: Connection, delivery_id: str, error: str, retry_at: datetime) -> None:
    """The attempt failed for now; try again at `retry_at`."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status == PENDING)
        .values(
            attempts=deliveries.c.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at
        )
    )


def mark_failed(conn: Connection, delivery_id: str, error: str) -> None:
    """The attempt failed for good (a permanent refusal, or too many attempts)."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status == PENDING)
        .values(
            status=FAILED,
            attempts=deliveries.c.attempts + 1,
            last_error=error[:2000],
            next_attempt_at=None,
        )
    )


def release(conn: Connection, delivery_ids: Sequence[str], at: datetime) -> None:
    """Hand claimed deliveries back, unattempted, to be picked up again from `at`."""
    if delivery_ids:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(list(delivery_ids)), deliveries.c.status == PENDING)
            .values(next_attempt_at=at)
        )
