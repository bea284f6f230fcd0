"""The notifications database: the donor projection, the delivery log (which is also the email
outbox), and the processed-event ids of the idempotent consumer. Works on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    case,
    func,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.shared.consumer import processed_events_table
from services.shared.db import is_postgres, service_metadata

from .domain import ImpactState, Reached

metadata = service_metadata()

PENDING, SENT, FAILED, SKIPPED = "pending", "sent", "failed", "skipped"
STATUSES = (PENDING, SENT, FAILED, SKIPPED)
# Transactional emails go to every donor; news and impact emails only to those who asked.
RECEIPT, REFUND, NEWS, IMPACT = "receipt", "refund", "news", "impact"
KINDS = (RECEIPT, REFUND, NEWS, IMPACT)
BY_CONSENT = (NEWS, IMPACT)
# Where a donor's consent to news came from.
CONSENT_AT_CHECKOUT = "checkout"

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
    # 0002: where consent came from, when the donor unsubscribed from this campaign, and the
    # pseudonym of the address that unsubscribe links and erasure requests name.
    Column("consent_source", String(32), nullable=True),
    Column("unsubscribed_at", DateTime(timezone=True), nullable=True),
    Column("email_ref", String(64), nullable=True),
    # 0004: the impact budget (domain.ImpactState): the count the donor's last impact email
    # stated and when it was queued, the milestone held for the next one (JSON), when it is due.
    Column("impact_told_meals", Integer, nullable=False, server_default="0"),
    Column("impact_last_at", DateTime(timezone=True), nullable=True),
    Column("impact_held", Text, nullable=True),
    Column("impact_due_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("campaign_id", "email"),
    Index("ix_donors_email_ref", "email_ref"),
    Index("ix_donors_impact_due_at", "impact_due_at"),
)

# A donor who unsubscribed from every campaign, by pseudonym only: kept after an erasure, so
# the address stays suppressed until a new gift with consent.
unsubscribed_everywhere = Table(
    "unsubscribed_everywhere",
    metadata,
    Column("email_ref", String(64), primary_key=True),
    Column("unsubscribed_at", DateTime(timezone=True), nullable=False),
)

# What the service knows of each campaign, for the words of its emails.
campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String(200), primary_key=True),
    Column("slug", String(200), nullable=False),
    Column("title", Text, nullable=False),
    Column("cause", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
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
    # 0002: the news post or milestone an email is about, and the recipient's pseudonym,
    # which is all that is left of the address after an erasure.
    Column("post_id", String(200), nullable=True),
    Column("milestone", String(100), nullable=True),
    Column("recipient_ref", String(64), nullable=True),
    CheckConstraint("status IN ('pending', 'sent', 'failed', 'skipped')", name="status"),
    UniqueConstraint("event_id", "recipient", "kind"),
    # One receipt per donation and recipient, even if a donation were announced twice (a
    # donation may have several refunds, so this holds for receipts only).
    Index(
        "uq_deliveries_one_receipt",
        "donation_id",
        "recipient",
        unique=True,
        postgresql_where=text("kind = 'receipt'"),
        sqlite_where=text("kind = 'receipt'"),
    ),
    # One email per news post and recipient, even if the post were announced twice.
    Index(
        "uq_deliveries_one_news",
        "campaign_id",
        "post_id",
        "recipient",
        unique=True,
        postgresql_where=text("kind = 'news'"),
        sqlite_where=text("kind = 'news'"),
    ),
    # At most one impact email per donor and milestone.
    Index(
        "uq_deliveries_one_impact",
        "campaign_id",
        "milestone",
        "recipient",
        unique=True,
        postgresql_where=text("kind = 'impact'"),
        sqlite_where=text("kind = 'impact'"),
    ),
    Index("ix_deliveries_donation_id", "donation_id"),
    Index("ix_deliveries_post_id", "post_id"),
    Index("ix_deliveries_recipient_ref", "recipient_ref"),
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)

# 0003: the meals the ledger says each gift funded, for the receipt.
bookings = Table(
    "bookings",
    metadata,
    Column("donation_id", String(200), primary_key=True),
    Column("campaign_id", String(200), nullable=False),
    Column("meals", Integer, nullable=False),
    Column("remainder", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False),
    Index("ix_bookings_campaign_id", "campaign_id"),
)

# 0003: a succeeded donation's receipt, held a few seconds for its booking (event data as JSON).
held_receipts = Table(
    "held_receipts",
    metadata,
    Column("donation_id", String(200), primary_key=True),
    Column("event_id", String(200), nullable=False),
    Column("campaign_id", String(200), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("data", Text, nullable=False),
    Column("release_at", DateTime(timezone=True), nullable=False),
    Index("ix_held_receipts_release_at", "release_at"),
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
    email_ref: str | None = None
    consent_at: datetime | None = None
    consent_source: str = CONSENT_AT_CHECKOUT


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def record_donor(conn: Connection, donor: DonorFacts) -> None:
    """Insert or refresh the donor of a campaign. Consent to news, once given, is kept: a
    later gift without the box ticked does not withdraw it (unsubscribing does). A later gift
    with the box ticked, consented after the donor unsubscribed, subscribes them again."""
    now = datetime.now(UTC)
    consent_at = _utc(donor.consent_at or donor.given_at) if donor.updates_opt_in else None
    statement = _insert(conn, donors).values(
        campaign_id=donor.campaign_id,
        email=donor.email.strip().lower(),
        name=donor.name,
        locale=donor.locale,
        updates_opt_in=donor.updates_opt_in,
        consent_at=consent_at,
        consent_source=donor.consent_source if consent_at else None,
        unsubscribed_at=None,
        email_ref=donor.email_ref,
        created_at=now,
        updated_at=now,
    )
    new = statement.excluded
    newer_consent = and_(
        new.consent_at.is_not(None),
        or_(donors.c.consent_at.is_(None), new.consent_at > donors.c.consent_at),
    )
    consent_after_unsubscribe = and_(
        new.consent_at.is_not(None),
        donors.c.unsubscribed_at.is_not(None),
        new.consent_at > donors.c.unsubscribed_at,
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["campaign_id", "email"],
            set_={
                "name": new.name,
                "locale": new.locale,
                "updates_opt_in": donors.c.updates_opt_in | new.updates_opt_in,
                "consent_at": case((newer_consent, new.consent_at), else_=donors.c.consent_at),
                "consent_source": case(
                    (newer_consent, new.consent_source), else_=donors.c.consent_source
                ),
                "unsubscribed_at": case(
                    (consent_after_unsubscribe, null()), else_=donors.c.unsubscribed_at
                ),
                "email_ref": func.coalesce(new.email_ref, donors.c.email_ref),
                "updated_at": new.updated_at,
            },
        )
    )


@dataclass(frozen=True)
class Donor:
    """A donor of one campaign as the projection knows them."""

    email: str
    name: str
    locale: str
    email_ref: str | None
    wants_news: bool
    impact: ImpactState = ImpactState()
    campaign_id: str = ""


def _impact_state(row: Any) -> ImpactState:
    held = json.loads(row.impact_held) if row.impact_held else None
    return ImpactState(
        told_meals=int(row.impact_told_meals or 0),
        last_at=as_utc(row.impact_last_at),
        held=Reached.from_dict(held) if held else None,
    )


_DONOR_COLUMNS = (
    donors.c.campaign_id,
    donors.c.email,
    donors.c.name,
    donors.c.locale,
    donors.c.email_ref,
    donors.c.consent_at,
    donors.c.unsubscribed_at,
    donors.c.impact_told_meals,
    donors.c.impact_last_at,
    donors.c.impact_held,
    unsubscribed_everywhere.c.unsubscribed_at.label("everywhere_at"),
)


def _donor(row: Any) -> Donor:
    return Donor(
        email=row.email,
        name=row.name,
        locale=row.locale,
        email_ref=row.email_ref,
        wants_news=_wants_news(row.consent_at, row.unsubscribed_at, row.everywhere_at),
        impact=_impact_state(row),
        campaign_id=row.campaign_id,
    )


def _with_everywhere() -> Any:
    return donors.outerjoin(
        unsubscribed_everywhere, unsubscribed_everywhere.c.email_ref == donors.c.email_ref
    )


def donors_of(conn: Connection, campaign_id: str) -> list[Donor]:
    """Every donor of a campaign who ever consented to news, each marked with whether they
    still want it (not unsubscribed from this campaign, nor from all campaigns since)."""
    rows = conn.execute(
        select(*_DONOR_COLUMNS)
        .select_from(_with_everywhere())
        .where(donors.c.campaign_id == campaign_id, donors.c.consent_at.is_not(None))
        .order_by(donors.c.id)
    )
    return [_donor(row) for row in rows]


def save_impact(
    conn: Connection, campaign_id: str, email: str, state: ImpactState, due_at: datetime | None
) -> None:
    """Keep what a donor was told of a campaign's milestones, and what waits until when."""
    conn.execute(
        update(donors)
        .where(donors.c.campaign_id == campaign_id, donors.c.email == email.strip().lower())
        .values(
            impact_told_meals=state.told_meals,
            impact_last_at=state.last_at,
            impact_held=json.dumps(state.held.to_dict()) if state.held else None,
            impact_due_at=due_at,
        )
    )


