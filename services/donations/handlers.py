"""One function per thing that happens to donations: load, apply the rules, save, and write
the resulting events to the outbox in the same transaction."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from services.shared.db import insert_if_absent
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import (
    CAMPAIGN_CLOSED,
    CAMPAIGN_PUBLISHED,
    CAMPAIGNS_TOPIC,
    DISPUTE_CLOSED,
    DISPUTE_OPENED,
    DONATION_FAILED,
    DONATION_REFUND_FAILED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    DONATIONS_TOPIC,
    MEAL_PRICE_CHANGED,
    PAYOUT_PAID,
    UPDATE_PUBLISHED,
    InvalidEventData,
)
from services.shared.money import Money
from services.shared.outbox import add_to_outbox

from . import store
from .domain import (
    REFUNDABLE,
    Campaign,
    CampaignRuleBroken,
    CampaignStatus,
    DonationStatus,
    GiftLimits,
    GiftRefused,
    ProcessingFee,
    check_meal_price_change,
    derived_event_id,
    donation_id_for_retry,
    meals_in,
    price_gift,
    succeeded_event_id,
)
from .markdown_text import render_markdown
from .payments import NO_FACTS, PaymentFacts, StripeCheckout
from .stripe_events import (
    CheckoutAwaitingPayment,
    CheckoutPaid,
    CheckoutUnpaid,
    DisputeClosed,
    DisputeOpened,
    Fact,
    PaymentRef,
    PayoutPaid,
    RefundReported,
    RefundsListed,
    StripeEvent,
    UnreadableEvent,
    keepable_text,
    read_parsed,
)

log = logging.getLogger(__name__)

SOURCE = "difts/donations"


class UnknownCampaign(LookupError):
    """No campaign has this slug."""


@dataclass(frozen=True)
class Gift:
    """A donor's request to give, as validated at the edge."""

    campaign_slug: str
    amount: int | None
    meals: int | None
    currency: str | None
    donor_email: str
    donor_name: str
    locale: str
    updates_opt_in: bool
    correlation_id: str | None
    anonymous: bool = False
    public_message: str | None = None
    show_message: bool = False
    cover_fee: bool = False
    idempotency_key: str | None = None


class IdempotencyConflict(ValueError):
    """An Idempotency-Key reused for a different request."""


class Balance(Protocol):
    """What the webhook handlers ask Stripe's balance about (payments.StripeBalance)."""

    def payment_facts(self, payment_intent_id: str | None) -> PaymentFacts: ...

    def payout_transactions(self, payout_id: str) -> list[str]: ...


def _fingerprint(gift: Gift) -> str:
    """What a request asked for, so a retry under the same key can be told from a new one."""
    asked = [
        gift.campaign_slug,
        gift.amount,
        gift.meals,
        gift.currency,
        gift.donor_email,
        gift.donor_name,
        gift.updates_opt_in,
        gift.anonymous,
        gift.public_message,
        gift.show_message,
        gift.cover_fee,
    ]
    return hashlib.sha256(json.dumps(asked).encode()).hexdigest()


def _answer(row: Any, campaign_slug: str) -> dict[str, Any]:
    return {**row._asdict(), "campaign": campaign_slug}


def start_donation(
    engine: Engine,
    checkout: StripeCheckout,
    limits: GiftLimits,
    gift: Gift,
    public_url: str,
    fee: ProcessingFee | None = None,
    balance: Balance | None = None,
) -> dict[str, Any]:
    """Price the gift, open a Stripe Checkout Session, and store the pending donation.

    Stripe is called before anything is stored, so a refused gift or an unreachable Stripe
    leaves no trace; the session's idempotency key comes from the donation id. With an
    Idempotency-Key the donation id is derived from it, so a retry finds the first answer.
    """
    fingerprint = _fingerprint(gift) if gift.idempotency_key else None
    donation_id = (
        donation_id_for_retry(gift.idempotency_key, gift.campaign_slug)
        if gift.idempotency_key
        else str(uuid.uuid4())
    )
    with engine.connect() as conn:
        campaign = store.campaign_by_slug(conn, gift.campaign_slug)
        earlier = store.donation_row(conn, donation_id) if gift.idempotency_key else None
    if campaign is None:
        raise UnknownCampaign(gift.campaign_slug)
    if earlier is not None:
        if earlier.request_fingerprint != fingerprint:
            raise IdempotencyConflict("this Idempotency-Key was used for another request")
        return _answer(earlier, campaign.slug)
    given = price_gift(
        campaign, limits, amount=gift.amount, meals=gift.meals, currency=gift.currency
    )
    fee_covered = fee.to_cover(given) if gift.cover_fee and fee else Money.zero(given.currency)
    total = given + fee_covered
    if total.amount > limits.max_amount:
        raise GiftRefused("cover_fee", "with the fee added the gift is above the largest gift")
    session = checkout.create_session(
        donation_id=donation_id,
        campaign_id=campaign.id,
        campaign_title=campaign.title,
        gift=total,
        fee_covered=fee_covered,
        donor_email=gift.donor_email,
        success_url=f"{public_url}/donations/{donation_id}/thanks",
        cancel_url=f"{public_url}/donations/{donation_id}/canceled",
    )
    now = datetime.now(UTC)
    row = {
        "id": donation_id,
        "campaign_id": campaign.id,
        "amount": total.amount,
        "currency": total.currency,
        "meals": gift.meals if gift.meals is not None else meals_in(given, campaign.meal_price),
        "donor_email": gift.donor_email,
        "donor_name": gift.donor_name,
        "locale": gift.locale,
        "updates_opt_in": gift.updates_opt_in,
        "consent_at": now if gift.updates_opt_in else None,
        "status": DonationStatus.PENDING.value,
        "checkout_session_id": session.id,
        "checkout_url": session.url,
        "correlation_id": gift.correlation_id,
        "created_at": now,
        "anonymous": gift.anonymous,
        "public_message": gift.public_message or None,
        "show_message": bool(gift.show_message and gift.public_message),
        "fee_covered": fee_covered.amount,
        "request_fingerprint": fingerprint,
    }
    try:
        with engine.begin() as conn:
            conn.execute(store.donations.insert().values(**row))
            # A Stripe event that came before this row was written can be applied now.
            _replay_waiting(conn, [donation_id], balance, gift.correlation_id)
    except IntegrityError:
        # Two requests with one Idempotency-Key raced: the first one's answer stands.
        with engine.connect() as conn:
            first = store.donation_row(conn, donation_id)
        if first is None or first.request_fingerprint != fingerprint:
            raise
        return _answer(first, campaign.slug)
    log.info("donation started", extra={"donation_id": donation_id, "campaign": campaign.slug})
    return {**row, "campaign": campaign.slug}


