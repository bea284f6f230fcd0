"""What each fact Stripe reports does to a donation: paid or unpaid checkouts, refunds (and
their failures), disputes, and payouts. Each loads the donation with a row lock, lets the
domain decide, saves what changed and publishes its events; a refund, dispute or payout id is
inserted once. A fact about a donation or payment not known yet answers "unmatched" or
"waiting" with what it waits for (webhooks.py keeps it until then)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from ..domain.donations import WAITING, Donation, DonationStatus, Outcome
from ..domain.payments import (
    NO_FACTS,
    CheckoutAwaitingPayment,
    CheckoutPaid,
    CheckoutUnpaid,
    DisputeClosed,
    DisputeOpened,
    Fact,
    NotHandled,
    PaymentFacts,
    PaymentRef,
    PayoutPaid,
    ProgrammeCheckoutPaid,
    RefundReported,
    RefundsListed,
)
from . import UnitOfWork
from .programmes import programme_paid
from .publishing import publish_donation_events, publish_payout

log = logging.getLogger(__name__)


@dataclass
class Applied:
    """What one fact did: `outcome` (what the webhook answers), the donation it is about;
    `waiting_for` keeps it until that donation, payment or dispute is known; `unlocks` are
    keys whose waiting events may now apply."""

    outcome: str
    donation_id: str | None = None
    waiting_for: str | None = None
    unlocks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Asked:
    """What Stripe's API said about a fact, asked before any transaction is open."""

    payment: PaymentFacts = NO_FACTS
    payout_transactions: tuple[str, ...] = ()


def apply_fact(
    uow: UnitOfWork, fact: Fact, asked: Asked, now: datetime, correlation_id: str | None
) -> Applied:
    """What one fact does to the donations (the one dispatch on what Stripe said)."""
    match fact:
        case CheckoutAwaitingPayment():
            # Delayed payment methods: async_payment_succeeded or _failed will follow.
            return Applied("awaiting_payment", fact.donation_id)
        case CheckoutPaid():
            return checkout_paid(uow, fact, asked.payment, now, correlation_id)
        case ProgrammeCheckoutPaid():
            paid = CheckoutPaid(
                None, fact.session_id, fact.payment_intent_id, fact.amount_total, fact.currency
            )
            outcome = programme_paid(
                uow, paid, fact.programme_id, asked.payment, now, correlation_id
            )
            return Applied(outcome)
        case CheckoutUnpaid():
            return checkout_unpaid(uow, fact, now, correlation_id)
        case RefundsListed():
            return refunds_listed(uow, fact, now, correlation_id)
        case RefundReported():
            return refund_reported(uow, fact, now, correlation_id)
        case DisputeOpened():
            return dispute_opened(uow, fact, now, correlation_id)
        case DisputeClosed():
            return dispute_closed(uow, fact, now, correlation_id)
        case PayoutPaid():
            return payout_paid(uow, fact, asked.payout_transactions, now, correlation_id)
        case NotHandled():
            return Applied("ignored")
    raise AssertionError(f"no handler for {type(fact).__name__}")


def _saved(
    uow: UnitOfWork, donation: Donation, outcome: Outcome, correlation_id: str | None
) -> None:
    """Write a donation's change and queue the events it causes."""
    uow.donations.save(donation)
    publish_donation_events(uow, outcome.events, correlation_id)


def _donation_named(uow: UnitOfWork, donation_id: str | None) -> Donation | None:
    """The donation a checkout names, locked, if it is stored yet."""
    return uow.donations.get(donation_id, lock=True) if donation_id else None