def donors_with_impact_due(conn: Connection, now: datetime, limit: int = 200) -> list[Donor]:
    """Donors whose held milestone is due, locked (other workers skip them) on PostgreSQL."""
    query = (
        select(*_DONOR_COLUMNS)
        .select_from(_with_everywhere())
        .where(donors.c.impact_due_at <= now)
        .order_by(donors.c.impact_due_at)
        .limit(limit)
    )
    if is_postgres(conn):
        query = query.with_for_update(of=donors, skip_locked=True)
    return [_donor(row) for row in conn.execute(query)]


def _wants_news(
    consent_at: datetime | None, unsubscribed_at: datetime | None, everywhere_at: datetime | None
) -> bool:
    if consent_at is None or unsubscribed_at is not None:
        return False
    if everywhere_at is None:
        return True
    consented, everywhere = as_utc(consent_at), as_utc(everywhere_at)
    assert consented is not None and everywhere is not None
    return consented > everywhere


def set_email_ref(conn: Connection, email: str, email_ref: str) -> None:
    """Give an address's donor rows their pseudonym, where they have none yet."""
    conn.execute(
        update(donors)
        .where(donors.c.email == email.strip().lower(), donors.c.email_ref.is_(None))
        .values(email_ref=email_ref)
    )


def still_wants_news(conn: Connection, campaign_id: str, email: str) -> bool:
    """Whether a donor may still get news and impact emails of a campaign, now."""
    row = conn.execute(
        select(
            donors.c.consent_at,
            donors.c.unsubscribed_at,
            unsubscribed_everywhere.c.unsubscribed_at.label("everywhere_at"),
        )
        .select_from(
            donors.outerjoin(
                unsubscribed_everywhere,
                unsubscribed_everywhere.c.email_ref == donors.c.email_ref,
            )
        )
        .where(donors.c.campaign_id == campaign_id, donors.c.email == email.strip().lower())
    ).first()
    return row is not None and _wants_news(row.consent_at, row.unsubscribed_at, row.everywhere_at)