def cancel_donation(engine: Engine, donation_id: str) -> str | None:
    """The donor left Stripe's page: a still-pending donation becomes canceled (a paid
    checkout that still arrives wins over it). Returns the donation's status, if it exists."""
    with engine.begin() as conn:
        row = store.donation_row(conn, donation_id)
        if row is None:
            return None
        now = datetime.now(UTC)
        if not store.end_unpaid(conn, donation_id, DonationStatus.CANCELED, now):
            return str(row.status)
        data = {
            "donation_id": row.id,
            "campaign_id": row.campaign_id,
            "status": DonationStatus.CANCELED.value,
            "reason": "the donor left the checkout page",
            "failed_at": now.isoformat(),
        }
        _publish_donation_event(
            conn,
            row,
            DONATION_FAILED,
            data,
            derived_event_id(row.id, DonationStatus.CANCELED.value),
            row.correlation_id,
        )
        return DonationStatus.CANCELED.value


# --- Stripe webhooks ------------------------------------------------------------------------

_KEPT_OUTCOMES = ("unmatched", "waiting")


@dataclass
class _Result:
    """What one Stripe event did; `waiting_for` keeps it until that donation, payment or
    dispute is known; `unlocks` are keys whose waiting events may now apply."""

    outcome: str
    donation_id: str | None = None
    waiting_for: str | None = None
    unlocks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Asked:
    """What Stripe's API said about an event, asked before any transaction is open."""

    payment: PaymentFacts = NO_FACTS
    payout_transactions: tuple[str, ...] = ()


def _ask_stripe(fact: Fact, balance: Balance | None) -> _Asked:
    """Ask Stripe's balance what a fact needs; an answer we cannot get is left unknown (the
    fee of a payment travels null, a payout lists no transactions)."""
    if balance is None:
        return _Asked()
    try:
        if isinstance(fact, CheckoutPaid):
            return _Asked(payment=balance.payment_facts(fact.payment_intent_id))
        if isinstance(fact, PayoutPaid):
            return _Asked(payout_transactions=tuple(balance.payout_transactions(fact.payout_id)))
    except Exception:  # noqa: BLE001 - Stripe's answer is extra detail, never a reason to fail
        log.warning("could not ask Stripe about a %s; left unknown", type(fact).__name__)
    return _Asked()


def _unreadable_because(error: Exception) -> str | None:
    """Why a signed event could not be applied, if the event is at fault (then it is kept as
    unreadable); None for database trouble, which must be retried."""
    if isinstance(error, InvalidEventData):
        return f"no difts event can carry it: {error}"
    if isinstance(error, DataError | IntegrityError):
        return f"the database refused a value of it: {type(error.orig).__name__}"
    if isinstance(error, DBAPIError):
        return None
    return f"it could not be applied: {type(error).__name__}: {error}"


def apply_stripe_event(
    engine: Engine,
    event: StripeEvent,
    correlation_id: str | None,
    balance: Balance | None = None,
) -> str:
    """Apply one verified Stripe event at most once (by Stripe's event id); return what
    became of it. An event that follows one not yet seen is kept and applied once it can be;
    one that cannot be applied at all is kept as unreadable, with the reason."""
    asked = _ask_stripe(event.fact, balance)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if not store.record_stripe_event(conn, event.id, event.type, now):
            return "duplicate"
        try:
            with conn.begin_nested():
                result = _apply(conn, event.fact, asked, now, correlation_id)
        except Exception as error:
            reason = _unreadable_because(error)
            if reason is None:
                raise
            log.exception("signed stripe event %s kept as unreadable: %s", event.type, reason)
            store.keep_unreadable(conn, event.id, json.dumps(event.payload), reason)
            return "unreadable"
        _settle(conn, event, result)
        if result.unlocks:
            _replay_waiting(conn, result.unlocks, balance, correlation_id)
    log.info("stripe event applied", extra={"stripe_type": event.type, "outcome": result.outcome})
    return result.outcome