def checkout_paid(
    uow: UnitOfWork,
    paid: CheckoutPaid,
    payment: PaymentFacts,
    now: datetime,
    correlation_id: str | None,
) -> Applied:
    """A paid checkout: the donation succeeds once; what waited for it may apply now."""
    donation = _donation_named(uow, paid.donation_id)
    if donation is None:
        log.warning("stripe event for an unknown donation kept for later")
        return Applied("unmatched", paid.donation_id, waiting_for=paid.donation_id)
    outcome = donation.succeed(paid, payment, now)
    if not outcome.changed:
        if outcome.name == "amount_mismatch":
            log.error("stripe reported another amount than the donation's; not counted")
        return Applied(outcome.name, donation.id)
    if not payment.describes(donation.amount):
        log.warning("balance transaction does not match the payment; fee and net left unknown")
    _saved(uow, donation, outcome, correlation_id)
    log.info("donation succeeded", extra={"donation_id": donation.id})
    unlocks = [donation.id, paid.payment_intent_id or "", payment.charge_id or ""]
    return Applied(outcome.name, donation.id, unlocks=unlocks)


def checkout_unpaid(
    uow: UnitOfWork, unpaid: CheckoutUnpaid, now: datetime, correlation_id: str | None
) -> Applied:
    """A checkout that ended unpaid (failed or expired): a pending donation ends so, once."""
    donation = _donation_named(uow, unpaid.donation_id)
    if donation is None:
        return Applied("unmatched", unpaid.donation_id, waiting_for=unpaid.donation_id)
    outcome = donation.end_unpaid(DonationStatus(unpaid.status), unpaid.reason, now)
    if outcome.changed:
        _saved(uow, donation, outcome, correlation_id)
    return Applied(outcome.name, donation.id)


def _donation_paid_by(uow: UnitOfWork, payment: PaymentRef) -> Donation | None:
    """The donation a refund or dispute is about, locked, if it is known yet: by its payment,
    or by the donation id in the metadata once that donation is no longer pending."""
    found = uow.donations.by_payment(payment.payment_intent_id, payment.charge_id)
    if found is None and payment.donation_id:
        candidate = uow.donations.get(payment.donation_id)
        if candidate is not None and not candidate.is_pending:
            found = candidate
    # Two changes of one donation at once must add up, not overwrite each other.
    return uow.donations.get(found.id, lock=True) if found is not None else None


def refunds_listed(
    uow: UnitOfWork, charge: RefundsListed, now: datetime, correlation_id: str | None
) -> Applied:
    """charge.refunded: each refund it lists, once by its id."""
    if not charge.refunds:
        # Newer API versions leave the list out; every refund also arrives as refund.created.
        return Applied("refunds_arrive_separately")
    outcomes = [refund_reported(uow, refund, now, correlation_id) for refund in charge.refunds]
    waiting = [result for result in outcomes if result.outcome == WAITING]
    if waiting:
        # Keep the whole charge event: refunds in it already counted are skipped by refund id.
        return waiting[0]
    applied = [
        result for result in outcomes if result.outcome in ("refunded", "partially_refunded")
    ]
    return applied[-1] if applied else outcomes[-1]


def refund_reported(
    uow: UnitOfWork, refund: RefundReported, now: datetime, correlation_id: str | None
) -> Applied:
    """A refund Stripe reports: counted once if it gave money back, undone if it failed."""
    if refund.failed:
        return _refund_failed(uow, refund, now, correlation_id)
    if not refund.counts:
        # A refund still waiting for the donor's action gives nothing back yet.
        return Applied(f"refund_{refund.status}")
    known = uow.refunds.get(refund.refund_id)
    if known is not None and known.has_failed:
        # Its failure came first (webhooks are not ordered): it never counts.
        return Applied("refund_already_failed", known.donation_id)
    donation = _donation_paid_by(uow, refund.payment)
    if donation is None:
        return Applied(WAITING, waiting_for=refund.payment.key)
    outcome = donation.refund(refund, now, counted_before=known is not None)
    if outcome.name == WAITING:
        return Applied(WAITING, donation.id, waiting_for=refund.payment.key)
    if outcome.refund is None:
        if outcome.name == "refund_mismatch":
            log.error("refund does not fit its donation; not counted")
        return Applied(outcome.name, donation.id)
    if not uow.refunds.add(outcome.refund):
        return Applied("already_refunded", donation.id)
    _saved(uow, donation, outcome, correlation_id)
    return Applied(outcome.name, donation.id)


