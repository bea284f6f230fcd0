"""What the Stripe webhook receives: each verified event applied at most once (by Stripe's
event id); one that follows an event not seen yet is kept and applied once it can be; one
that cannot be applied at all is kept as unreadable, with the reason, for a person."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from services.shared.events import InvalidEventData

from ..domain.payments import CheckoutPaid, Fact, PayoutPaid
from ..store import UNREADABLE, KeptEvent
from ..stripe_events import StripeEvent, UnreadableEvent, body_to_keep, read_parsed
from . import Payments, UnitOfWork
from .lifecycle import Applied, Asked, apply_fact

log = logging.getLogger(__name__)

# What a kept event's outcome is while it waits for what it follows.
KEPT_OUTCOMES = ("unmatched", "waiting")


def ask_stripe(fact: Fact, payments: Payments) -> Asked:
    """Ask Stripe's balance what a fact needs; an answer we cannot get is left unknown (the
    fee of a payment travels null, a payout lists no transactions)."""
    try:
        if isinstance(fact, CheckoutPaid):
            return Asked(payment=payments.payment_facts(fact.payment_intent_id))
        if isinstance(fact, PayoutPaid):
            return Asked(payout_transactions=tuple(payments.payout_transactions(fact.payout_id)))
    except Exception:  # noqa: BLE001 - Stripe's answer is extra detail, never a reason to fail
        log.warning("could not ask Stripe about a %s; left unknown", type(fact).__name__)
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


def apply_stripe_event(
    event: StripeEvent, uow: UnitOfWork, payments: Payments, correlation_id: str | None
) -> str:
    """Apply one verified Stripe event at most once; return what became of it. Stripe is
    asked what the event needs first, then `uow` (unopened) is opened for the change."""
    asked = ask_stripe(event.fact, payments)
    now = datetime.now(UTC)
    with uow:
        if not uow.stripe_events.record(event.id, event.type, now):
            return "duplicate"
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
    fresh = uow.stripe_events.record(event_id, error.event_type or "unknown", datetime.now(UTC))
    if fresh:
        uow.stripe_events.keep_unreadable(event_id, body_to_keep(payload), error.reason)
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
            asked = ask_stripe(event.fact, payments)
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