def keep_unreadable_event(engine: Engine, payload: bytes, error: UnreadableEvent) -> str:
    """Keep a signed body that is not a Stripe event we can read, for a person to look at,
    under its own id when it has one (so Stripe's retries are duplicates), else under an id
    derived from the body. Nothing else changes. Returns the id it is kept under."""
    event_id = error.event_id or "unreadable_" + hashlib.sha256(payload).hexdigest()[:40]
    with engine.begin() as conn:
        fresh = store.record_stripe_event(
            conn, event_id, error.event_type or "unknown", datetime.now(UTC)
        )
        if fresh:
            store.keep_unreadable(conn, event_id, keepable_text(payload), error.reason)
    log.warning("signed stripe body kept as unreadable: %s", error.reason)
    return event_id


def _settle(conn: Connection, event: StripeEvent, result: _Result) -> None:
    keep = result.outcome in _KEPT_OUTCOMES
    store.set_stripe_event_outcome(
        conn,
        event.id,
        result.outcome,
        result.donation_id,
        json.dumps(event.payload) if keep else None,
        result.waiting_for if keep else None,
    )


def _replay_waiting(
    conn: Connection, keys: list[str], balance: Balance | None, correlation_id: str | None
) -> None:
    """Apply the kept events that were waiting for one of `keys`, oldest first; what they
    unlock in turn is replayed too."""
    pending = [key for key in keys if key]
    seen: set[str] = set()
    while pending:
        key = pending.pop(0)
        if key in seen:
            continue
        seen.add(key)
        for row in store.waiting_events(conn, [key]):
            result = _retry_kept(conn, row, balance, correlation_id)
            if result is not None:
                pending.extend(result.unlocks)


def _retry_kept(
    conn: Connection, row: Any, balance: Balance | None, correlation_id: str | None
) -> _Result | None:
    """Apply one kept event again; None if it still waits for the same thing (or could not
    be applied, and is now kept as unreadable)."""
    try:
        event = read_parsed(json.loads(row.payload))
        with conn.begin_nested():
            result = _apply(
                conn,
                event.fact,
                _ask_stripe(event.fact, balance),
                datetime.now(UTC),
                correlation_id,
            )
    except Exception as error:
        reason = error.reason if isinstance(error, UnreadableEvent) else _unreadable_because(error)
        if reason is None:
            raise
        log.error("kept stripe event %s is unreadable now: %s", row.id, reason)
        store.keep_unreadable(conn, row.id, row.payload, reason)
        return None
    if result.outcome in _KEPT_OUTCOMES and result.waiting_for == row.waiting_for:
        return None  # still waiting for the same thing: leave it as it is
    _settle(conn, event, result)
    return result


def apply_kept_events(engine: Engine, balance: Balance | None = None, limit: int = 200) -> int:
    """Try every kept event again, each in its own transaction; return how many applied.

    The worker runs this now and then, so an event kept while the one it follows was being
    committed in a concurrent request is not left waiting for ever."""
    with engine.connect() as conn:
        kept = store.kept_event_ids(conn, _KEPT_OUTCOMES, limit)
    applied = 0
    for event_id in kept:
        with engine.begin() as conn:
            row = store.lock_kept_event(conn, event_id, _KEPT_OUTCOMES)
            if row is None:
                continue
            result = _retry_kept(conn, row, balance, None)
            if result is not None:
                applied += 1
                _replay_waiting(conn, result.unlocks, balance, None)
    return applied


def _apply(
    conn: Connection, fact: Fact, asked: _Asked, now: datetime, correlation_id: str | None
) -> _Result:
    """What one fact does to the donations (the one dispatch on what Stripe said)."""
    if isinstance(fact, CheckoutAwaitingPayment):
        # Delayed payment methods: async_payment_succeeded or _failed will follow.
        return _Result("awaiting_payment", fact.donation_id)
    if isinstance(fact, CheckoutPaid):
        return _checkout_paid(conn, fact, asked.payment, now, correlation_id)
    if isinstance(fact, CheckoutUnpaid):
        return _checkout_unpaid(conn, fact, now, correlation_id)
    if isinstance(fact, RefundsListed):
        return _charge_refunded(conn, fact, now, correlation_id)
    if isinstance(fact, RefundReported):
        return _refund(conn, fact, now, correlation_id)
    if isinstance(fact, DisputeOpened):
        return _dispute_opened(conn, fact, now, correlation_id)
    if isinstance(fact, DisputeClosed):
        return _dispute_closed(conn, fact, now, correlation_id)
    if isinstance(fact, PayoutPaid):
        return _payout_paid(conn, fact, asked.payout_transactions, now, correlation_id)
    return _Result("ignored")