def _refund_failed(
    uow: UnitOfWork, refund: RefundReported, now: datetime, correlation_id: str | None
) -> Applied:
    """A refund failed or was canceled at Stripe: the money never went back to the donor.
    Counted already, it is undone once and announced; not counted yet, it is remembered so
    that it never counts."""
    known = uow.refunds.get(refund.refund_id)
    if known is None:
        paid = _donation_paid_by(uow, refund.payment)
        if paid is None:
            # Remembered only against a known donation: wait for it, like the refund would.
            return Applied(WAITING, waiting_for=refund.payment.key)
        if uow.refunds.add(paid.refuse_refund(refund, now)):
            return Applied(f"refund_{refund.status}", paid.id)
        known = uow.refunds.get(refund.refund_id)
        assert known is not None  # another transaction inserted it just now
    if known.has_failed:
        return Applied("refund_already_failed", known.donation_id)
    donation = uow.donations.get(known.donation_id, lock=True)
    assert donation is not None  # refunds reference donations by foreign key
    # Read again under the donation's lock: a concurrent failure of it may have committed.
    counted = uow.refunds.get(refund.refund_id)
    assert counted is not None
    outcome = donation.reverse_refund(counted, refund, now)
    if outcome.refund is None:
        return Applied(outcome.name, donation.id)
    uow.refunds.save(outcome.refund)
    _saved(uow, donation, outcome, correlation_id)
    log.warning("counted refund failed at Stripe; reversed", extra={"donation_id": donation.id})
    return Applied(outcome.name, donation.id)


def dispute_opened(
    uow: UnitOfWork, dispute: DisputeOpened, now: datetime, correlation_id: str | None
) -> Applied:
    """The donor's bank disputes a paid donation's charge: it is disputed, once."""
    donation = _donation_paid_by(uow, dispute.payment)
    if donation is None:
        return Applied(WAITING, waiting_for=dispute.payment.key)
    outcome = donation.open_dispute(dispute, now)
    if outcome.dispute is None:  # not paid yet
        return Applied(WAITING, donation.id, waiting_for=dispute.payment.key)
    if not uow.disputes.add(outcome.dispute):
        return Applied("already_disputed", donation.id)
    _saved(uow, donation, outcome, correlation_id)
    return Applied(outcome.name, donation.id, unlocks=[dispute.dispute_id])


def dispute_closed(
    uow: UnitOfWork, dispute: DisputeClosed, now: datetime, correlation_id: str | None
) -> Applied:
    """A dispute won or lost, once; one closed before it was seen opening waits for it."""
    if not dispute.ended:
        return Applied(f"dispute_{dispute.status}")
    opened = uow.disputes.get(dispute.dispute_id)
    if opened is None:
        # Its opening has not been applied yet (or not received): wait for it.
        return Applied(WAITING, waiting_for=dispute.dispute_id)
    donation = uow.donations.get(opened.donation_id, lock=True)
    # Read again under the donation's lock: a concurrent close of it may have committed.
    current = uow.disputes.get(dispute.dispute_id)
    if donation is None or current is None:
        return Applied("already_closed", opened.donation_id)
    outcome = donation.close_dispute(current, dispute, now)
    if outcome.dispute is None:
        return Applied(outcome.name, donation.id)
    uow.disputes.save(outcome.dispute)
    _saved(uow, donation, outcome, correlation_id)
    return Applied(outcome.name, donation.id)


def payout_paid(
    uow: UnitOfWork,
    payout: PayoutPaid,
    transactions: tuple[str, ...],
    now: datetime,
    correlation_id: str | None,
) -> Applied:
    """Stripe paid money out: announced once, with the balance transactions it settles."""
    if not uow.payouts.add(payout, now):
        return Applied("already_paid_out")
    publish_payout(uow, payout, transactions, now, correlation_id)
    return Applied("payout_paid")
