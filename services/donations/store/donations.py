"""Donations, their refunds and disputes, and Stripe's payouts, on the unit of work's
transaction. A donation is loaded with a row lock (`get(id, lock=True)`: SELECT ... FOR
UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers) before it
changes, and saved after; a refund, dispute or payout id is inserted once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from services.shared.db import as_utc, insert_if_absent
from services.shared.money import Money

from ..domain import Dispute, Donation, DonationStatus, Donor, PayoutPaid, Refund
from .rows import by_id, moment
from .tables import disputes, donations, payouts, refunds


def _donation(row: Any) -> Donation:
    currency = row.currency
    return Donation(
        id=row.id,
        campaign_id=row.campaign_id,
        amount=Money(row.amount, currency),
        fee_covered=Money(row.fee_covered or 0, currency),
        priced_meals=row.meals,
        donor=Donor(row.donor_email, row.donor_name, row.locale),
        updates_opt_in=bool(row.updates_opt_in),
        consent_at=moment(row.consent_at),
        status=DonationStatus(row.status),
        created_at=as_utc(row.created_at),
        amount_refunded=Money(row.amount_refunded or 0, currency),
        checkout_session_id=row.checkout_session_id,
        checkout_url=row.checkout_url,
        correlation_id=row.correlation_id,
        anonymous=bool(row.anonymous),
        public_message=row.public_message,
        show_message=bool(row.show_message),
        request_fingerprint=row.request_fingerprint,
        payment_intent_id=row.payment_intent_id,
        charge_id=row.charge_id,
        balance_transaction_id=row.balance_transaction_id,
        fee=row.fee,
        net=row.net,
        succeeded_at=moment(row.succeeded_at),
        ended_at=moment(row.ended_at),
    )


def _lifecycle(donation: Donation) -> dict[str, Any]:
    """The columns a donation's lifecycle changes (the rest is written once, when it starts)."""
    return {
        "status": donation.status.value,
        "payment_intent_id": donation.payment_intent_id,
        "charge_id": donation.charge_id,
        "balance_transaction_id": donation.balance_transaction_id,
        "fee": donation.fee,
        "net": donation.net,
        "amount_refunded": donation.amount_refunded.amount,
        "succeeded_at": donation.succeeded_at,
        "ended_at": donation.ended_at,
    }


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
        row = {
            "id": donation.id,
            "campaign_id": donation.campaign_id,
            "amount": donation.amount.amount,
            "currency": donation.currency,
            "meals": donation.priced_meals,
            "donor_email": donation.donor.email,
            "donor_name": donation.donor.name,
            "locale": donation.donor.locale,
            "updates_opt_in": donation.updates_opt_in,
            "consent_at": donation.consent_at,
            "checkout_session_id": donation.checkout_session_id,
            "checkout_url": donation.checkout_url,
            "correlation_id": donation.correlation_id,
            "created_at": donation.created_at,
            "anonymous": donation.anonymous,
            "public_message": donation.public_message,
            "show_message": donation.show_message,
            "fee_covered": donation.fee_covered.amount,
            "request_fingerprint": donation.request_fingerprint,
            **_lifecycle(donation),
        }
        return insert_if_absent(self.conn, donations, row, key="id")

    def save(self, donation: Donation) -> None:
        """Write what the donation's lifecycle changed."""
        self.conn.execute(
            update(donations).where(donations.c.id == donation.id).values(**_lifecycle(donation))
        )


class Refunds:
    """The refunds Stripe reported, each once by its refund id."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, refund_id: str) -> Refund | None:
        """The refund remembered under this Stripe refund id, if any."""
        row = by_id(self.conn, refunds, refund_id)
        if row is None:
            return None
        return Refund(
            id=row.id,
            donation_id=row.donation_id,
            amount=row.amount,
            currency=row.currency,
            created_at=as_utc(row.created_at),
            status=row.status,
            failed_at=moment(row.failed_at),
        )

    def add(self, refund: Refund) -> bool:
        """Remember a refund; False if its id is remembered already."""
        row = {
            "id": refund.id,
            "donation_id": refund.donation_id,
            "amount": refund.amount,
            "currency": refund.currency,
            "created_at": refund.created_at,
            "status": refund.status,
            "failed_at": refund.failed_at,
        }
        return insert_if_absent(self.conn, refunds, row, key="id")

    def save(self, refund: Refund) -> None:
        """Write a refund's status (a counted refund that failed)."""
        self.conn.execute(
            update(refunds)
            .where(refunds.c.id == refund.id)
            .values(status=refund.status, failed_at=refund.failed_at)
        )


class Disputes:
    """The disputes of donations' charges, each once by its dispute id."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, dispute_id: str) -> Dispute | None:
        """The dispute remembered under this Stripe dispute id, if any."""
        row = by_id(self.conn, disputes, dispute_id)
        if row is None:
            return None
        return Dispute(
            id=row.id,
            donation_id=row.donation_id,
            amount=row.amount,
            currency=row.currency,
            opened_at=as_utc(row.opened_at),
            status=row.status,
            closed_at=moment(row.closed_at),
        )

    def add(self, dispute: Dispute) -> bool:
        """Remember an opened dispute; False if its id is remembered already."""
        row = {
            "id": dispute.id,
            "donation_id": dispute.donation_id,
            "amount": dispute.amount,
            "currency": dispute.currency,
            "status": dispute.status,
            "opened_at": dispute.opened_at,
        }
        return insert_if_absent(self.conn, disputes, row, key="id")

    def save(self, dispute: Dispute) -> None:
        """Write how a dispute ended."""
        self.conn.execute(
            update(disputes)
            .where(disputes.c.id == dispute.id)
            .values(status=dispute.status, closed_at=dispute.closed_at)
        )


class Payouts:
    """Stripe's payouts to the bank, each once by its payout id."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, payout: PayoutPaid, paid_at: datetime) -> bool:
        """Remember a payout; False if its id is remembered already."""
        row = {
            "id": payout.payout_id,
            "amount": payout.amount,
            "currency": payout.currency,
            "paid_at": paid_at,
        }
        return insert_if_absent(self.conn, payouts, row, key="id")