def _checkout_paid(
    conn: Connection,
    session: CheckoutPaid,
    payment: PaymentFacts,
    now: datetime,
    correlation_id: str | None,
) -> _Result:
    donation_id = session.donation_id
    donation = store.donation_row(conn, donation_id) if donation_id else None
    if donation is None:
        log.warning("stripe event for an unknown donation kept for later")
        return _Result("unmatched", donation_id, waiting_for=donation_id)
    if not _amount_matches(session, donation):
        log.error("stripe reported another amount than the donation's; not counted")
        return _Result("amount_mismatch", donation.id)
    intent = session.payment_intent_id
    fee, net = payment.fee, payment.net
    if payment.amount is not None and (
        payment.amount != donation.amount or payment.currency != donation.currency
    ):
        # The balance transaction is not this payment's (stripe-mock answers every question
        # with one fixture): a fee that does not belong to the gift must not be booked.
        log.warning("balance transaction does not match the payment; fee and net left unknown")
        fee, net = None, None
    paid = {
        "charge_id": payment.charge_id,
        "balance_transaction_id": payment.balance_transaction_id,
        "fee": fee,
        "net": net,
    }
    if not store.mark_succeeded(conn, donation.id, intent, now, paid):
        return _Result(f"already_{donation.status}", donation.id)
    campaign = store.campaign_by_id(conn, donation.campaign_id)
    assert campaign is not None  # donations reference campaigns by foreign key
    succeeded = store.donation_row(conn, donation.id)
    add_to_outbox(
        conn,
        store.outbox,
        DONATIONS_TOPIC,
        campaign.id,
        _succeeded_event(
            succeeded, campaign, session, now, donation.correlation_id or correlation_id
        ),
    )
    log.info("donation succeeded", extra={"donation_id": donation.id})
    return _Result(
        "succeeded", donation.id, unlocks=[donation.id, intent or "", payment.charge_id or ""]
    )


def _checkout_unpaid(
    conn: Connection, session: CheckoutUnpaid, now: datetime, correlation_id: str | None
) -> _Result:
    donation_id = session.donation_id
    donation = store.donation_row(conn, donation_id) if donation_id else None
    if donation is None:
        return _Result("unmatched", donation_id, waiting_for=donation_id)
    status = DonationStatus(session.status)
    if not store.end_unpaid(conn, donation.id, status, now):
        return _Result(f"already_{donation.status}", donation.id)
    data = {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "status": status.value,
        "reason": session.reason,
        "failed_at": now.isoformat(),
    }
    _publish_donation_event(
        conn,
        donation,
        DONATION_FAILED,
        data,
        derived_event_id(donation.id, status.value),
        correlation_id,
    )
    return _Result(status.value, donation.id)


def _publish_donation_event(
    conn: Connection,
    donation: Any,
    event_type: str,
    data: dict[str, Any],
    event_id: str,
    correlation_id: str | None,
) -> None:
    add_to_outbox(
        conn,
        store.outbox,
        DONATIONS_TOPIC,
        donation.campaign_id,
        new_event(
            event_type,
            SOURCE,
            data,
            subject=f"donations/{donation.id}",
            correlation_id=donation.correlation_id or correlation_id,
            event_id=event_id,
        ),
    )


def _donation_of_payment(conn: Connection, payment: PaymentRef) -> Any | None:
    """The donation a refund or dispute is about, if it is known yet."""
    donation = store.donation_by_payment(conn, payment.payment_intent_id, payment.charge_id)
    if donation is None and payment.donation_id:
        candidate = store.donation_row(conn, payment.donation_id)
        if candidate is not None and candidate.status != DonationStatus.PENDING.value:
            donation = candidate
    return donation


def _charge_refunded(
    conn: Connection, charge: RefundsListed, now: datetime, correlation_id: str | None
) -> _Result:
    if not charge.refunds:
        # Newer API versions leave the list out; every refund also arrives as refund.created.
        return _Result("refunds_arrive_separately")
    outcomes = [_refund(conn, refund, now, correlation_id) for refund in charge.refunds]
    waiting = [result for result in outcomes if result.outcome == "waiting"]
    if waiting:
        # Keep the whole charge event: refunds in it already counted are skipped by refund id.
        return waiting[0]
    applied = [
        result for result in outcomes if result.outcome in ("refunded", "partially_refunded")
    ]
    return applied[-1] if applied else outcomes[-1]


def _refund(
    conn: Connection, refund: RefundReported, now: datetime, correlation_id: str | None
) -> _Result:
    refund_id = refund.refund_id
    if refund.failed:
        return _refund_failed(conn, refund, now, correlation_id)
    if not refund.counts:
        # A refund still waiting for the donor's action gives nothing back yet.
        return _Result(f"refund_{refund.status}")
    known = store.refund_row(conn, refund_id)
    if known is not None and known.status == store.REFUND_FAILED:
        # Its failure came first (webhooks are not ordered): it never counts.
        return _Result("refund_already_failed", known.donation_id)
    donation = _donation_of_payment(conn, refund.payment)
    if donation is not None:
        # Two refunds of one donation at once must add up, not overwrite each other.
        donation = store.donation_row(conn, donation.id, lock=True)
    if donation is None or DonationStatus(donation.status) not in REFUNDABLE:
        return _Result("waiting", donation.id if donation else None, waiting_for=refund.payment.key)
    if known is not None:
        # charge.refunded and refund.* describe the same refund: counted once, by its id.
        return _Result("already_refunded", donation.id)
    currency = refund.currency or donation.currency
    amount = refund.amount
    if currency != donation.currency or donation.amount_refunded + amount > donation.amount:
        log.error("refund does not fit its donation; not counted")
        return _Result("refund_mismatch", donation.id)
    row = {
        "id": refund_id,
        "donation_id": donation.id,
        "amount": amount,
        "currency": currency,
        "created_at": now,
        "status": store.REFUND_COUNTED,
    }
    if not insert_if_absent(conn, store.refunds, row, key="id"):
        return _Result("already_refunded", donation.id)
    total = donation.amount_refunded + amount
    fully = total >= donation.amount
    store.set_donation(
        conn,
        donation.id,
        amount_refunded=total,
        status=DonationStatus.REFUNDED.value if fully else donation.status,
    )
    campaign = store.campaign_by_id(conn, donation.campaign_id)
    data = {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "campaign_slug": campaign.slug if campaign else "",
        "campaign_title": campaign.title if campaign else "",
        "refund_id": refund_id,
        "charge_id": refund.payment.charge_id or donation.charge_id,
        "amount": amount,
        "currency": currency,
        "total_refunded": total,
        "fully_refunded": fully,
        "fee_refunded": 0,
        "balance_transaction_id": refund.balance_transaction_id,
        "donor": {
            "email": donation.donor_email,
            "name": donation.donor_name,
            "locale": donation.locale,
        },
        "refunded_at": now.isoformat(),
    }
    _publish_donation_event(
        conn,
        donation,
        DONATION_REFUNDED,
        data,
        derived_event_id(refund_id, "refunded"),
        correlation_id,
    )
    return _Result("refunded" if fully else "partially_refunded", donation.id)