def unsubscribe(conn: Connection, email_ref: str, campaign_id: str | None, now: datetime) -> int:
    """Stop news and impact emails to the donor of `email_ref`: from one campaign, or from
    every campaign (None), including campaigns they give to later without consenting again.
    Pending emails of those kinds are skipped. Returns how many campaigns it changed."""
    query = update(donors).where(
        donors.c.email_ref == email_ref, donors.c.unsubscribed_at.is_(None)
    )
    if campaign_id is not None:
        query = query.where(donors.c.campaign_id == campaign_id)
    changed = conn.execute(query.values(unsubscribed_at=now, updated_at=now)).rowcount
    if campaign_id is None:
        statement = _insert(conn, unsubscribed_everywhere).values(
            email_ref=email_ref, unsubscribed_at=now
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["email_ref"], set_={"unsubscribed_at": now}
            )
        )
    pending = update(deliveries).where(
        deliveries.c.recipient_ref == email_ref,
        deliveries.c.status == PENDING,
        deliveries.c.kind.in_(BY_CONSENT),
    )
    if campaign_id is not None:
        pending = pending.where(deliveries.c.campaign_id == campaign_id)
    conn.execute(pending.values(status=SKIPPED, last_error="unsubscribed", next_attempt_at=None))
    return int(changed or 0)


