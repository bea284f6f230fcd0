"""One function per event the ledger consumes and per command of finance staff: load through
the unit of work, apply the domain's rules, save, and queue the ledger's own events in the
outbox, all in the caller's transaction. No SQL here (the unit of work's repositories hold
it), no Flask, no Stripe client (stripe_balance.py reads Stripe; what it says comes in as
values or through the StripeRecords port).

An event handler takes (event, uow), the event's data loaded with its type's schema: the
idempotent consumer has recorded the event id in the same transaction, so a handler runs at
most once per event id; it raises PoisonEvent for an event that can never be applied."""

from services.shared import events
from services.shared.consumer import Handler

from .books import OpenUnitOfWork, StripeRecords, UnitOfWork
from .campaigns import campaign_published, meal_price_changed
from .finance import (
    ClosePeriod,
    ReconcilePayout,
    ReconcilePeriod,
    Refused,
    SetFeePolicy,
    close_period,
    reconcile_payout,
    reconcile_period,
    set_fee_policy,
)
from .payments import (
    dispute_closed,
    dispute_opened,
    donation_refund_failed,
    donation_refunded,
    donation_succeeded,
    payout_paid,
    receipt_facts,
)
from .programmes import dift_directed, dift_expired, programme_credited_back, programme_funded
from .resync import Resync, resync

EVENT_HANDLERS: dict[str, Handler] = {
    events.CAMPAIGN_PUBLISHED: campaign_published,
    events.MEAL_PRICE_CHANGED: meal_price_changed,
    events.DONATION_SUCCEEDED: donation_succeeded,
    events.DONATION_REFUNDED: donation_refunded,
    events.DONATION_REFUND_FAILED: donation_refund_failed,
    events.DISPUTE_OPENED: dispute_opened,
    events.DISPUTE_CLOSED: dispute_closed,
    events.PAYOUT_PAID: payout_paid,
    events.PROGRAMME_FUNDED: programme_funded,
    events.PROGRAMME_CREDITED_BACK: programme_credited_back,
    events.DIFT_DIRECTED: dift_directed,
    events.DIFT_EXPIRED: dift_expired,
}
"""The events the ledger applies, by type; every other type is skipped."""

__all__ = [
    "EVENT_HANDLERS",
    "ClosePeriod",
    "OpenUnitOfWork",
    "ReconcilePayout",
    "ReconcilePeriod",
    "Refused",
    "Resync",
    "SetFeePolicy",
    "StripeRecords",
    "UnitOfWork",
    "campaign_published",
    "close_period",
    "dift_directed",
    "dift_expired",
    "dispute_closed",
    "dispute_opened",
    "donation_refund_failed",
    "donation_refunded",
    "donation_succeeded",
    "meal_price_changed",
    "payout_paid",
    "programme_credited_back",
    "programme_funded",
    "receipt_facts",
    "reconcile_payout",
    "reconcile_period",
    "resync",
    "set_fee_policy",
]