def _refund_failed(
    conn: Connection, refund: RefundReported, now: datetime, correlation_id: str | None
) -> _Result:
    """A refund failed or was canceled at Stripe: the money never went back to the donor.
    Counted already, it is undone once (amount_refunded, a refunded donation back to
    succeeded) and announced; not counted yet, it is remembered so that it never counts."""
    refund_id = refund.refund_id
    known = store.refund_row(conn, refund_id)
    if known is None:
        donation = _donation_of_payment(conn, refund.payment)
        if donation is None:
            # Remembered only against a known donation: wait for it, like the refund would.
            return _Result("waiting", waiting_for=refund.payment.key)
        row = {
            "id": refund_id,
            "donation_id": donation.id,
            "amount": refund.amount,
            "currency": refund.currency or donation.currency,
            "created_at": now,
            "status": store.REFUND_FAILED,
            "failed_at": now,
        }
        if insert_if_absent(conn, store.refunds, row, key="id"):
            return _Result(f"refund_{refund.status}", donation.id)
        known = store.refund_row(conn, refund_id)
        assert known is not None  # another transaction inserted it just now
    if known.status == store.REFUND_FAILED:
        return _Result("refund_already_failed", known.donation_id)
    # Two changes of one donation at once must not overwrite each other.
    donation = store.donation_row(conn, known.donation_id, lock=True)
    assert donation is not None  # refunds reference donations by foreign key
    if not store.mark_refund_failed(conn, refund_id, now):
        return _Result("refund_already_failed", donation.id)
    total = max(0, donation.amount_refunded - known.amount)
    back_to = (
        DonationStatus.SUCCEEDED.value
        if donation.status == DonationStatus.REFUNDED.value
        else donation.status
    )
    store.set_donation(conn, donation.id, amount_refunded=total, status=back_to)
    campaign = store.campaign_by_id(conn, donation.campaign_id)
    data = {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "campaign_slug": campaign.slug if campaign else "",
        "refund_id": refund_id,
        "amount": known.amount,
        "currency": known.currency,
        "total_refunded": total,
        "balance_transaction_id": refund.failure_balance_transaction_id,
        "failed_at": now.isoformat(),
    }
    _publish_donation_event(
        conn,
        donation,
        DONATION_REFUND_FAILED,
        data,
        derived_event_id(refund_id, "refund_failed"),
        correlation_id,
    )
    log.warning("counted refund failed at Stripe; reversed", extra={"donation_id": donation.id})
    return _Result("refund_reversed", donation.id)


def _dispute_opened(
    conn: Connection, dispute: DisputeOpened, now: datetime, correlation_id: str | None
) -> _Result:
    dispute_id = dispute.dispute_id
    donation = _donation_of_payment(conn, dispute.payment)
    if donation is None or DonationStatus(donation.status) not in REFUNDABLE:
        return _Result(
            "waiting", donation.id if donation else None, waiting_for=dispute.payment.key
        )
    currency = dispute.currency or donation.currency
    row = {
        "id": dispute_id,
        "donation_id": donation.id,
        "amount": dispute.amount,
        "currency": currency,
        "status": "open",
        "opened_at": now,
    }
    if not insert_if_absent(conn, store.disputes, row, key="id"):
        return _Result("already_disputed", donation.id)
    store.set_donation(conn, donation.id, status=DonationStatus.DISPUTED.value)
    campaign = store.campaign_by_id(conn, donation.campaign_id)
    data = {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "campaign_slug": campaign.slug if campaign else "",
        "dispute_id": dispute_id,
        "charge_id": dispute.payment.charge_id or donation.charge_id,
        "amount": dispute.amount,
        "currency": currency,
        "fee": dispute.fees.withdrawn,
        "reason": dispute.reason,
        "balance_transaction_id": dispute.fees.balance_transaction_id,
        "opened_at": now.isoformat(),
    }
    _publish_donation_event(
        conn, donation, DISPUTE_OPENED, data, derived_event_id(dispute_id, "opened"), correlation_id
    )
    return _Result("dispute_opened", donation.id, unlocks=[dispute_id])