def erase_donor(conn: Connection, email: str, email_ref: str, now: datetime) -> dict[str, int]:
    """Remove a donor's personal data (GDPR erasure): their projection rows go; their
    deliveries keep only the pseudonym, with no message, and pending ones are cancelled."""
    address = email.strip().lower()
    removed = conn.execute(
        donors.delete().where(or_(donors.c.email == address, donors.c.email_ref == email_ref))
    ).rowcount
    # A receipt held for the ledger carries the donor's name and address: it goes too.
    conn.execute(held_receipts.delete().where(func.lower(held_receipts.c.recipient) == address))
    mine = or_(
        func.lower(deliveries.c.recipient) == address, deliveries.c.recipient_ref == email_ref
    )
    cancelled = conn.execute(
        update(deliveries)
        .where(mine, deliveries.c.status == PENDING)
        .values(status=SKIPPED, last_error="erased on request", next_attempt_at=None)
    ).rowcount
    rows = conn.execute(select(deliveries.c.id).where(mine)).all()
    for row in rows:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == row.id)
            # The id keeps the unique (event, recipient, kind) key distinct per row.
            .values(
                recipient=f"erased:{row.id}",
                recipient_ref=email_ref,
                message=None,
                last_error=case((deliveries.c.last_error.is_(None), null()), else_="(erased)"),
            )
        )
    return {
        "donors_removed": int(removed or 0),
        "deliveries_pseudonymised": len(rows),
        "pending_cancelled": int(cancelled or 0),
    }


# --- what the service knows of each campaign -------------------------------------------------


@dataclass(frozen=True)
class CampaignFacts:
    """The public facts of a campaign that emails name."""

    campaign_id: str
    slug: str
    title: str
    cause: str


def record_campaign(conn: Connection, campaign: CampaignFacts) -> None:
    """Insert or refresh a campaign's facts."""
    statement = _insert(conn, campaigns).values(
        campaign_id=campaign.campaign_id,
        slug=campaign.slug,
        title=campaign.title,
        cause=campaign.cause,
        updated_at=datetime.now(UTC),
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["campaign_id"],
            set_={
                "slug": statement.excluded.slug,
                "title": statement.excluded.title,
                "cause": statement.excluded.cause,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )


def campaign_of(conn: Connection, campaign_id: str) -> CampaignFacts | None:
    """A campaign's facts, if an event told us about it."""
    row = conn.execute(select(campaigns).where(campaigns.c.campaign_id == campaign_id)).first()
    if row is None:
        return None
    return CampaignFacts(row.campaign_id, row.slug, row.title, row.cause)


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
    recipient_ref: str | None = None
    post_id: str | None = None
    milestone: str | None = None


def add_delivery(conn: Connection, delivery: NewDelivery, now: datetime) -> bool:
    """Queue an email in the caller's transaction; False if this event, recipient and kind (or
    this donation's receipt, this news post or this milestone to this recipient) already has a
    delivery."""
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
            recipient_ref=delivery.recipient_ref,
            post_id=delivery.post_id,
            milestone=delivery.milestone,
        )
        # Any unique index may be the one hit, so no conflict target; RETURNING tells
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
    kind: str = RECEIPT
    campaign_id: str = ""


