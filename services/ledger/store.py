"""The ledger's tables (SQLAlchemy Core, SQLite and PostgreSQL) and the few queries that
read and write them for the handlers.

The journal is append-only: entries and lines are inserted, never updated or deleted; a
mistake is corrected by a reversing entry. `campaign_totals` is a running summary kept in the
same transaction as the entries it sums, so a campaign's summary is one row read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.shared.consumer import processed_events_table
from services.shared.db import service_metadata
from services.shared.money import Money
from services.shared.outbox import outbox_table

from .domain import JournalEntry, JournalLine, PricePeriod, posting_date

metadata = service_metadata()

# BIGSERIAL on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
_Id = BigInteger().with_variant(Integer, "sqlite")

campaigns = Table(
    "campaigns",
    metadata,
    # Text, not VARCHAR(n): these come from another service, and a value too long for a
    # column would fail the same way on every redelivery and stall the consumer.
    Column("campaign_id", Text, primary_key=True),
    Column("slug", Text, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("meal_price", BigInteger, nullable=False),
    Column("goal_meals", Integer, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Who bears Stripe's fees on this campaign's gifts (domain.FeePolicy); set by finance.
    Column("fee_policy", String(20), nullable=False, server_default="platform"),
    CheckConstraint("meal_price > 0", name="meal_price_positive"),
)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False, index=True),
    Column("campaign_id", Text, nullable=True, index=True),
    Column("kind", String(40), nullable=False),
    Column("description", Text, nullable=False),
    Column("donation_id", Text, nullable=True),
    # The Stripe object finance staff reconcile against (payment intent, else checkout session).
    Column("stripe_reference", Text, nullable=True),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The Stripe object the entry books (charge, refund, dispute or payout id), the charge it
    # belongs to, and Stripe's balance transaction: what reconciliation matches on.
    Column("stripe_object_id", Text, nullable=True, index=True),
    Column("charge_id", Text, nullable=True, index=True),
    Column("balance_transaction_id", Text, nullable=True, index=True),
    # Set when the entry's own date fell in a closed period: it is posted at effective_at (the
    # start of the next open period) and keeps the date it happened here.
    Column("original_effective_at", DateTime(timezone=True), nullable=True),
    Index("ix_journal_entries_effective_at", "effective_at"),
    # Each Stripe object is booked once per kind, whatever event ids announce it.
    Index(
        "uq_journal_entries_kind_stripe_object",
        "kind",
        "stripe_object_id",
        unique=True,
        postgresql_where=text("stripe_object_id IS NOT NULL"),
        sqlite_where=text("stripe_object_id IS NOT NULL"),
    ),
    # A gift is booked once per donation, whatever event ids its confirmations carry.
    Index(
        "uq_journal_entries_donation_gift",
        "donation_id",
        unique=True,
        postgresql_where=text("kind = 'donation'"),
        sqlite_where=text("kind = 'donation'"),
    ),
)

journal_lines = Table(
    "journal_lines",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("entry_id", _Id, ForeignKey("journal_entries.id"), nullable=False, index=True),
    Column("account", Text, nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    # Signed minor units: debit positive, credit negative (see domain.py).
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
)

campaign_totals = Table(
    "campaign_totals",
    metadata,
    Column("campaign_id", Text, ForeignKey("campaigns.campaign_id"), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("donated", BigInteger, nullable=False, server_default="0"),
    Column("refunded", BigInteger, nullable=False, server_default="0"),
    Column("donations", Integer, nullable=False, server_default="0"),
    Column("meals_funded", Integer, nullable=False, server_default="0"),
    Column("remainder", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

gifts = Table(
    "gifts",
    metadata,
    # One row per booked gift: what later refunds and disputes of it need to book their part.
    Column("donation_id", Text, primary_key=True),
    Column("campaign_id", Text, ForeignKey("campaigns.campaign_id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee_covered", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=True),
    Column("fee_policy", String(20), nullable=False),
    Column("charge_id", Text, nullable=True, index=True),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    # The price period the gift counts in (meal_periods.starts_at).
    Column("period_starts_at", DateTime(timezone=True), nullable=False),
    # Refunded plus lost in disputes, and what of the fund's fee charge Stripe gave back.
    Column("returned", BigInteger, nullable=False, server_default="0"),
    Column("fee_back_to_fund", BigInteger, nullable=False, server_default="0"),
    # What the fund holds from this gift now (may be below zero when the fund bore a fee).
    Column("fund_balance", BigInteger, nullable=False),
    Column("meals", Integer, nullable=False, server_default="0"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("returned >= 0 AND returned <= amount", name="returned_within_gift"),
)

meal_periods = Table(
    "meal_periods",
    metadata,
    # A campaign's meal prices from their effective dates, and the eligible amount of the gifts
    # that count at each (domain.count_meals folds over them).
    Column("campaign_id", Text, ForeignKey("campaigns.campaign_id"), primary_key=True),
    Column("starts_at", DateTime(timezone=True), primary_key=True),
    Column("meal_price", BigInteger, nullable=False),
    Column("eligible", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("meal_price > 0", name="meal_price_positive"),
    CheckConstraint("eligible >= 0", name="eligible_not_negative"),
)

payout_items = Table(
    "payout_items",
    metadata,
    # Which balance transactions each payout settled (from payout.paid).
    Column("payout_id", Text, primary_key=True),
    Column("balance_transaction_id", Text, primary_key=True),
)

closed_periods = Table(
    "closed_periods",
    metadata,
    # A closed month ("YYYY-MM") accepts no new postings.
    Column("month", String(7), primary_key=True),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("closed_by", Text, nullable=False),
)

milestones_reached = Table(
    "milestones_reached",
    metadata,
    # 0004: each campaign's milestones reached so far: each is announced once, whatever the
    # counter does after (a refund takes it back under, a gift over it again).
    Column("campaign_id", Text, primary_key=True),
    Column("milestone", String(40), primary_key=True),
    Column("reached_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
processed = processed_events_table(metadata)


def _insert(conn: Connection, table: Table) -> Any:
    """An INSERT that knows ON CONFLICT on either database."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def upsert_campaign(conn: Connection, campaign: dict[str, Any], replace: bool) -> None:
    """Write a campaign's projection; `replace` overwrites an existing row (a published
    campaign is the authority), otherwise an existing row is kept (a donation only fills in
    a campaign the ledger has not heard of yet). Also makes sure its totals row exists."""
    now = datetime.now(UTC)
    values = {**campaign, "updated_at": now}
    statement = _insert(conn, campaigns).values(**values)
    if replace:
        changes = {key: value for key, value in values.items() if key != "campaign_id"}
        statement = statement.on_conflict_do_update(index_elements=["campaign_id"], set_=changes)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["campaign_id"])
    conn.execute(statement)
    conn.execute(
        _insert(conn, campaign_totals)
        .values(campaign_id=campaign["campaign_id"], currency=campaign["currency"], updated_at=now)
        .on_conflict_do_nothing(index_elements=["campaign_id"])
    )