def _dispute_closed(
    conn: Connection, dispute: DisputeClosed, now: datetime, correlation_id: str | None
) -> _Result:
    dispute_id, status = dispute.dispute_id, dispute.status
    if status not in ("won", "lost"):
        return _Result(f"dispute_{status}")
    opened = store.dispute_row(conn, dispute_id)
    if opened is None:
        # Its opening has not been applied yet (or not received): wait for it.
        return _Result("waiting", waiting_for=dispute_id)
    donation = store.donation_row(conn, opened.donation_id)
    if not store.close_dispute(conn, dispute_id, status, now) or donation is None:
        return _Result("already_closed", opened.donation_id)
    if status == "won" and donation.status == DonationStatus.DISPUTED.value:
        back = (
            DonationStatus.REFUNDED
            if donation.amount_refunded >= donation.amount
            else DonationStatus.SUCCEEDED
        )
        store.set_donation(conn, donation.id, status=back.value)
    campaign = store.campaign_by_id(conn, donation.campaign_id)
    data = {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "campaign_slug": campaign.slug if campaign else "",
        "dispute_id": dispute_id,
        "charge_id": dispute.charge_id or donation.charge_id,
        "status": status,
        "amount": opened.amount,
        "currency": opened.currency,
        "amount_reinstated": opened.amount if status == "won" else 0,
        "fee_reinstated": dispute.fees.reinstated if status == "won" else 0,
        "balance_transaction_id": dispute.fees.balance_transaction_id,
        "closed_at": now.isoformat(),
    }
    _publish_donation_event(
        conn, donation, DISPUTE_CLOSED, data, derived_event_id(dispute_id, "closed"), correlation_id
    )
    return _Result(f"dispute_{status}", donation.id)


def _payout_paid(
    conn: Connection,
    payout: PayoutPaid,
    transactions: tuple[str, ...],
    now: datetime,
    correlation_id: str | None,
) -> _Result:
    payout_id = payout.payout_id
    row = {"id": payout_id, "amount": payout.amount, "currency": payout.currency, "paid_at": now}
    if not insert_if_absent(conn, store.payouts, row, key="id"):
        return _Result("already_paid_out")
    data = {
        "payout_id": payout_id,
        "amount": payout.amount,
        "currency": payout.currency,
        "arrival_date": (payout.arrival_at or now).isoformat(),
        "balance_transaction_ids": list(transactions),
        "paid_at": now.isoformat(),
    }
    add_to_outbox(
        conn,
        store.outbox,
        DONATIONS_TOPIC,
        payout_id,
        new_event(
            PAYOUT_PAID,
            SOURCE,
            data,
            subject=f"payouts/{payout_id}",
            correlation_id=correlation_id,
            event_id=derived_event_id(payout_id, "paid"),
        ),
    )
    return _Result("payout_paid")


def _amount_matches(session: CheckoutPaid, donation: Any) -> bool:
    total = session.amount_total
    return total is None or (
        total == donation.amount and session.currency in (None, donation.currency)
    )


def _succeeded_event(
    donation: Any,
    campaign: Campaign,
    session: CheckoutPaid,
    now: datetime,
    correlation_id: str | None,
) -> CloudEvent:
    data = {
        "donation_id": donation.id,
        "campaign_id": campaign.id,
        "campaign_slug": campaign.slug,
        "campaign_title": campaign.title,
        "campaign_cause": campaign.cause,
        "amount": donation.amount,
        "currency": donation.currency,
        "meal_price": campaign.meal_price.amount,
        "fee_covered": donation.fee_covered,
        "fee": donation.fee,
        "net": donation.net,
        "donor": {
            "email": donation.donor_email,
            "name": donation.donor_name,
            "locale": donation.locale,
        },
        "anonymous": bool(donation.anonymous),
        "updates_opt_in": donation.updates_opt_in,
        "consent_at": _aware(donation.consent_at).isoformat() if donation.consent_at else None,
        "checkout_session_id": session.session_id,
        "payment_intent_id": donation.payment_intent_id,
        "charge_id": donation.charge_id,
        "balance_transaction_id": donation.balance_transaction_id,
        "succeeded_at": now.isoformat(),
    }
    return new_event(
        DONATION_SUCCEEDED,
        SOURCE,
        data,
        subject=f"donations/{donation.id}",
        correlation_id=correlation_id,
        event_id=succeeded_event_id(donation.id),
    )


# --- Campaigns and news posts ---------------------------------------------------------------

CAMPAIGN_FIELDS = (
    "title",
    "cause",
    "cause_certified",
    "action_zone",
    "summary",
    "story_markdown",
    "money_uses",
    "goal_meals",
)


class UnknownPost(LookupError):
    """No news post has this id."""


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _campaign_event(campaign: Campaign) -> CloudEvent:
    """difts.campaign.published.v1: a campaign's public facts as they are now."""
    return new_event(
        CAMPAIGN_PUBLISHED,
        SOURCE,
        {
            "campaign_id": campaign.id,
            "slug": campaign.slug,
            "title": campaign.title,
            "cause": campaign.cause,
            "currency": campaign.meal_price.currency,
            "meal_price": campaign.meal_price.amount,
            "goal_meals": campaign.goal_meals,
            "status": campaign.status.value,
            "action_zone": campaign.action_zone,
            "summary": campaign.summary,
        },
        subject=f"campaigns/{campaign.id}",
    )


def _announce(conn: Connection, campaign: Campaign, event: CloudEvent) -> None:
    add_to_outbox(conn, store.outbox, CAMPAIGNS_TOPIC, campaign.id, event)


def _require_campaign(conn: Connection, slug: str) -> Campaign:
    campaign = store.campaign_by_slug(conn, slug)
    if campaign is None:
        raise UnknownCampaign(slug)
    return campaign


