"""What the Stripe webhook receives, in two steps (Stripe's own advice: verify, record,
answer; the rest after). The webhook records each verified event by Stripe's event id
(`record_stripe_event`: its deduplication, committed before the answer) and answers; the
worker's applier (`apply_received_events`) claims what was recorded, asks Stripe what an
event needs outside any transaction, and applies each event once. One that follows an event
not seen yet is kept and applied once it can be; one that cannot be applied at all is kept as
unreadable, with the reason, for a person."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from services.shared.events import InvalidEventData

from ..domain.payments import (
    CheckoutPaid,
    Fact,
    PaymentProviderError,
    PayoutPaid,
    ProgrammeCheckoutPaid,
)
from ..store import RECEIVED, UNREADABLE, KeptEvent, ReceivedEvent
from ..stripe_events import StripeEvent, UnreadableEvent, body_to_keep, read_parsed
from . import Payments, StripeEventRecorder, UnitOfWork
from .lifecycle import Applied, Asked, apply_fact

log = logging.getLogger(__name__)

# What a kept event's outcome is while it waits for what it follows.
KEPT_OUTCOMES = ("unmatched", "waiting")
DUPLICATE = "duplicate"
# A claimed event is its applier's for this long; a claim that runs out (the applier was
# killed between claim and apply) lets another applier, or the restarted one, apply it.
CLAIM_FOR = timedelta(seconds=30)
# When Stripe cannot answer what an event needs, the event is asked about again this much
# later, until it is ASK_STRIPE_FOR old: then it is applied with what is known (a payment's
# fee travels null), so no gift waits on Stripe for ever.
ASK_AGAIN_AFTER = timedelta(seconds=5)
ASK_STRIPE_FOR = timedelta(hours=1)


class StripeUnavailable(RuntimeError):
    """Stripe cannot answer what an event needs now; ask again later."""


def ask_stripe(fact: Fact, payments: Payments) -> Asked:
    """Ask Stripe's balance what a fact needs; StripeUnavailable when it cannot answer now.
    Any other failure leaves the answer unknown (the fee of a payment travels null, a payout
    lists no transactions)."""
    try:
        if isinstance(fact, CheckoutPaid | ProgrammeCheckoutPaid):
            return Asked(payment=payments.payment_facts(fact.payment_intent_id))
        if isinstance(fact, PayoutPaid):
            return Asked(payout_transactions=tuple(payments.payout_transactions(fact.payout_id)))
    except PaymentProviderError as error:
        raise StripeUnavailable(str(error)) from error
    except Exception:  # noqa: BLE001 - Stripe's answer is extra detail, never a reason to fail
        log.warning("could not ask Stripe about a %s; left unknown", type(fact).__name__)
    return Asked()


def _ask_stripe_or_unknown(fact: Fact, payments: Payments) -> Asked:
    try:
        return ask_stripe(fact, payments)
    except StripeUnavailable:
        log.warning("Stripe did not answer about a %s; left unknown", type(fact).__name__)
        return Asked()


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


def record_stripe_event(
    event: StripeEvent,
    recorder: StripeEventRecorder,
    correlation_id: str | None,
    body: str | None = None,
) -> str:
    """The webhook's part: record a verified event (with its body, `body` or the event as
    JSON) to be applied by the worker; committed when this returns. "received", or
    "duplicate" for an event id seen before (a webhook retry)."""
    fresh = recorder.receive(
        event.id,
        event.type,
        body if body is not None else json.dumps(event.payload),
        datetime.now(UTC),
        correlation_id,
    )
    return RECEIVED if fresh else DUPLICATE


def apply_received_events(
    uow: UnitOfWork,
    payments: Payments,
    limit: int = 100,
    now: datetime | None = None,
    ask_stripe_for: timedelta = ASK_STRIPE_FOR,
) -> int:
    """The worker's part: claim up to `limit` recorded events no other applier holds, and
    apply each once (`uow`, unopened, is opened for the claim and once per event, so no
    transaction waits on Stripe). Returns how many this call applied."""
    now = now or datetime.now(UTC)
    with uow:
        claimed = uow.stripe_events.claim_received(now, now + CLAIM_FOR, limit)
    applied = 0
    stripe_down = False
    for received in claimed:
        try:
            outcome = apply_received(received, uow, payments, now, ask_stripe_for, stripe_down)
        except StripeUnavailable:
            stripe_down = True  # the rest of the round does not wait on Stripe either
            continue
        except Exception:  # noqa: BLE001 - its claim runs out and it is applied again later
            log.exception("stripe event %s could not be applied now", received.id)
            continue
        applied += outcome is not None
    return applied


def apply_received(
    received: ReceivedEvent,
    uow: UnitOfWork,
    payments: Payments,
    now: datetime,
    ask_stripe_for: timedelta = ASK_STRIPE_FOR,
    stripe_down: bool = False,
) -> str | None:
    """Apply one recorded event once and return what became of it; None if another applier
    applied it meanwhile. StripeUnavailable, the event left for later, when Stripe cannot
    answer what it needs (or did not earlier in this round: `stripe_down`) and it is younger
    than `ask_stripe_for`; an older one is applied with what is known."""
    try:
        event = read_parsed(json.loads(received.payload))
    except (UnreadableEvent, ValueError) as error:
        reason = error.reason if isinstance(error, UnreadableEvent) else f"not JSON: {error}"
        with uow:
            if uow.stripe_events.lock_received(received.id) is None:
                return None
            uow.stripe_events.keep_unreadable(received.id, received.payload, reason)
        return UNREADABLE
    patient = received.received_at + ask_stripe_for > now
    try:
        if stripe_down and _needs_stripe(event.fact):
            raise StripeUnavailable("Stripe did not answer earlier in this round")
        asked = ask_stripe(event.fact, payments)
    except StripeUnavailable as error:
        if patient:
            log.warning("Stripe did not answer about %s; asking again later: %s", event.id, error)
            with uow:
                uow.stripe_events.release(event.id, now + ASK_AGAIN_AFTER)
            raise
        asked = Asked()
    return _apply(event, uow, asked, payments, received.correlation_id)


def _needs_stripe(fact: Fact) -> bool:
    return isinstance(fact, CheckoutPaid | ProgrammeCheckoutPaid | PayoutPaid)


def _apply(
    event: StripeEvent,
    uow: UnitOfWork,
    asked: Asked,
    payments: Payments,
    correlation_id: str | None,
) -> str | None:
    """Apply a recorded event in one transaction with the events it publishes, unless another
    applier did (the row is locked and must still be "received")."""
    now = datetime.now(UTC)
    with uow:
        if uow.stripe_events.lock_received(event.id) is None:
            return None
        try:
            with uow.savepoint():
                result = apply_fact(uow, event.fact, asked, now, correlation_id)
        except Exception as error:
            reason = _unreadable_because(error)
            if reason is None:
                raise
            log.exception("signed stripe event %s kept as unreadable: %s", event.type, reason)
            uow.stripe_events.keep_unreadable(event.id, json.dumps(event.payload), reason)
            return UNREADABLE
        _settle(uow, event, result)
        if result.unlocks:
            replay_waiting(uow, result.unlocks, payments, correlation_id)
    log.info("stripe event applied", extra={"stripe_type": event.type, "outcome": result.outcome})
    return result.outcome


def keep_unreadable_event(payload: bytes, error: UnreadableEvent, uow: UnitOfWork) -> str:
    """Keep a signed body that is not a Stripe event we can read, for a person to look at,
    under its own id when it has one (so Stripe's retries are duplicates), else under an id
    derived from the body. Nothing else changes. Returns the id it is kept under."""
    event_id = error.event_id or "unreadable_" + hashlib.sha256(payload).hexdigest()[:40]
    uow.stripe_events.record_unreadable(
        event_id,
        error.event_type or "unknown",
        body_to_keep(payload),
        error.reason,
        datetime.now(UTC),
    )
    log.warning("signed stripe body kept as unreadable: %s", error.reason)
    return event_id


def _settle(uow: UnitOfWork, event: StripeEvent, result: Applied) -> None:
    """Record what became of an event; one that waits keeps its body and what it waits for."""
    waits = result.outcome in KEPT_OUTCOMES
    kept = KeptEvent(event.id, json.dumps(event.payload), result.waiting_for) if waits else None
    uow.stripe_events.settle(event.id, result.outcome, result.donation_id, kept)


def replay_waiting(
    uow: UnitOfWork, keys: list[str], payments: Payments, correlation_id: str | None
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
        for kept in uow.stripe_events.waiting_for([key], KEPT_OUTCOMES):
            result = _retry_kept(uow, kept, payments, correlation_id)
            if result is not None:
                pending.extend(result.unlocks)


def _retry_kept(
    uow: UnitOfWork, kept: KeptEvent, payments: Payments, correlation_id: str | None
) -> Applied | None:
    """Apply one kept event again; None if it still waits for the same thing (or could not
    be applied, and is now kept as unreadable)."""
    try:
        event = read_parsed(json.loads(kept.payload))
        with uow.savepoint():
            asked = _ask_stripe_or_unknown(event.fact, payments)
            result = apply_fact(uow, event.fact, asked, datetime.now(UTC), correlation_id)
    except Exception as error:
        reason = error.reason if isinstance(error, UnreadableEvent) else _unreadable_because(error)
        if reason is None:
            raise
        log.error("kept stripe event %s is unreadable now: %s", kept.id, reason)
        uow.stripe_events.keep_unreadable(kept.id, kept.payload, reason)
        return None
    if result.outcome in KEPT_OUTCOMES and result.waiting_for == kept.waiting_for:
        return None  # still waiting for the same thing: leave it as it is
    _settle(uow, event, result)
    return result


def apply_kept_events(uow: UnitOfWork, payments: Payments, limit: int = 200) -> int:
    """Try every kept event again, each in a transaction of its own (`uow`, unopened, is
    opened once per event); return how many applied.

    The worker runs this now and then, so an event kept while the one it follows was being
    committed in a concurrent request is not left waiting for ever."""
    with uow:
        kept_ids = uow.stripe_events.kept_ids(KEPT_OUTCOMES, limit)
    applied = 0
    for event_id in kept_ids:
        with uow:
            kept = uow.stripe_events.lock_kept(event_id, KEPT_OUTCOMES)
            result = _retry_kept(uow, kept, payments, None) if kept is not None else None
            if result is not None:
                applied += 1
                replay_waiting(uow, result.unlocks, payments, None)
    return applied
