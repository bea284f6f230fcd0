"""The ledger's tables (SQLAlchemy Core, SQLite and PostgreSQL) and the few queries that
read and write them for the handlers.

The journal is append-only: entries and lines are inserted, never updated or deleted; a
mistake is corrected by a reversing entry. `campaign_totals` is a running summary kept in the
same transaction as the entries it sums, so a campaign's summary is one row read.
"""

from __future__ import annotations

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
    MetaData,
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
from services.shared.outbox import outbox_table

from .domain import JournalEntry

# Constraint names fixed here so migrations name them the same on every database.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

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


def post_entry(
    conn: Connection,
    entry: JournalEntry,
    *,
    event_id: str,
    campaign_id: str | None,
    donation_id: str | None = None,
    stripe_reference: str | None = None,
) -> int:
    """Append a balanced entry and its lines to the journal; return the entry's id."""
    entry_id: int = conn.execute(
        journal_entries.insert()
        .values(
            event_id=event_id,
            campaign_id=campaign_id,
            kind=entry.kind.value,
            description=entry.description,
            donation_id=donation_id,
            stripe_reference=stripe_reference,
            effective_at=entry.effective_at,
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


def account_balance(conn: Connection, account: str, currency: str) -> int:
    """The signed balance of one account in one currency (debits positive)."""
    return int(
        conn.execute(
            select(func.coalesce(func.sum(journal_lines.c.amount), 0)).where(
                journal_lines.c.account == account, journal_lines.c.currency == currency
            )
        ).scalar_one()
    )
