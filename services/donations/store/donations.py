"""Donations, their refunds and disputes, and Stripe's payouts, on the unit of work's
transaction. A donation is loaded with a row lock (`get(id, lock=True)`: SELECT ... FOR
UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers) before it
changes, and saved after; a refund, dispute or payout id is inserted once."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Table, select, update

from services.shared.db import insert_if_absent
from services.shared.money import Money

from ..domain.donations import Dispute, Donation, DonationStatus, Donor, Refund
from ..domain.payments import PayoutPaid
from .rows import by_id, columns, record
from .tables import disputes, donations, payouts, refunds

# What a donation's lifecycle changes; the rest is written once, when it starts.
LIFECYCLE = (
    "status",
    "payment_intent_id",
    "charge_id",
    "balance_transaction_id",
    "fee",
    "net",
    "amount_refunded",
    "succeeded_at",
    "ended_at",
)
# What the donor gave and chose, and the checkout they pay at: written when it starts.
STARTED = (
    "id",
    "campaign_id",
    "amount",
    "fee_covered",
    "updates_opt_in",
    "consent_at",
    "created_at",
    "checkout_session_id",
    "checkout_url",
    "correlation_id",
    "anonymous",
    "public_message",
    "show_message",
    "request_fingerprint",
)


def _donation(row: Any) -> Donation:
    currency = row.currency
    return record(
        row,
        Donation,
        amount=Money(row.amount, currency),
        fee_covered=Money(row.fee_covered, currency),
        amount_refunded=Money(row.amount_refunded, currency),
        priced_meals=row.meals,
        donor=Donor(row.donor_email, row.donor_name, row.locale),
        status=DonationStatus(row.status),
    )


class Donations:
    """The donations, by id or by the payment that paid them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, donation_id: str, lock: bool = False) -> Donation | None:
        """The donation, if any; `lock` holds it until the transaction ends."""
        row = by_id(self.conn, donations, donation_id, lock)
        return _donation(row) if row is not None else None

    def by_payment(self, payment_intent_id: str | None, charge_id: str | None) -> Donation | None:
        """The donation paid by this payment intent or charge, if any is known yet."""
        for column, value in (
            (donations.c.payment_intent_id, payment_intent_id),
            (donations.c.charge_id, charge_id),
        ):
            if value:
                row = self.conn.execute(select(donations).where(column == value)).first()
                if row is not None:
                    return _donation(row)
        return None

    def add(self, donation: Donation) -> bool:
        """Store a new donation; False if one with its id exists (a retried request)."""
        donor = donation.donor
        row = {
            **columns(donation, *STARTED, *LIFECYCLE),
            "currency": donation.currency,
            "meals": donation.priced_meals,
            "donor_email": donor.email,
            "donor_name": donor.name,
            "locale": donor.locale,
        }
        return insert_if_absent(self.conn, donations, row, key="id")

    def save(self, donation: Donation) -> None:
        """Write what the donation's lifecycle changed."""
        changed = columns(donation, *LIFECYCLE)
        self.conn.execute(update(donations).where(donations.c.id == donation.id).values(**changed))


Kept = TypeVar("Kept", Refund, Dispute)


class _KeptOnce(Generic[Kept]):
    """Records of a donation kept once by their Stripe id, each a row of the same fields."""

    table: Table
    kind: type[Kept]

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, key: str) -> Kept | None:
        """The record kept under this Stripe id, if any."""
        row = by_id(self.conn, self.table, key)
        return record(row, self.kind) if row is not None else None

    def add(self, kept: Kept) -> bool:
        """Keep a record; False if its id is kept already."""
        return insert_if_absent(self.conn, self.table, columns(kept), key="id")

    def save(self, kept: Kept) -> None:
        """Write how a record changed (a counted refund that failed, a dispute that ended)."""
        self.conn.execute(
            update(self.table).where(self.table.c.id == kept.id).values(**columns(kept))
        )


class Refunds(_KeptOnce[Refund]):
    """The refunds Stripe reported, each once by its refund id."""

    table, kind = refunds, Refund


class Disputes(_KeptOnce[Dispute]):
    """The disputes of donations' charges, each once by its dispute id."""

    table, kind = disputes, Dispute


class Payouts:
    """Stripe's payouts to the bank, each once by its payout id."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, payout: PayoutPaid, paid_at: datetime) -> bool:
        """Remember a payout; False if its id is remembered already."""
        row = {"id": payout.payout_id, "paid_at": paid_at, **columns(payout, "amount", "currency")}
        return insert_if_absent(self.conn, payouts, row, key="id")
