"""Company difts (README, "Company difts"): one invitation, queued when a dift is issued, and
at most one reminder: scheduled then, queued by the worker when due (release_due_reminders),
cancelled when the dift is directed or expires, and never sent once it has expired. When an
invitation or reminder leaves for the relay or bounces, the sender's outcome publishes
dift_invitation_sent through the outbox, in the transaction of the delivery's new status
(invitation_concluded)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from services.shared.envelope import CloudEvent, new_event
from services.shared.events import DIFT_INVITATION_SENT, NOTIFICATIONS_TOPIC
from services.shared.money import Money

from .. import store
from ..domain import (
    CONSENT_FROM_DIFT,
    CampaignFacts,
    DeliveryStatus,
    Dift,
    Donor,
    Kind,
    Recipient,
)
from ..emails import (
    DiftAllocation,
    DiftConfirmation,
    RenderedEmail,
    render_dift_confirmation,
    render_invitation,
    render_reminder,
)
from ..messages import mask_email
from .queueing import Email, Stationery, UnitOfWork, queue_email, words_of

log = logging.getLogger(__name__)


def dift_issued(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """A company issued a dift: keep what its emails will state and, when it names a recipient
    and carries a personal link, queue its invitation (once per dift, whatever is redelivered
    or announced again) and schedule its one reminder. An anonymous code gets no email."""
    data = event.data
    dift = Dift.from_issued(data)
    now = stationery.clock()
    uow.difts.record(dift, now)
    if not dift.invitable or dift.recipient is None:
        log.info("dift %s issued by %s: no invitation to send", dift.dift_id, data["channel"])
        return
    rendered = words_of(
        "dift invitation",
        partial(
            render_invitation,
            dift,
            stationery.letterhead,
            data.get("message_markdown", ""),
            data.get("message_html", ""),
        ),
    )
    if not queue_email(uow, stationery, event.id, _dift_email(dift, dift.recipient, rendered)):
        log.info("invitation of dift %s already queued", dift.dift_id)
        return
    recipient = mask_email(dift.recipient.email)
    if uow.deliveries.status_of_dift(dift.dift_id, Kind.DIFT_INVITATION.value) == (
        DeliveryStatus.SKIPPED.value
    ):
        log.warning("invitation of dift %s to %s skipped: unsendable", dift.dift_id, recipient)
        return
    due = stationery.reminders.due_at(dift.expires_at, now)
    if due is not None:
        uow.difts.schedule_reminder(dift.dift_id, due)
    log.info("invitation of dift %s queued to %s, reminder due %s", dift.dift_id, recipient, due)


def _dift_email(
    dift: Dift, recipient: Recipient, rendered: RenderedEmail, kind: Kind = Kind.DIFT_INVITATION
) -> Email:
    """A dift's invitation or reminder to its recipient, never to go once it has expired."""
    return Email(
        rendered,
        recipient.name,
        recipient.email,
        kind,
        campaign_id="",
        dift_id=dift.dift_id,
        programme_id=dift.programme_id,
        not_after=dift.expires_at,
    )


def release_due_reminders(uow: UnitOfWork, stationery: Stationery, now: datetime) -> int:
    """Queue the reminders that are due, at most one per dift, to recipients who have not
    directed their dift; a reminder due once its dift has expired (a worker that was down) is
    logged as skipped instead, and one whose invitation never reached its recipient is
    dropped. Returns how many were queued."""
    queued = 0
    for dift in uow.difts.with_reminder_due(now):
        uow.difts.reminder_done(dift.dift_id)
        invited = uow.deliveries.status_of_dift(dift.dift_id, Kind.DIFT_INVITATION.value)
        if (
            dift.recipient is None
            or not dift.redeem_url
            or invited
            not in (
                DeliveryStatus.SENT.value,
                DeliveryStatus.PENDING.value,
            )
        ):
            log.info("dift %s: no reminder (its invitation is %s)", dift.dift_id, invited)
            continue
        rendered = words_of("dift reminder", partial(render_reminder, dift, stationery.letterhead))
        email = _dift_email(dift, dift.recipient, rendered, Kind.DIFT_REMINDER)
        expired = None if stationery.reminders.may_go(dift.expires_at, now) else "expired"
        queue_email(uow, stationery, f"dift-reminder:{dift.dift_id}", email, expired)
        if expired:
            log.warning("reminder of dift %s skipped: it expired before it was due", dift.dift_id)
        else:
            queued += 1
    if queued:
        log.info("%d dift reminder(s) queued", queued)
    return queued


