"""The ledger's tables (SQLAlchemy Core, SQLite and PostgreSQL), as the migrations create them.

The journal is append-only: entries and lines are inserted, never updated or deleted; a
mistake is corrected by a reversing entry. `campaign_totals` is a running summary kept in the
same transaction as the entries it sums, so a campaign's summary is one row read.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from services.shared.consumer import processed_events_table
from services.shared.db import service_metadata
from services.shared.outbox import outbox_table

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
    # 0006: what difts brought apart from donors' gifts (money, difts counted once, meals).
    Column("difts_amount", BigInteger, nullable=False, server_default="0"),
    Column("difts_received", Integer, nullable=False, server_default="0"),
    Column("dift_meals", Integer, nullable=False, server_default="0"),
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

programmes = Table(
    "programmes",
    metadata,
    # 0006: each programme's fund, a running summary kept with the entries it sums (and
    # locked while a booking changes it, so its balance is checked once at a time).
    Column("programme_id", Text, primary_key=True),
    Column("sponsor_id", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("funded", BigInteger, nullable=False, server_default="0"),
    Column("fees", BigInteger, nullable=False, server_default="0"),
    Column("directed", BigInteger, nullable=False, server_default="0"),
    Column("expired_given", BigInteger, nullable=False, server_default="0"),
    Column("credited_back", BigInteger, nullable=False, server_default="0"),
    Column("difts_directed", Integer, nullable=False, server_default="0"),
    Column("difts_expired", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "funded - directed - expired_given - credited_back >= 0", name="fund_not_negative"
    ),
)

programme_movements = Table(
    "programme_movements",
    metadata,
    # 0006: each funding, dift and credit back booked on a programme's fund, once per id
    # whatever event ids announce it again.
    Column("movement", String(20), primary_key=True),
    Column("reference", Text, primary_key=True),
    Column("programme_id", Text, nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

dift_allocations = Table(
    "dift_allocations",
    metadata,
    # 0006: the part of each booked dift that went to one campaign, the meals it moved the
    # counter by, and the price period it counts in (meal_periods.starts_at).
    Column("dift_id", Text, primary_key=True),
    Column("campaign_id", Text, ForeignKey("campaigns.campaign_id"), primary_key=True),
    Column("programme_id", Text, nullable=False, index=True),
    Column("outcome", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("meals", Integer, nullable=False),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("period_starts_at", DateTime(timezone=True), nullable=False),
    Index("ix_dift_allocations_campaign_period", "campaign_id", "period_starts_at"),
    CheckConstraint("amount > 0", name="amount_positive"),
)

outbox = outbox_table(metadata)
processed = processed_events_table(metadata)
