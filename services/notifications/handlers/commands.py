"""What donors and operators ask: unsubscribing (the pages), resending a delivery and erasing
a donor's personal data (the admin API)."""

from __future__ import annotations

from datetime import datetime

from ..consent import UnsubscribeRequest
from ..domain import DeliveryStatus, Kind
from .queueing import UnitOfWork


def unsubscribe(asked: UnsubscribeRequest, uow: UnitOfWork, now: datetime) -> int:
    """A donor stops one campaign's news (or every campaign's, also for campaigns they give
    to later without consenting again); their news and impact emails still queued are
    skipped. Returns how many campaigns it changed."""
    changed = uow.donors.unsubscribe(asked.email_ref, asked.campaign_id, now)
    uow.deliveries.skip_pending(asked.email_ref, asked.campaign_id, "unsubscribed")
    return changed


class CannotResend(ValueError):
    """A delivery that cannot be sent again; `missing` when there is no such delivery."""

    def __init__(self, reason: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.missing = missing


def resend(delivery_id: str, uow: UnitOfWork, now: datetime) -> None:
    """Queue a delivery again (an operator's resend); its attempts count on. A news or impact
    email goes again only while its donor still wants news."""
    row = uow.deliveries.get(delivery_id)
    if row is None:
        raise CannotResend("no such delivery", missing=True)
    if not row.message:
        raise CannotResend(
            "this delivery has no message to send (skipped before it was built, or erased)"
        )
    if Kind(row.kind).needs_consent:
        donor = uow.donors.get(row.campaign_id, row.recipient)
        if donor is None or not donor.wants_news:
            raise CannotResend("the donor no longer wants these emails")
    if row.status != DeliveryStatus.PENDING.value:
        uow.deliveries.requeue(delivery_id, now)


def erase(email: str, email_ref: str, uow: UnitOfWork) -> dict[str, int]:
    """Remove a donor's personal data (a GDPR erasure): their donor rows go; their deliveries
    keep only the pseudonym, with no message, and pending ones are cancelled; the difts sent to
    them forget them (no reminder or confirmation follows). Idempotent."""
    removed = uow.donors.erase(email, email_ref)
    pseudonymised, cancelled = uow.deliveries.pseudonymise(email, email_ref)
    forgotten = uow.difts.erase(email)
    return {
        "donors_removed": removed,
        "deliveries_pseudonymised": pseudonymised,
        "pending_cancelled": cancelled,
        "difts_forgotten": forgotten,
    }
