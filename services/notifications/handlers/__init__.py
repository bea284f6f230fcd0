"""One function per event the service reacts to and per command of its API and pages: load
through the unit of work, apply the domain's rules, write the emails to send into the delivery
log. Nothing here talks to SMTP (the sender does, from the delivery log) or holds SQL (the
unit of work's repositories do).

One module per family: donations (receipts, refunds), campaigns (news, milestones), difts
(invitations, reminders, confirmations), commands (unsubscribe, resend, erase); queueing holds
what they share. Callers import everything from here."""

from __future__ import annotations

from functools import partial

from services.shared.consumer import Handler
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    DIFT_DIRECTED,
    DIFT_EXPIRED,
    DIFT_ISSUED,
    DONATION_BOOKED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    MILESTONE_REACHED,
    UPDATE_PUBLISHED,
)

from .campaigns import (
    campaign_published,
    milestone_reached,
    release_due_impact,
    update_published,
)
from .commands import CannotResend, erase, resend, unsubscribe
from .difts import (
    dift_directed,
    dift_expired,
    dift_issued,
    invitation_concluded,
    release_due_reminders,
)
from .donations import donation_booked, donation_refunded, donation_succeeded
from .queueing import Email, Stationery, UnitOfWork

__all__ = [
    "CannotResend",
    "Email",
    "Stationery",
    "UnitOfWork",
    "campaign_published",
    "dift_directed",
    "dift_expired",
    "dift_issued",
    "donation_booked",
    "donation_refunded",
    "donation_succeeded",
    "erase",
    "event_handlers",
    "invitation_concluded",
    "milestone_reached",
    "release_due_impact",
    "release_due_reminders",
    "resend",
    "unsubscribe",
    "update_published",
]


def event_handlers(stationery: Stationery) -> dict[str, Handler]:
    """The events this service acts on, by type, writing their emails with `stationery`;
    every other type is skipped."""
    return {
        DONATION_SUCCEEDED: partial(donation_succeeded, stationery=stationery),
        DONATION_BOOKED: partial(donation_booked, stationery=stationery),
        DONATION_REFUNDED: partial(donation_refunded, stationery=stationery),
        CAMPAIGN_PUBLISHED: partial(campaign_published, _stationery=stationery),
        UPDATE_PUBLISHED: partial(update_published, stationery=stationery),
        MILESTONE_REACHED: partial(milestone_reached, stationery=stationery),
        DIFT_ISSUED: partial(dift_issued, stationery=stationery),
        DIFT_DIRECTED: partial(dift_directed, stationery=stationery),
        DIFT_EXPIRED: partial(dift_expired, _stationery=stationery),
    }
