"""The donations database's tables (SQLite for make run, PostgreSQL in tests and production;
migrations/ creates them)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from services.shared.consumer import processed_events_table
from services.shared.outbox import outbox_table

from ..domain.donations import REFUND_COUNTED

metadata = MetaData()

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("title", String(300), nullable=False),
    Column("cause", String(300), nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("currency", String(3), nullable=False),
    Column("meal_price", Integer, nullable=False),
    Column("goal_meals", Integer, nullable=True),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("cause_certified", Boolean, nullable=False, server_default=false()),
    Column("action_zone", String(200), nullable=False, server_default=""),
    Column("story_markdown", Text, nullable=False, server_default=""),
    # The list of what the money is used for, as a JSON array of strings.
    Column("money_uses", Text, nullable=False, server_default="[]"),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
)

# A campaign's texts in one language of the donor pages (a text left empty there reads the
# campaign's own, in campaigns); at most one row per campaign and language.
campaign_texts = Table(
    "campaign_texts",
    metadata,
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), primary_key=True),
    Column("locale", String(10), primary_key=True),
    Column("title", String(300), nullable=False, server_default=""),
    Column("summary", Text, nullable=False, server_default=""),
    Column("story_markdown", Text, nullable=False, server_default=""),
    # As campaigns.money_uses: a JSON array of strings.
    Column("money_uses", Text, nullable=False, server_default="[]"),
)

# A live campaign's meal price changes only from a date on: the price in force at a moment is
# the latest change that took effect by then, else campaigns.meal_price.
meal_price_changes = Table(
    "meal_price_changes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False, index=True),
    Column("meal_price", Integer, nullable=False),
    Column("previous_meal_price", Integer, nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

news_posts = Table(
    "news_posts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False, index=True),
    Column("title", String(300), nullable=False),
    Column("body_markdown", Text, nullable=False),
    Column("locale", String(10), nullable=False, server_default="fr"),
    # Set for a post scheduled for later; the worker publishes it when due.
    Column("publish_at", DateTime(timezone=True), nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Lets seed-demo recreate nothing when run twice.
    Column("seed_key", String(100), nullable=True, unique=True),
)

# The ledger's count of meals funded, kept from its meals_funded events for the donor pages.
campaign_meals = Table(
    "campaign_meals",
    metadata,
    Column("campaign_id", String(36), primary_key=True),
    Column("meals_funded", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per Stripe refund id: charge.refunded and refund.* describe the same refund, and it
# must be counted once. `status` is "counted" (pending or succeeded at Stripe: in the
# donation's amount_refunded) or "failed" (failed or canceled at Stripe: counts nothing, now
# or later, whichever order its events come in).
refunds = Table(
    "refunds",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("donation_id", String(36), ForeignKey("donations.id"), nullable=False, index=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False, server_default=REFUND_COUNTED),
    Column("failed_at", DateTime(timezone=True), nullable=True),
)

disputes = Table(
    "disputes",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("donation_id", String(36), ForeignKey("donations.id"), nullable=False, index=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
)

payouts = Table(
    "payouts",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("paid_at", DateTime(timezone=True), nullable=False),
)

donations = Table(
    "donations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False, index=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("meals", Integer, nullable=False),
    Column("donor_email", String(320), nullable=False),
    Column("donor_name", String(200), nullable=False),
    Column("locale", String(10), nullable=False),
    Column("updates_opt_in", Boolean, nullable=False),
    Column("consent_at", DateTime(timezone=True), nullable=True),
    Column("status", String(20), nullable=False),
    Column("checkout_session_id", String(255), nullable=True, unique=True),
    Column("checkout_url", Text, nullable=True),
    Column("payment_intent_id", String(255), nullable=True),
    Column("correlation_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("succeeded_at", DateTime(timezone=True), nullable=True),
    Column("anonymous", Boolean, nullable=False, server_default=false()),
    Column("public_message", Text, nullable=True),
    Column("show_message", Boolean, nullable=False, server_default=false()),
    Column("fee_covered", Integer, nullable=False, server_default="0"),
    Column("charge_id", String(255), nullable=True, index=True),
    Column("balance_transaction_id", String(255), nullable=True),
    Column("fee", Integer, nullable=True),
    Column("net", Integer, nullable=True),
    Column("amount_refunded", Integer, nullable=False, server_default="0"),
    # What an Idempotency-Key request asked for, so a retry with other content is refused.
    Column("request_fingerprint", String(64), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)

# Every Stripe event we accepted, by Stripe's id: the webhook's deduplication and audit trail.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("donation_id", String(36), nullable=True, index=True),
    # Kept only for events we could not apply yet, so they can be applied later.
    Column("payload", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # For an event that must wait: what it waits for (a donation, payment intent or charge).
    Column("waiting_for", String(255), nullable=True, index=True),
    # 0004: for an event kept as unreadable, what is wrong with it.
    Column("problem", Text, nullable=True),
    # 0006: a received event is applied by the worker after the webhook answered; the applier
    # that claimed it holds it until then (a crashed one's claim runs out), and the request's
    # correlation id travels on to the events it publishes.
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("correlation_id", String(64), nullable=True),
    # 0006: what the applier and the kept-events round look for, oldest first.
    Index("ix_stripe_events_outcome_received_at", "outcome", "received_at"),
)

# --- company difts (0007) ---------------------------------------------------------------------

sponsors = Table(
    "sponsors",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("legal_name", String(300), nullable=False),
    Column("legal_form", String(100), nullable=False),
    Column("siren", String(9), nullable=False),
    Column("postal_address", Text, nullable=False),
    Column("contact_email", String(320), nullable=False),
    Column("brand_name", String(300), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Lets seed-demo recreate nothing when run twice.
    Column("seed_key", String(100), nullable=True, unique=True),
)

# A sponsor's own access tokens (the sponsor role, scoped to that sponsor): only the sha256 of
# each is kept; the token is shown once, when it is made.
sponsor_tokens = Table(
    "sponsor_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("sponsor_id", String(36), ForeignKey("sponsors.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

programmes = Table(
    "programmes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("sponsor_id", String(36), ForeignKey("sponsors.id"), nullable=False, index=True),
    Column("name", String(300), nullable=False),
    Column("occasion", String(300), nullable=False, server_default=""),
    Column("message_markdown", Text, nullable=False, server_default=""),
    Column("currency", String(3), nullable=False),
    # Null: each dift has its own value (given per recipient).
    Column("dift_value", Integer, nullable=True),
    Column("opens_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("fallback_rule", String(20), nullable=False),
    Column("fallback_campaign_id", String(36), ForeignKey("campaigns.id"), nullable=True),
    Column("status", String(20), nullable=False, index=True),
    Column("funded", Integer, nullable=False, server_default="0"),
    Column("reserved", Integer, nullable=False, server_default="0"),
    Column("credited_back", Integer, nullable=False, server_default="0"),
    Column("expired_to_credit", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("funded_at", DateTime(timezone=True), nullable=True),
    Column("opened_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("seed_key", String(100), nullable=True, unique=True),
)

# A programme's shortlist, in its order (the order decides who gets an even split's cents).
programme_shortlist = Table(
    "programme_shortlist",
    metadata,
    Column("programme_id", String(36), ForeignKey("programmes.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False, index=True),
    UniqueConstraint("programme_id", "campaign_id", name="uq_programme_shortlist_campaign"),
)

# Money received for a programme, once per source: a Stripe Checkout Session ("stripe:<id>")
# or a bank transfer's reference ("bank:<reference>"), so a replayed webhook or a transfer
# recorded twice books nothing twice.
programme_fundings = Table(
    "programme_fundings",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("programme_id", String(36), ForeignKey("programmes.id"), nullable=False, index=True),
    Column("source", String(300), nullable=False, unique=True),
    Column("method", String(20), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fee", Integer, nullable=True),
    Column("net", Integer, nullable=True),
    Column("checkout_session_id", String(255), nullable=True),
    Column("payment_intent_id", String(255), nullable=True),
    Column("charge_id", String(255), nullable=True),
    Column("balance_transaction_id", String(255), nullable=True),
    Column("bank_reference", String(200), nullable=True),
    Column("received_on", Date, nullable=True),
    Column("funded_at", DateTime(timezone=True), nullable=False),
)

programme_credits = Table(
    "programme_credits",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("programme_id", String(36), ForeignKey("programmes.id"), nullable=False, index=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(20), nullable=False),
    Column("reference", String(200), nullable=False, server_default=""),
    Column("credited_at", DateTime(timezone=True), nullable=False),
)

# Recipient files accepted for issuing: a job the worker issues in chunks, with its progress.
recipient_uploads = Table(
    "recipient_uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("programme_id", String(36), ForeignKey("programmes.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("total", Integer, nullable=False),
    Column("issued", Integer, nullable=False, server_default="0"),
    Column("problem", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

recipient_rows = Table(
    "recipient_rows",
    metadata,
    Column("upload_id", String(36), ForeignKey("recipient_uploads.id"), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("locale", String(10), nullable=False, server_default="fr"),
    Column("value", Integer, nullable=True),
    Column("sponsor_reference", String(200), nullable=True),
    # Set once the row's dift is issued.
    Column("dift_id", String(36), nullable=True),
)

difts = Table(
    "difts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("programme_id", String(36), ForeignKey("programmes.id"), nullable=False, index=True),
    Column("channel", String(10), nullable=False),
    # The sha256 of its link token or printed code (codes.code_digest): never the secret.
    Column("secret_digest", String(64), nullable=False, unique=True),
    Column("value", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("recipient_email", String(320), nullable=True),
    Column("recipient_name", String(200), nullable=True),
    Column("recipient_locale", String(10), nullable=True),
    Column("sponsor_reference", String(200), nullable=True),
    Column("upload_id", String(36), nullable=True),
    Column("state", String(20), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("bounced_at", DateTime(timezone=True), nullable=True),
    Column("opened_at", DateTime(timezone=True), nullable=True),
    Column("directed_at", DateTime(timezone=True), nullable=True),
    Column("expired_at", DateTime(timezone=True), nullable=True),
    Column("updates_opt_in", Boolean, nullable=False, server_default=false()),
    Column("fallback_rule", String(20), nullable=True),
    UniqueConstraint("programme_id", "sponsor_reference", name="uq_difts_sponsor_reference"),
    Index("ix_difts_programme_id_state", "programme_id", "state"),
)

# Where each directed or expired dift went: its allocations, in shortlist order.
dift_allocations = Table(
    "dift_allocations",
    metadata,
    Column("dift_id", String(36), ForeignKey("difts.id"), primary_key=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("kind", String(20), nullable=False),  # directed | expired
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_dift_allocations_campaign_id", "campaign_id"),
)

# What the ledger said each allocation funded (its dift_booked events), for the impact report.
dift_bookings = Table(
    "dift_bookings",
    metadata,
    Column("dift_id", String(36), primary_key=True),
    Column("campaign_id", String(36), primary_key=True),
    Column("programme_id", String(36), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("meals", Integer, nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False),
)

# Printed-code redemption attempts that named no dift, per client address: the rate limit.
redemption_attempts = Table(
    "redemption_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_redemption_attempts_client_at", "client", "at"),
)

# The last mécénat receipt number of each issuing organisation and year: the next number is
# taken by UPDATE ... RETURNING on this row, in the funding's transaction (gapless, unique).
receipt_counters = Table(
    "receipt_counters",
    metadata,
    Column("organisation", String(100), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("last_number", Integer, nullable=False),
)

mecenat_receipts = Table(
    "mecenat_receipts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("number", String(20), nullable=False),
    Column("organisation", String(100), nullable=False),
    Column("year", Integer, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("programme_id", String(36), ForeignKey("programmes.id"), nullable=False, index=True),
    Column(
        "funding_id", String(36), ForeignKey("programme_fundings.id"), nullable=False, unique=True
    ),
    Column("sponsor_id", String(36), ForeignKey("sponsors.id"), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("received_on", Date, nullable=False),
    Column("form", String(40), nullable=False),
    Column("issued_on", Date, nullable=False),
    UniqueConstraint("organisation", "year", "sequence", name="uq_mecenat_receipts_sequence"),
)

# Back-office accounts: only the argon2id hash of each password is kept.
backoffice_accounts = Table(
    "backoffice_accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("roles", String(100), nullable=False),  # joined by "+", as DIFTS_API_TOKENS
    Column("password_hash", String(200), nullable=False),
    Column("sponsor_id", String(36), ForeignKey("sponsors.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Signed-in sessions, by the sha256 of the random token their cookie carries: signing out
# deletes the row, so a copied cookie stops working too.
backoffice_sessions = Table(
    "backoffice_sessions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column(
        "account_id", String(36), ForeignKey("backoffice_accounts.id"), nullable=False, index=True
    ),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Failed sign-ins per key ("email:<sha256>" or "address:<ip>") since the window's first one.
sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("first_failure_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
processed = processed_events_table(metadata)