def campaign_by_id(conn: Connection, campaign_id: str) -> Row[Any] | None:
    """The projection of one campaign, or None."""
    return conn.execute(select(campaigns).where(campaigns.c.campaign_id == campaign_id)).first()


def campaign_id_with_slug(conn: Connection, slug: str) -> str | None:
    """Which campaign holds `slug`, if any."""
    return conn.execute(
        select(campaigns.c.campaign_id).where(campaigns.c.slug == slug)
    ).scalar_one_or_none()


def lock_totals(conn: Connection, campaign_id: str) -> Row[Any]:
    """A campaign's totals, locked until the transaction ends so concurrent consumers of the
    same campaign add up one after the other (SQLite's BEGIN IMMEDIATE already serialises)."""
    return conn.execute(
        select(campaign_totals)
        .where(campaign_totals.c.campaign_id == campaign_id)
        .with_for_update()
    ).one()


def lock_totals_if_any(conn: Connection, campaign_id: str) -> Row[Any] | None:
    """A campaign's totals, locked, or None for a campaign the ledger does not know."""
    return conn.execute(
        select(campaign_totals)
        .where(campaign_totals.c.campaign_id == campaign_id)
        .with_for_update()
    ).first()


def set_meal_price(conn: Connection, campaign_id: str, meal_price: int) -> None:
    """Record the meal price in force now in the campaign's projection."""
    conn.execute(
        update(campaigns)
        .where(campaigns.c.campaign_id == campaign_id)
        .values(meal_price=meal_price)
    )