def dift_directed(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """A recipient directed their dift: no reminder any more; a confirmation says where it went
    and what it funds (once per dift); and if they asked for the chosen causes' news, they
    become a difteur of each chosen campaign (domain.Consent, source "dift"), who gets its news
    and can unsubscribe in one click, as donors do."""
    data = event.data
    dift_id = data["dift_id"]
    kept = uow.difts.get(dift_id)
    uow.difts.settle(dift_id, "directed", data["directed_at"])
    uow.deliveries.skip_pending_of_dift(
        dift_id, (Kind.DIFT_INVITATION.value, Kind.DIFT_REMINDER.value), "directed"
    )
    recipient = Recipient.from_event(data.get("recipient")) or (kept.recipient if kept else None)
    if recipient is None:
        log.info("dift %s directed: no recipient to confirm it to", dift_id)
        return
    currency = data["currency"]
    allocations = tuple(_allocation(part, currency, kept) for part in data["allocations"])
    rendered = words_of(
        "dift confirmation",
        partial(
            render_dift_confirmation,
            DiftConfirmation(
                brand_name=data.get("brand_name") or (kept.brand_name if kept else ""),
                value=Money(data["value"], currency),
                allocations=allocations,
                recipient_name=recipient.name,
                locale=recipient.locale,
                updates_opt_in=data["updates_opt_in"],
                directed_at=data["directed_at"],
            ),
            stationery.letterhead,
        ),
    )
    email = Email(
        rendered,
        recipient.name,
        recipient.email,
        Kind.DIFT_CONFIRMATION,
        campaign_id="",
        dift_id=dift_id,
        programme_id=data["programme_id"],
    )
    if not queue_email(uow, stationery, event.id, email):
        log.info("confirmation of dift %s already queued", dift_id)
    if data["updates_opt_in"]:
        consent_at = (data.get("consent_at") or data["directed_at"]).astimezone(UTC)
        for part in data["allocations"]:
            _difteur(uow, stationery, recipient, part, kept, consent_at)
    log.info("dift %s directed to %d campaign(s): confirmation queued", dift_id, len(allocations))


def _allocation(part: dict[str, Any], currency: str, kept: Dift | None) -> DiftAllocation:
    """One allocation as the confirmation states it, with its campaign's meal price from the
    dift's shortlist (when this service kept it)."""
    cause = kept.cause(part["campaign_id"]) if kept else None
    return DiftAllocation(
        campaign_title=part.get("campaign_title") or (cause.title if cause else ""),
        campaign_slug=part["campaign_slug"],
        amount=Money(part["amount"], currency),
        meal_price=cause.meal_price if cause else None,
    )


def _difteur(
    uow: UnitOfWork,
    stationery: Stationery,
    recipient: Recipient,
    part: dict[str, Any],
    kept: Dift | None,
    consent_at: datetime,
) -> None:
    """The recipient of a dift asked for the news of a campaign they directed it to."""
    campaign_id = part["campaign_id"]
    known = uow.donors.get(campaign_id, recipient.email, lock=True)
    donor = known or Donor(campaign_id=campaign_id, email=recipient.email)
    uow.donors.save(
        replace(
            donor,
            name=recipient.name or donor.name,
            locale=recipient.locale,
            email_ref=donor.email_ref or stationery.keys.email_ref(recipient.email),
            consent=donor.consent.after_gift(True, consent_at, CONSENT_FROM_DIFT),
        ),
        stationery.clock(),
    )
    cause = kept.cause(campaign_id) if kept else None
    title = part.get("campaign_title") or (cause.title if cause else "")
    if title and uow.campaigns.get(campaign_id) is None:
        uow.campaigns.record(
            CampaignFacts(campaign_id, part["campaign_slug"], title, cause.cause if cause else "")
        )


def dift_expired(event: CloudEvent, uow: UnitOfWork, _stationery: Stationery) -> None:
    """Nobody directed a dift before its programme's expiry: its reminder, and anything of it
    still waiting to go, is cancelled."""
    dift_id = event.data["dift_id"]
    uow.difts.settle(dift_id, "expired", event.data["expired_at"])
    skipped = uow.deliveries.skip_pending_of_dift(
        dift_id, (Kind.DIFT_INVITATION.value, Kind.DIFT_REMINDER.value), "expired"
    )
    log.info("dift %s expired (%d pending email(s) skipped)", dift_id, skipped)


def invitation_concluded(
    uow: UnitOfWork, delivery: store.DueDelivery, status: DeliveryStatus, at: datetime
) -> None:
    """A dift's invitation or reminder left for the relay ("sent") or was refused for good
    ("bounced"): tell the donations service, in the transaction that records it."""
    kind = Kind(delivery.kind)
    if not kind.invites or delivery.dift_id is None or delivery.programme_id is None:
        return
    uow.outbox.add(
        NOTIFICATIONS_TOPIC,
        delivery.programme_id,
        new_event(
            DIFT_INVITATION_SENT,
            "difts/notifications",
            {
                "dift_id": delivery.dift_id,
                "programme_id": delivery.programme_id,
                "kind": kind.invitation_kind,
                "status": status.value,
                "at": at.isoformat(),
            },
            subject=f"difts/{delivery.dift_id}",
        ),
    )