def create_campaign(
    engine: Engine, *, slug: str, meal_price: Money, values: dict[str, Any]
) -> Campaign:
    """Write a draft campaign; nothing is announced until it is published."""
    with engine.begin() as conn:
        if store.campaign_by_slug(conn, slug) is not None:
            raise CampaignRuleBroken("slug", f"a campaign with slug {slug!r} exists")
        campaign_id = str(uuid.uuid4())
        row = {key: values[key] for key in CAMPAIGN_FIELDS if key in values}
        if "money_uses" in row:
            row["money_uses"] = json.dumps(list(row["money_uses"]))
        conn.execute(
            store.campaigns.insert().values(
                id=campaign_id,
                slug=slug,
                currency=meal_price.currency,
                meal_price=meal_price.amount,
                status=CampaignStatus.DRAFT.value,
                created_at=datetime.now(UTC),
                **{"summary": "", **row},
            )
        )
        campaign = store.campaign_by_id(conn, campaign_id)
    assert campaign is not None
    return campaign


def edit_campaign(engine: Engine, slug: str, changes: dict[str, Any]) -> Campaign:
    """Change a campaign's texts and goal (and a draft's meal price); a live campaign's new
    facts are announced. A live meal price changes only through change_meal_price."""
    with engine.begin() as conn:
        campaign = _require_campaign(conn, slug)
        if campaign.status is CampaignStatus.CLOSED:
            raise CampaignRuleBroken("campaign", f"campaign {slug!r} is closed")
        row = {key: changes[key] for key in CAMPAIGN_FIELDS if key in changes}
        if "money_uses" in row:
            row["money_uses"] = json.dumps(list(row["money_uses"]))
        if "meal_price" in changes:
            if campaign.status is not CampaignStatus.DRAFT:
                raise CampaignRuleBroken(
                    "meal_price",
                    "a live campaign's meal price changes from a date: POST .../meal-price",
                )
            row["meal_price"] = changes["meal_price"]
        if "currency" in changes:
            if campaign.status is not CampaignStatus.DRAFT:
                raise CampaignRuleBroken("currency", "a live campaign keeps its currency")
            row["currency"] = changes["currency"]
        if row:
            conn.execute(
                update(store.campaigns).where(store.campaigns.c.id == campaign.id).values(**row)
            )
        updated = store.campaign_by_id(conn, campaign.id)
        assert updated is not None
        if updated.status is CampaignStatus.LIVE and row:
            _announce(conn, updated, _campaign_event(updated))
    return updated


def go_live(engine: Engine, slug: str) -> Campaign:
    """Publish a draft campaign: it takes gifts from now and is announced."""
    with engine.begin() as conn:
        campaign = _require_campaign(conn, slug)
        if not campaign.can_publish():
            raise CampaignRuleBroken("status", f"campaign {slug!r} is {campaign.status.value}")
        conn.execute(
            update(store.campaigns)
            .where(store.campaigns.c.id == campaign.id)
            .values(status=CampaignStatus.LIVE.value, published_at=datetime.now(UTC))
        )
        live = store.campaign_by_id(conn, campaign.id)
        assert live is not None
        _announce(conn, live, _campaign_event(live))
    return live


