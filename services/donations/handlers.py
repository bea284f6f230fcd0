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
from sqlalchemy.exc import IntegrityError

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

log = logging.getLogger(__name__)

SOURCE = "difts/donations"
PAID_CHECKOUT_EVENTS = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}


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

CHECKOUT_PAID = "checkout.session.async_payment_succeeded"
CHECKOUT_COMPLETED = "checkout.session.completed"
CHECKOUT_FAILED = "checkout.session.async_payment_failed"
CHECKOUT_EXPIRED = "checkout.session.expired"
CHARGE_REFUNDED = "charge.refunded"
REFUND_EVENTS = {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
# A refund in one of these states never gave the money back.
REFUND_FAILURES = ("failed", "canceled")
DISPUTE_CREATED = "charge.dispute.created"
DISPUTE_CLOSED_TYPE = "charge.dispute.closed"
PAYOUT_PAID_TYPE = "payout.paid"
HANDLED_STRIPE_EVENTS = {
    CHECKOUT_COMPLETED,
    CHECKOUT_PAID,
    CHECKOUT_FAILED,
    CHECKOUT_EXPIRED,
    CHARGE_REFUNDED,
    DISPUTE_CREATED,
    DISPUTE_CLOSED_TYPE,
    PAYOUT_PAID_TYPE,
    *REFUND_EVENTS,
}
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
class _Facts:
    payment: PaymentFacts = NO_FACTS
    payout_transactions: tuple[str, ...] = ()


def _object(event: dict[str, Any]) -> dict[str, Any]:
    obj = (event.get("data") or {}).get("object")
    return obj if isinstance(obj, dict) else {}


def _facts_for(event: dict[str, Any], balance: Balance | None) -> _Facts:
    """Ask Stripe's balance what an event needs, before any database transaction is open."""
    if balance is None:
        return _Facts()
    obj = _object(event)
    if event["type"] in (CHECKOUT_COMPLETED, CHECKOUT_PAID) and obj.get("payment_status") != (
        "unpaid"
    ):
        intent = obj.get("payment_intent")
        return _Facts(payment=balance.payment_facts(intent if isinstance(intent, str) else None))
    if event["type"] == PAYOUT_PAID_TYPE and isinstance(obj.get("id"), str):
        return _Facts(payout_transactions=tuple(balance.payout_transactions(obj["id"])))
    return _Facts()


def apply_stripe_event(
    engine: Engine,
    event: dict[str, Any],
    correlation_id: str | None,
    balance: Balance | None = None,
) -> str:
    """Apply one verified Stripe event at most once (by Stripe's event id); return what
    became of it. An event that follows one not yet seen is kept and applied once it can be."""
    facts = _facts_for(event, balance)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if not store.record_stripe_event(conn, event["id"], event["type"], now):
            return "duplicate"
        try:
            with conn.begin_nested():
                result = _apply(conn, event, facts, now, correlation_id)
        except InvalidEventData:
            # Signed by Stripe, yet not something our events can carry (an unsupported
            # currency, say): nothing of it is applied, and it is kept for a person to see.
            log.error("stripe event could not be expressed as a difts event; kept")
            result = _Result("unreadable", waiting_for=None)
            store.set_stripe_event_outcome(conn, event["id"], "unreadable", None, json.dumps(event))
            return result.outcome
        _settle(conn, event, result)
        if result.unlocks:
            _replay_waiting(conn, result.unlocks, balance, correlation_id)
    log.info(
        "stripe event applied", extra={"stripe_type": event["type"], "outcome": result.outcome}
    )
    return result.outcome


def _settle(conn: Connection, event: dict[str, Any], result: _Result) -> None:
    keep = result.outcome in _KEPT_OUTCOMES
    store.set_stripe_event_outcome(
        conn,
        event["id"],
        result.outcome,
        result.donation_id,
        json.dumps(event) if keep else None,
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
    """Apply one kept event again; None if it still waits for the same thing."""
    event = json.loads(row.payload)
    try:
        with conn.begin_nested():
            result = _apply(
                conn, event, _facts_for(event, balance), datetime.now(UTC), correlation_id
            )
    except InvalidEventData:
        log.error("kept stripe event could not be expressed as a difts event")
        store.set_stripe_event_outcome(conn, event["id"], "unreadable", None, row.payload)
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
        rows = conn.execute(
            select(store.stripe_events.c.id)
            .where(store.stripe_events.c.outcome.in_(_KEPT_OUTCOMES))
            .order_by(store.stripe_events.c.received_at)
            .limit(limit)
        ).scalars()
        kept = list(rows)
    applied = 0
    for event_id in kept:
        with engine.begin() as conn:
            row = conn.execute(
                select(store.stripe_events)
                .where(
                    store.stripe_events.c.id == event_id,
                    store.stripe_events.c.outcome.in_(_KEPT_OUTCOMES),
                )
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                continue
            result = _retry_kept(conn, row, balance, None)
            if result is not None:
                applied += 1
                _replay_waiting(conn, result.unlocks, balance, None)
    return applied


def _apply(
    conn: Connection,
    event: dict[str, Any],
    facts: _Facts,
    now: datetime,
    correlation_id: str | None,
) -> _Result:
    kind = event["type"]
    obj = _object(event)
    if kind in (CHECKOUT_COMPLETED, CHECKOUT_PAID):
        if kind == CHECKOUT_COMPLETED and obj.get("payment_status") not in (
            "paid",
            "no_payment_required",
        ):
            # Delayed payment methods: async_payment_succeeded or _failed will follow.
            return _Result("awaiting_payment", _session_donation_id(obj))
        return _checkout_paid(conn, obj, facts.payment, now, correlation_id)
    if kind == CHECKOUT_FAILED:
        return _checkout_unpaid(
            conn, obj, DonationStatus.FAILED, "payment failed", now, correlation_id
        )
    if kind == CHECKOUT_EXPIRED:
        return _checkout_unpaid(
            conn, obj, DonationStatus.EXPIRED, "checkout session expired", now, correlation_id
        )
    if kind == CHARGE_REFUNDED:
        return _charge_refunded(conn, obj, now, correlation_id)
    if kind in REFUND_EVENTS:
        return _refund(conn, obj, None, now, correlation_id)
    if kind == DISPUTE_CREATED:
        return _dispute_opened(conn, obj, now, correlation_id)
    if kind == DISPUTE_CLOSED_TYPE:
        return _dispute_closed(conn, obj, now, correlation_id)
    if kind == PAYOUT_PAID_TYPE:
        return _payout_paid(conn, obj, facts.payout_transactions, now, correlation_id)
    return _Result("ignored")


def _session_donation_id(session: dict[str, Any]) -> str | None:
    metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
    found = (metadata or {}).get("donation_id") or session.get("client_reference_id")
    return found if isinstance(found, str) and found else None


def _str(value: Any) -> str | None:
    """An id from a Stripe object, whether it came as a string or an expanded object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _checkout_paid(
    conn: Connection,
    session: dict[str, Any],
    payment: PaymentFacts,
    now: datetime,
    correlation_id: str | None,
) -> _Result:
    donation_id = _session_donation_id(session)
    donation = store.donation_row(conn, donation_id) if donation_id else None
    if donation is None:
        log.warning("stripe event for an unknown donation kept for later")
        return _Result("unmatched", donation_id, waiting_for=donation_id)
    if not _amount_matches(session, donation):
        log.error("stripe reported another amount than the donation's; not counted")
        return _Result("amount_mismatch", donation.id)
    intent = _str(session.get("payment_intent"))
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
    conn: Connection,
    session: dict[str, Any],
    status: DonationStatus,
    reason: str,
    now: datetime,
    correlation_id: str | None,
) -> _Result:
    donation_id = _session_donation_id(session)
    donation = store.donation_row(conn, donation_id) if donation_id else None
    if donation is None:
        return _Result("unmatched", donation_id, waiting_for=donation_id)
    if not store.end_unpaid(conn, donation.id, status, now):
        return _Result(f"already_{donation.status}", donation.id)
    data = {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "status": status.value,
        "reason": reason,
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


def _donation_of_payment(
    conn: Connection, obj: dict[str, Any], charge: dict[str, Any] | None
) -> tuple[Any | None, str | None]:
    """The donation a refund or dispute is about, and the key to wait for if unknown yet."""
    intent = _str(obj.get("payment_intent")) or _str((charge or {}).get("payment_intent"))
    charge_id = _str(obj.get("charge")) or _str((charge or {}).get("id"))
    donation = store.donation_by_payment(conn, intent, charge_id)
    metadata = (charge or {}).get("metadata") or obj.get("metadata") or {}
    if donation is None and isinstance(metadata, dict) and metadata.get("donation_id"):
        candidate = store.donation_row(conn, str(metadata["donation_id"]))
        if candidate is not None and candidate.status != DonationStatus.PENDING.value:
            donation = candidate
    return donation, intent or charge_id


def _charge_refunded(
    conn: Connection, charge: dict[str, Any], now: datetime, correlation_id: str | None
) -> _Result:
    listed = (
        (charge.get("refunds") or {}).get("data")
        if isinstance(charge.get("refunds"), dict)
        else None
    )
    if not listed:
        # Newer API versions leave the list out; every refund also arrives as refund.created.
        return _Result("refunds_arrive_separately")
    outcomes = [
        _refund(conn, refund, charge, now, correlation_id)
        for refund in listed
        if isinstance(refund, dict)
    ]
    waiting = [result for result in outcomes if result.outcome == "waiting"]
    if waiting:
        # Keep the whole charge event: refunds in it already counted are skipped by refund id.
        return waiting[0]
    applied = [
        result for result in outcomes if result.outcome in ("refunded", "partially_refunded")
    ]
    best = applied[-1] if applied else (outcomes[-1] if outcomes else _Result("ignored"))
    return best


def _refund(
    conn: Connection,
    refund: dict[str, Any],
    charge: dict[str, Any] | None,
    now: datetime,
    correlation_id: str | None,
) -> _Result:
    refund_id = _str(refund.get("id"))
    amount = refund.get("amount")
    if refund_id is None or not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        return _Result("ignored")
    status = refund.get("status")
    if status in REFUND_FAILURES:
        return _refund_failed(conn, refund, charge, refund_id, str(status), now, correlation_id)
    if status not in (None, "succeeded", "pending"):
        # A refund still waiting for the donor's action gives nothing back yet.
        return _Result(f"refund_{status}")
    known = conn.execute(select(store.refunds).where(store.refunds.c.id == refund_id)).first()
    if known is not None and known.status == store.REFUND_FAILED:
        # Its failure came first (webhooks are not ordered): it never counts.
        return _Result("refund_already_failed", known.donation_id)
    donation, key = _donation_of_payment(conn, refund, charge)
    if donation is not None:
        # Two refunds of one donation at once must add up, not overwrite each other.
        donation = store.donation_row(conn, donation.id, lock=True)
    if donation is None or DonationStatus(donation.status) not in REFUNDABLE:
        return _Result("waiting", donation.id if donation else None, waiting_for=key)
    known = conn.execute(select(store.refunds.c.id).where(store.refunds.c.id == refund_id)).first()
    if known is not None:
        # charge.refunded and refund.* describe the same refund: counted once, by its id.
        return _Result("already_refunded", donation.id)
    currency = str(refund.get("currency") or donation.currency).upper()
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
        "charge_id": _str(refund.get("charge")) or donation.charge_id,
        "amount": amount,
        "currency": currency,
        "total_refunded": total,
        "fully_refunded": fully,
        "fee_refunded": 0,
        "balance_transaction_id": _str(refund.get("balance_transaction")),
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
    conn: Connection,
    refund: dict[str, Any],
    charge: dict[str, Any] | None,
    refund_id: str,
    status: str,
    now: datetime,
    correlation_id: str | None,
) -> _Result:
    """A refund failed or was canceled at Stripe: the money never went back to the donor.
    Counted already, it is undone once (amount_refunded, a refunded donation back to
    succeeded) and announced; not counted yet, it is remembered so that it never counts."""
    known = conn.execute(select(store.refunds).where(store.refunds.c.id == refund_id)).first()
    if known is None:
        donation, key = _donation_of_payment(conn, refund, charge)
        if donation is None:
            # Remembered only against a known donation: wait for it, like the refund would.
            return _Result("waiting", waiting_for=key)
        currency = str(refund.get("currency") or donation.currency).upper()
        row = {
            "id": refund_id,
            "donation_id": donation.id,
            "amount": int(refund["amount"]),
            "currency": currency,
            "created_at": now,
            "status": store.REFUND_FAILED,
            "failed_at": now,
        }
        if insert_if_absent(conn, store.refunds, row, key="id"):
            return _Result(f"refund_{status}", donation.id)
        known = conn.execute(select(store.refunds).where(store.refunds.c.id == refund_id)).one()
    if known.status == store.REFUND_FAILED:
        return _Result("refund_already_failed", known.donation_id)
    # Two changes of one donation at once must not overwrite each other.
    donation = store.donation_row(conn, known.donation_id, lock=True)
    assert donation is not None  # refunds reference donations by foreign key
    marked = conn.execute(
        update(store.refunds)
        .where(store.refunds.c.id == refund_id, store.refunds.c.status == store.REFUND_COUNTED)
        .values(status=store.REFUND_FAILED, failed_at=now)
    )
    if marked.rowcount != 1:
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
        "balance_transaction_id": _str(refund.get("failure_balance_transaction")),
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


def _dispute_fees(dispute: dict[str, Any]) -> tuple[int, int, str | None]:
    """The dispute fee withdrawn, the fee given back, and the latest balance transaction."""
    txns = [txn for txn in dispute.get("balance_transactions") or [] if isinstance(txn, dict)]
    withdrawn = sum(int(txn.get("fee") or 0) for txn in txns if int(txn.get("fee") or 0) > 0)
    reinstated = sum(-int(txn.get("fee") or 0) for txn in txns if int(txn.get("fee") or 0) < 0)
    return withdrawn, reinstated, _str(txns[-1].get("id")) if txns else None


def _dispute_opened(
    conn: Connection, dispute: dict[str, Any], now: datetime, correlation_id: str | None
) -> _Result:
    dispute_id = _str(dispute.get("id"))
    amount = dispute.get("amount")
    if dispute_id is None or not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        return _Result("ignored")
    donation, key = _donation_of_payment(conn, dispute, None)
    if donation is None or DonationStatus(donation.status) not in REFUNDABLE:
        return _Result("waiting", donation.id if donation else None, waiting_for=key)
    currency = str(dispute.get("currency") or donation.currency).upper()
    row = {
        "id": dispute_id,
        "donation_id": donation.id,
        "amount": amount,
        "currency": currency,
        "status": "open",
        "opened_at": now,
    }
    if not insert_if_absent(conn, store.disputes, row, key="id"):
        return _Result("already_disputed", donation.id)
    store.set_donation(conn, donation.id, status=DonationStatus.DISPUTED.value)
    fee, _back, txn = _dispute_fees(dispute)
    campaign = store.campaign_by_id(conn, donation.campaign_id)
    data = {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "campaign_slug": campaign.slug if campaign else "",
        "dispute_id": dispute_id,
        "charge_id": _str(dispute.get("charge")) or donation.charge_id,
        "amount": amount,
        "currency": currency,
        "fee": fee,
        "reason": str(dispute.get("reason") or ""),
        "balance_transaction_id": txn,
        "opened_at": now.isoformat(),
    }
    _publish_donation_event(
        conn, donation, DISPUTE_OPENED, data, derived_event_id(dispute_id, "opened"), correlation_id
    )
    return _Result("dispute_opened", donation.id, unlocks=[dispute_id])


def _dispute_closed(
    conn: Connection, dispute: dict[str, Any], now: datetime, correlation_id: str | None
) -> _Result:
    dispute_id = _str(dispute.get("id"))
    status = dispute.get("status")
    if dispute_id is None:
        return _Result("ignored")
    if status not in ("won", "lost"):
        return _Result(f"dispute_{status}")
    opened = conn.execute(select(store.disputes).where(store.disputes.c.id == dispute_id)).first()
    if opened is None:
        # Its opening has not been applied yet (or not received): wait for it.
        return _Result("waiting", waiting_for=dispute_id)
    donation = store.donation_row(conn, opened.donation_id)
    closed = conn.execute(
        update(store.disputes)
        .where(store.disputes.c.id == dispute_id, store.disputes.c.status == "open")
        .values(status=status, closed_at=now)
    )
    if closed.rowcount != 1 or donation is None:
        return _Result("already_closed", opened.donation_id)
    if status == "won" and donation.status == DonationStatus.DISPUTED.value:
        back = (
            DonationStatus.REFUNDED
            if donation.amount_refunded >= donation.amount
            else DonationStatus.SUCCEEDED
        )
        store.set_donation(conn, donation.id, status=back.value)
    _fee, fee_back, txn = _dispute_fees(dispute)
    data = {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "campaign_slug": "",
        "dispute_id": dispute_id,
        "charge_id": _str(dispute.get("charge")) or donation.charge_id,
        "status": status,
        "amount": opened.amount,
        "currency": opened.currency,
        "amount_reinstated": opened.amount if status == "won" else 0,
        "fee_reinstated": fee_back if status == "won" else 0,
        "balance_transaction_id": txn,
        "closed_at": now.isoformat(),
    }
    campaign = store.campaign_by_id(conn, donation.campaign_id)
    data["campaign_slug"] = campaign.slug if campaign else ""
    _publish_donation_event(
        conn, donation, DISPUTE_CLOSED, data, derived_event_id(dispute_id, "closed"), correlation_id
    )
    return _Result(f"dispute_{status}", donation.id)


def _payout_paid(
    conn: Connection,
    payout: dict[str, Any],
    transactions: tuple[str, ...],
    now: datetime,
    correlation_id: str | None,
) -> _Result:
    payout_id = _str(payout.get("id"))
    amount = payout.get("amount")
    currency = str(payout.get("currency") or "").upper()
    if payout_id is None or not isinstance(amount, int) or isinstance(amount, bool) or not currency:
        return _Result("ignored")
    row = {"id": payout_id, "amount": amount, "currency": currency, "paid_at": now}
    if not insert_if_absent(conn, store.payouts, row, key="id"):
        return _Result("already_paid_out")
    arrival = payout.get("arrival_date")
    arrival_at = (
        datetime.fromtimestamp(arrival, UTC)
        if isinstance(arrival, int) and not isinstance(arrival, bool)
        else now
    )
    data = {
        "payout_id": payout_id,
        "amount": amount,
        "currency": currency,
        "arrival_date": arrival_at.isoformat(),
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


def _amount_matches(session: dict[str, Any], donation: Any) -> bool:
    total = session.get("amount_total")
    currency = str(session.get("currency") or "").upper()
    return total is None or (total == donation.amount and currency in ("", donation.currency))


def _succeeded_event(
    donation: Any,
    campaign: Campaign,
    session: dict[str, Any],
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
        "checkout_session_id": session.get("id"),
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