def save_totals(conn: Connection, campaign_id: str, **values: Any) -> None:
    """Overwrite some of a campaign's totals (the caller holds the row lock)."""
    conn.execute(
        update(campaign_totals)
        .where(campaign_totals.c.campaign_id == campaign_id)
        .values(**values, updated_at=datetime.now(UTC))
    )


def gift_already_booked(conn: Connection, donation_id: str) -> bool:
    """True if a donation entry for this donation is already in the journal."""
    return (
        conn.execute(
            select(journal_entries.c.id).where(
                journal_entries.c.kind == "donation", journal_entries.c.donation_id == donation_id
            )
        ).first()
        is not None
    )


def utc(moment: datetime) -> datetime:
    """A moment as stored and compared here: aware, in UTC (SQLite hands back naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def closed_months(conn: Connection) -> set[str]:
    """The closed periods ("YYYY-MM")."""
    return set(conn.execute(select(closed_periods.c.month)).scalars())


def post_entry(
    conn: Connection,
    entry: JournalEntry,
    *,
    event_id: str,
    campaign_id: str | None,
    donation_id: str | None = None,
    stripe_reference: str | None = None,
    stripe_object_id: str | None = None,
    charge_id: str | None = None,
    balance_transaction_id: str | None = None,
) -> int:
    """Append a balanced entry and its lines to the journal; return the entry's id. An entry
    dated in a closed period is posted at the start of the next open one, keeping its date."""
    effective_at, original = posting_date(utc(entry.effective_at), closed_months(conn))
    entry_id: int = conn.execute(
        journal_entries.insert()
        .values(
            event_id=event_id,
            campaign_id=campaign_id,
            kind=entry.kind.value,
            description=entry.description,
            donation_id=donation_id,
            stripe_reference=stripe_reference,
            stripe_object_id=stripe_object_id,
            charge_id=charge_id,
            balance_transaction_id=balance_transaction_id,
            effective_at=effective_at,
            original_effective_at=original,
            created_at=datetime.now(UTC),
        )
        .returning(journal_entries.c.id)
    ).scalar_one()
    conn.execute(
        journal_lines.insert(),
        [
            {
                "entry_id": entry_id,
                "account": line.account,
                "currency": line.amount.currency,
                "amount": line.amount.amount,
            }
            for line in entry.lines
        ],
    )
    return entry_id


def entry_of(conn: Connection, kinds: Sequence[str], stripe_object_id: str) -> Row[Any] | None:
    """The entry of one of `kinds` that booked a Stripe object, if any."""
    return conn.execute(
        select(journal_entries).where(
            journal_entries.c.kind.in_(kinds),
            journal_entries.c.stripe_object_id == stripe_object_id,
        )
    ).first()


def entry_lines(conn: Connection, entry_id: int) -> list[JournalLine]:
    """The lines of one journal entry, as they were posted."""
    rows = conn.execute(
        select(journal_lines)
        .where(journal_lines.c.entry_id == entry_id)
        .order_by(journal_lines.c.id)
    )
    return [JournalLine(row.account, Money(int(row.amount), row.currency)) for row in rows]


def gift_of(conn: Connection, donation_id: str, lock: bool = False) -> Row[Any] | None:
    """A booked gift, locked for update when asked."""
    statement = select(gifts).where(gifts.c.donation_id == donation_id)
    return conn.execute(statement.with_for_update() if lock else statement).first()


def gift_by_charge(conn: Connection, charge_id: str) -> Row[Any] | None:
    """The booked gift paid by a Stripe charge, if any."""
    return conn.execute(select(gifts).where(gifts.c.charge_id == charge_id)).first()


def insert_gift(conn: Connection, **values: Any) -> None:
    """Remember a booked gift."""
    conn.execute(gifts.insert().values(**values))


def update_gift(conn: Connection, donation_id: str, **values: Any) -> None:
    """Change what is remembered of a gift after a refund or a dispute."""
    conn.execute(update(gifts).where(gifts.c.donation_id == donation_id).values(**values))


def price_periods(conn: Connection, campaign_id: str) -> list[PricePeriod]:
    """A campaign's price periods, oldest first."""
    rows = conn.execute(
        select(meal_periods, campaigns.c.currency)
        .join(campaigns, campaigns.c.campaign_id == meal_periods.c.campaign_id)
        .where(meal_periods.c.campaign_id == campaign_id)
        .order_by(meal_periods.c.starts_at)
    ).all()
    return [
        PricePeriod(
            utc(row.starts_at),
            Money(row.meal_price, row.currency),
            Money(row.eligible, row.currency),
        )
        for row in rows
    ]