def claim_due(
    conn: Connection, now: datetime, limit: int, lease_until: datetime
) -> list[DueDelivery]:
    """Take up to `limit` pending deliveries that are due, and hide them from other senders
    until `lease_until`; the caller commits, sends, then records each outcome."""
    query = (
        select(
            deliveries.c.id,
            deliveries.c.recipient,
            deliveries.c.message,
            deliveries.c.attempts,
            deliveries.c.kind,
            deliveries.c.campaign_id,
        )
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
    return [
        DueDelivery(
            row.id, row.recipient, row.message or "", row.attempts, row.kind, row.campaign_id
        )
        for row in rows
    ]


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


def mark_skipped(conn: Connection, delivery_id: str, reason: str) -> None:
    """Not sent, on purpose (the donor unsubscribed after it was queued)."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status == PENDING)
        .values(status=SKIPPED, last_error=reason, next_attempt_at=None)
    )


def resend(conn: Connection, delivery_id: str, now: datetime) -> str | None:
    """Queue a delivery again (an operator's resend); its attempts count on. Returns why it
    cannot be, or None once it is pending."""
    row = conn.execute(
        select(
            deliveries.c.status,
            deliveries.c.message,
            deliveries.c.kind,
            deliveries.c.campaign_id,
            deliveries.c.recipient,
        ).where(deliveries.c.id == delivery_id)
    ).first()
    if row is None:
        return "no such delivery"
    if not row.message:
        return "this delivery has no message to send (skipped before it was built, or erased)"
    if row.kind in BY_CONSENT and not still_wants_news(conn, row.campaign_id, row.recipient):
        return "the donor no longer wants these emails"
    if row.status == PENDING:
        return None
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(status=PENDING, next_attempt_at=now, last_error=None, sent_at=None)
    )
    return None


# --- receipts that wait for the ledger ------------------------------------------------------


@dataclass(frozen=True)
class Booking:
    """What the ledger says one gift did."""

    donation_id: str
    campaign_id: str
    meals: int
    remainder: int
    currency: str


def record_booking(conn: Connection, booking: Booking, now: datetime) -> None:
    """Keep the ledger's word on a gift (the first word: bookings do not change)."""
    insert_statement = _insert(conn, bookings).values(
        donation_id=booking.donation_id,
        campaign_id=booking.campaign_id,
        meals=booking.meals,
        remainder=booking.remainder,
        currency=booking.currency,
        booked_at=now,
    )
    conn.execute(insert_statement.on_conflict_do_nothing(index_elements=["donation_id"]))


def booking_of(conn: Connection, donation_id: str) -> Booking | None:
    """The ledger's booking of a gift, if it arrived."""
    row = conn.execute(select(bookings).where(bookings.c.donation_id == donation_id)).first()
    if row is None:
        return None
    return Booking(row.donation_id, row.campaign_id, row.meals, row.remainder, row.currency)


def ledger_books(conn: Connection, campaign_id: str) -> bool:
    """Whether the ledger has been booking this campaign's gifts (so a booking will come)."""
    return (
        conn.execute(
            select(bookings.c.donation_id).where(bookings.c.campaign_id == campaign_id).limit(1)
        ).first()
        is not None
    )


def hold_receipt(
    conn: Connection,
    donation_id: str,
    event_id: str,
    campaign_id: str,
    recipient: str,
    data: str,
    release_at: datetime,
) -> None:
    """Keep a receipt back until its booking arrives or `release_at`, whichever is first."""
    statement = _insert(conn, held_receipts).values(
        donation_id=donation_id,
        event_id=event_id,
        campaign_id=campaign_id,
        recipient=recipient,
        data=data,
        release_at=release_at,
    )
    conn.execute(statement.on_conflict_do_nothing(index_elements=["donation_id"]))


@dataclass(frozen=True)
class HeldReceipt:
    """A receipt taken out of the hold, to be queued now by whoever took it."""

    donation_id: str
    event_id: str
    data: str


def take_held_receipt(conn: Connection, donation_id: str) -> HeldReceipt | None:
    """Take one held receipt out (None if there is none, or another transaction took it)."""
    row = conn.execute(
        select(held_receipts).where(held_receipts.c.donation_id == donation_id)
    ).first()
    if row is None:
        return None
    taken = conn.execute(
        held_receipts.delete().where(held_receipts.c.donation_id == donation_id)
    ).rowcount
    return HeldReceipt(row.donation_id, row.event_id, row.data) if taken else None


def overdue_held_receipts(conn: Connection, now: datetime, limit: int = 100) -> list[str]:
    """Donations whose receipt waited long enough for the ledger."""
    query = (
        select(held_receipts.c.donation_id)
        .where(held_receipts.c.release_at <= now)
        .order_by(held_receipts.c.release_at)
        .limit(limit)
    )
    if is_postgres(conn):
        query = query.with_for_update(skip_locked=True)
    return [row.donation_id for row in conn.execute(query)]