def close_campaign(engine: Engine, slug: str) -> Campaign:
    """Stop a live campaign taking gifts, and announce it."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        campaign = _require_campaign(conn, slug)
        if not campaign.can_close():
            raise CampaignRuleBroken("status", f"campaign {slug!r} is {campaign.status.value}")
        conn.execute(
            update(store.campaigns)
            .where(store.campaigns.c.id == campaign.id)
            .values(status=CampaignStatus.CLOSED.value, closed_at=now)
        )
        data = {"campaign_id": campaign.id, "slug": campaign.slug, "closed_at": now.isoformat()}
        _announce(
            conn,
            campaign,
            new_event(CAMPAIGN_CLOSED, SOURCE, data, subject=f"campaigns/{campaign.id}"),
        )
        closed = store.campaign_by_id(conn, campaign.id)
    assert closed is not None
    return closed


def change_meal_price(
    engine: Engine, slug: str, new_price: Money, effective_from: datetime
) -> dict[str, Any]:
    """Schedule a meal price from a date on (a draft's changes at once), and announce it."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        campaign = _require_campaign(conn, slug)
        check_meal_price_change(campaign, new_price, effective_from, now)
        if campaign.status is CampaignStatus.DRAFT:
            conn.execute(
                update(store.campaigns)
                .where(store.campaigns.c.id == campaign.id)
                .values(meal_price=new_price.amount)
            )
            return {"meal_price": new_price.amount, "effective_from": now, "announced": False}
        previous = store.meal_price_in_force(
            conn, campaign.id, effective_from, campaign.meal_price.amount
        )
        change_id = str(uuid.uuid4())
        conn.execute(
            store.meal_price_changes.insert().values(
                id=change_id,
                campaign_id=campaign.id,
                meal_price=new_price.amount,
                previous_meal_price=previous,
                effective_from=effective_from,
                created_at=now,
            )
        )
        data = {
            "campaign_id": campaign.id,
            "slug": campaign.slug,
            "currency": new_price.currency,
            "meal_price": new_price.amount,
            "previous_meal_price": previous,
            "effective_from": effective_from.isoformat(),
        }
        _announce(
            conn,
            campaign,
            new_event(MEAL_PRICE_CHANGED, SOURCE, data, subject=f"campaigns/{campaign.id}"),
        )
    return {"meal_price": new_price.amount, "effective_from": effective_from, "announced": True}


def publish_campaign(
    engine: Engine,
    *,
    slug: str,
    title: str,
    cause: str,
    summary: str,
    meal_price: Money,
    goal_meals: int | None,
    **details: Any,
) -> tuple[str, bool]:
    """Create a live campaign (if no campaign has this slug) and announce it; return its id
    and whether it was created now."""
    with engine.connect() as conn:
        existing = store.campaign_by_slug(conn, slug)
    if existing is not None:
        return existing.id, False
    values = {"title": title, "cause": cause, "summary": summary, "goal_meals": goal_meals}
    draft = create_campaign(engine, slug=slug, meal_price=meal_price, values={**values, **details})
    return go_live(engine, draft.slug).id, True


def post_url(public_url: str, campaign_slug: str, post_id: str) -> str:
    """Where donors read one news post."""
    return f"{public_url}/campaigns/{campaign_slug}/news/{post_id}"


def write_news_post(
    engine: Engine,
    slug: str,
    *,
    title: str,
    body_markdown: str,
    public_url: str,
    publish_at: datetime | None = None,
    locale: str = "fr",
    seed_key: str | None = None,
    published_at: datetime | None = None,
) -> Any:
    """Store a news post; publish it now unless it is scheduled for later (the worker
    publishes it when due). `published_at` back-dates a post written earlier (seed data)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        campaign = _require_campaign(conn, slug)
        if campaign.status is CampaignStatus.CLOSED:
            raise CampaignRuleBroken("campaign", f"campaign {slug!r} is closed")
        if seed_key is not None:
            seeded = conn.execute(
                select(store.news_posts).where(store.news_posts.c.seed_key == seed_key)
            ).first()
            if seeded is not None:
                return seeded
        post_id = str(uuid.uuid4())
        conn.execute(
            store.news_posts.insert().values(
                id=post_id,
                campaign_id=campaign.id,
                title=title,
                body_markdown=body_markdown,
                locale=locale,
                publish_at=publish_at,
                created_at=now,
                seed_key=seed_key,
            )
        )
        if publish_at is None or _aware(publish_at) <= now:
            _publish_post(conn, post_id, public_url, published_at or now)
        return store.post_row(conn, post_id)


def _publish_post(conn: Connection, post_id: str, public_url: str, when: datetime) -> bool:
    """Mark a post published once (a second worker finds it done) and announce it."""
    marked = conn.execute(
        update(store.news_posts)
        .where(store.news_posts.c.id == post_id, store.news_posts.c.published_at.is_(None))
        .values(published_at=when)
    )
    if marked.rowcount != 1:
        return False
    post = store.post_row(conn, post_id)
    assert post is not None  # written in this transaction
    campaign = store.campaign_by_id(conn, post.campaign_id)
    assert campaign is not None
    data = {
        "campaign_id": campaign.id,
        "campaign_slug": campaign.slug,
        "campaign_title": campaign.title,
        "cause": campaign.cause,
        "post_id": post.id,
        "title": post.title,
        "body_markdown": post.body_markdown,
        "body_html": render_markdown(post.body_markdown),
        "url": post_url(public_url, campaign.slug, post.id),
        "locale": post.locale,
        "published_at": _aware(when).isoformat(),
    }
    _announce(
        conn,
        campaign,
        new_event(
            UPDATE_PUBLISHED,
            SOURCE,
            data,
            subject=f"campaigns/{campaign.id}/news/{post.id}",
            event_id=derived_event_id(post.id, "published"),
        ),
    )
    return True


def publish_due_posts(engine: Engine, public_url: str) -> int:
    """Publish the scheduled news posts whose time has come; return how many."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        due = conn.execute(
            select(store.news_posts.c.id)
            .where(
                store.news_posts.c.published_at.is_(None),
                store.news_posts.c.publish_at.is_not(None),
                store.news_posts.c.publish_at <= now,
            )
            .order_by(store.news_posts.c.publish_at)
            .limit(100)
        ).scalars()
        return sum(1 for post_id in list(due) if _publish_post(conn, post_id, public_url, now))


def record_meals_funded(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """Keep the ledger's count of meals funded for the campaign page (events of a campaign
    arrive in order, keyed by campaign id, so the latest count stands)."""
    now = datetime.now(UTC)
    row = {
        "campaign_id": data["campaign_id"],
        "meals_funded": data["meals_funded"],
        "updated_at": now,
    }
    if not insert_if_absent(conn, store.campaign_meals, row, key="campaign_id"):
        conn.execute(
            update(store.campaign_meals)
            .where(store.campaign_meals.c.campaign_id == data["campaign_id"])
            .values(meals_funded=data["meals_funded"], updated_at=now)
        )


__all__ = [
    "Gift",
    "GiftRefused",
    "IdempotencyConflict",
    "UnknownCampaign",
    "UnknownPost",
    "apply_kept_events",
    "apply_stripe_event",
    "cancel_donation",
    "change_meal_price",
    "close_campaign",
    "create_campaign",
    "edit_campaign",
    "go_live",
    "publish_campaign",
    "publish_due_posts",
    "record_meals_funded",
    "start_donation",
    "write_news_post",
]