def add_price_period(conn: Connection, campaign_id: str, starts_at: datetime, price: int) -> None:
    """Start a price period (or set the price of the one starting at the same moment)."""
    conn.execute(
        _insert(conn, meal_periods)
        .values(campaign_id=campaign_id, starts_at=utc(starts_at), meal_price=price, eligible=0)
        .on_conflict_do_update(
            index_elements=["campaign_id", "starts_at"], set_={"meal_price": price}
        )
    )


def add_eligible(conn: Connection, campaign_id: str, starts_at: datetime, change: int) -> None:
    """Add (or take) `change` minor units to the eligible amount of one price period."""
    conn.execute(
        update(meal_periods)
        .where(
            meal_periods.c.campaign_id == campaign_id, meal_periods.c.starts_at == utc(starts_at)
        )
        .values(eligible=meal_periods.c.eligible + change)
    )


def move_gifts_between_periods(
    conn: Connection, campaign_id: str, boundary: datetime, old_start: datetime
) -> None:
    """After a price period starting at `boundary` is inserted inside the one starting at
    `old_start`, move the gifts dated from `boundary` on into it, with their eligible amount."""
    moved = conn.execute(
        select(gifts.c.donation_id, gifts.c.fund_balance).where(
            gifts.c.campaign_id == campaign_id,
            gifts.c.period_starts_at == utc(old_start),
            gifts.c.effective_at >= utc(boundary),
        )
    ).all()
    amount = sum(max(0, row.fund_balance) for row in moved)
    if moved:
        conn.execute(
            update(gifts)
            .where(gifts.c.donation_id.in_([row.donation_id for row in moved]))
            .values(period_starts_at=utc(boundary))
        )
        add_eligible(conn, campaign_id, old_start, -amount)
        add_eligible(conn, campaign_id, boundary, amount)


def close_period(conn: Connection, month: str, closed_by: str) -> bool:
    """Close a month to new postings; False if it was closed already."""
    statement = (
        _insert(conn, closed_periods)
        .values(month=month, closed_at=datetime.now(UTC), closed_by=closed_by)
        .on_conflict_do_nothing(index_elements=["month"])
        .returning(closed_periods.c.month)
    )
    return conn.execute(statement).first() is not None


def set_fee_policy(conn: Connection, campaign_id: str, policy: str) -> None:
    """Set who bears the fees of a campaign's gifts booked from now on."""
    conn.execute(
        update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(fee_policy=policy)
    )


def claim_milestones(
    conn: Connection, campaign_id: str, names: Sequence[str], when: datetime
) -> set[str]:
    """Record milestones as reached; return those reached for the first time now."""
    if not names:
        return set()
    claimed = conn.execute(
        _insert(conn, milestones_reached)
        .values([{"campaign_id": campaign_id, "milestone": n, "reached_at": when} for n in names])
        .on_conflict_do_nothing(index_elements=["campaign_id", "milestone"])
        .returning(milestones_reached.c.milestone)
    ).scalars()
    return set(claimed)


def record_payout_items(
    conn: Connection, payout_id: str, balance_transaction_ids: list[str]
) -> None:
    """Remember which balance transactions a payout settled."""
    for btx in balance_transaction_ids:
        conn.execute(
            _insert(conn, payout_items)
            .values(payout_id=payout_id, balance_transaction_id=btx)
            .on_conflict_do_nothing()
        )


def account_balance(conn: Connection, account: str, currency: str) -> int:
    """The signed balance of one account in one currency (debits positive)."""
    return int(
        conn.execute(
            select(func.coalesce(func.sum(journal_lines.c.amount), 0)).where(
                journal_lines.c.account == account, journal_lines.c.currency == currency
            )
        ).scalar_one()
    )
