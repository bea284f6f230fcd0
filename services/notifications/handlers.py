"""One function per event the service reacts to and per command of its API and pages: load
through the unit of work, apply the domain's rules, write the emails to send into the delivery
log. Nothing here talks to SMTP (the sender does, from the delivery log) or holds SQL (the
unit of work's repositories do).

A fan-out (a news post, a milestone) queues one delivery per donor in the consumer's one
transaction: either every donor's row is there or none is, so a crash mid-fan-out can neither
lose nor double anyone; the sender then works through the rows at its own pace.

A company's dift (README, "Company difts") gets one invitation, queued when it is issued, and
at most one reminder: scheduled then, queued by the worker when due (release_due_reminders),
cancelled when the dift is directed or expires, and never sent once it has expired. When an
invitation or reminder leaves for the relay or bounces, the sender's outcome publishes
dift_invitation_sent through the outbox, in the transaction of the delivery's new status
(invitation_concluded)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from services.shared.consumer import Handler, PoisonEvent
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    DIFT_DIRECTED,
    DIFT_EXPIRED,
    DIFT_INVITATION_SENT,
    DIFT_ISSUED,
    DONATION_BOOKED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    MILESTONE_REACHED,
    NOTIFICATIONS_TOPIC,
    UPDATE_PUBLISHED,
)
from services.shared.money import Money
from services.shared.unit_of_work import Outbox

from . import store
from .consent import ConsentKeys, UnsubscribeRequest
from .domain import (
    CONSENT_AT_CHECKOUT,
    CONSENT_FROM_DIFT,
    CampaignFacts,
    DeliveryStatus,
    Dift,
    Donor,
    ImpactBudget,
    Kind,
    Reached,
    ReceiptFacts,
    Recipient,
    ReminderRule,
)
from .messages import (
    DiftAllocation,
    DiftConfirmation,
    Letterhead,
    Milestone,
    NewsPost,
    Refund,
    RenderedEmail,
    UnsendableAddress,
    UnsubscribeLinks,
    build_message,
    mask_email,
    render_dift_confirmation,
    render_impact,
    render_invitation,
    render_news,
    render_receipt,
    render_refund,
    render_reminder,
    serialize,
)

log = logging.getLogger(__name__)


class UnitOfWork(Protocol):
    """What the handlers use of a unit of work (unit_of_work.NotificationsUnitOfWork; the
    unit tests' fake)."""

    donors: store.Donors
    campaigns: store.Campaigns
    difts: store.Difts
    deliveries: store.Deliveries

    @property
    def outbox(self) -> Outbox:
        """Where the service's events go (dift_invitation_sent), in the same transaction;
        handlers only read it off the unit of work."""


@dataclass(frozen=True)
class Stationery:
    """What handlers need to write emails: the letterhead, the keys of unsubscribe links and
    pseudonyms, the impact budget, the dift reminder rule, and the clock."""

    letterhead: Letterhead
    keys: ConsentKeys
    # At most one impact email per donor and campaign in this period (0: one per moment).
    impact: ImpactBudget = ImpactBudget(timedelta(0))
    # What time it is (tests move it to see a period end).
    clock: Callable[[], datetime] = partial(datetime.now, UTC)
    # When a dift's one reminder goes: REMINDER_DAYS before it expires.
    reminders: ReminderRule = ReminderRule()

    def unsubscribe_links(self, email_ref: str, campaign_id: str) -> UnsubscribeLinks:
        """Links for one donor: out of this campaign's news, or out of every campaign's."""
        return UnsubscribeLinks(
            this_campaign=self.letterhead.unsubscribe_url(
                self.keys.unsubscribe_token(email_ref, campaign_id)
            ),
            every_campaign=self.letterhead.unsubscribe_url(
                self.keys.unsubscribe_token(email_ref, None)
            ),
        )


@dataclass(frozen=True)
class Email:
    """One email to queue: its words, to whom, what it is and what it is about."""

    rendered: RenderedEmail
    name: str
    address: str
    kind: Kind
    campaign_id: str
    donation_id: str | None = None
    post_id: str | None = None
    milestone: str | None = None
    unsubscribe: UnsubscribeLinks | None = None
    dift_id: str | None = None
    programme_id: str | None = None
    not_after: datetime | None = None

    @classmethod
    def to(cls, donor: Donor, rendered: RenderedEmail, kind: Kind, **about: Any) -> Email:
        """An email to one donor of a campaign, about what `about` names."""
        return cls(rendered, donor.name, donor.email, kind, donor.campaign_id, **about)


def _written(kind: str, render: Callable[[], RenderedEmail]) -> RenderedEmail:
    """An email's words; a template that cannot render this event will not render it on a
    retry either, so the event cannot be applied."""
    try:
        return render()
    except Exception as error:
        raise PoisonEvent(f"cannot write the {kind} email: {type(error).__name__}") from error


def _queue(
    uow: UnitOfWork,
    stationery: Stationery,
    event_id: str,
    email: Email,
    skipped_because: str | None = None,
) -> bool:
    """Build one message and queue it (or log it skipped, with why); False if this delivery
    already existed."""
    now = stationery.clock()
    wire = message_id = None
    if skipped_because is None:
        try:
            message = build_message(
                email.rendered,
                email.name,
                email.address,
                stationery.letterhead,
                now,
                email.unsubscribe,
            )
            wire, message_id = serialize(message), str(message["Message-ID"])
        except UnsendableAddress as error:
            skipped_because = str(error)
    return uow.deliveries.add(
        store.NewDelivery(
            event_id=event_id,
            recipient=email.address,
            kind=email.kind.value,
            campaign_id=email.campaign_id,
            donation_id=email.donation_id,
            subject=email.rendered.subject,
            message_id=message_id,
            message=wire,
            skipped_because=skipped_because,
            recipient_ref=stationery.keys.email_ref(email.address),
            post_id=email.post_id,
            milestone=email.milestone,
            dift_id=email.dift_id,
            programme_id=email.programme_id,
            not_after=email.not_after,
        ),
        now,
    )


# --- donations ------------------------------------------------------------------------------


def donation_succeeded(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """Stripe confirmed a gift: remember its donor for this campaign, with their consent to
    news (domain.Consent). The receipt waits for the ledger's booking (donation_booked)."""
    data = event.data
    given = data["donor"]
    now = stationery.clock()
    known = uow.donors.get(data["campaign_id"], given["email"], lock=True)
    donor = known or Donor(campaign_id=data["campaign_id"], email=given["email"])
    consent_at = data.get("consent_at") or data["succeeded_at"]
    uow.donors.save(
        replace(
            donor,
            name=given["name"],
            locale=given["locale"],
            email_ref=donor.email_ref or stationery.keys.email_ref(given["email"]),
            consent=donor.consent.after_gift(
                data["updates_opt_in"], consent_at.astimezone(UTC), CONSENT_AT_CHECKOUT
            ),
        ),
        now,
    )
    uow.campaigns.record(
        CampaignFacts(
            data["campaign_id"],
            data["campaign_slug"],
            data["campaign_title"],
            data.get("campaign_cause", ""),
        )
    )


def donation_booked(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """The ledger booked a gift: its receipt goes now, exactly once, stating the meals the
    ledger counted for it (the receipt's one trigger). A gift re-synced from Stripe carries no
    receipt facts, and gets none."""
    receipt = ReceiptFacts.from_booked(event.data)
    if receipt is None:
        log.info("donation %s booked without receipt facts: no receipt", event.data["donation_id"])
        return
    email = Email(
        render_receipt(receipt, stationery.letterhead),
        receipt.donor_name,
        receipt.donor_email,
        Kind.RECEIPT,
        receipt.campaign_id,
        donation_id=receipt.donation_id,
    )
    queued = _queue(uow, stationery, event.id, email)
    recipient = mask_email(receipt.donor_email)
    status = uow.deliveries.status_of(event.id, receipt.donor_email, Kind.RECEIPT.value)
    if not queued:
        log.info("receipt for donation %s to %s already queued", receipt.donation_id, recipient)
    elif status == DeliveryStatus.SKIPPED.value:
        log.warning(
            "receipt for donation %s to %s skipped: unsendable address",
            receipt.donation_id,
            recipient,
        )
    else:
        log.info("receipt for donation %s queued to %s", receipt.donation_id, recipient)


def donation_refunded(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """Money went back to a donor: confirm it to them (one email per refund). The donor comes
    with the event, or else from the receipt this service sent for that donation."""
    data = event.data
    donor = data.get("donor") or _donor_of_donation(uow, data["campaign_id"], data["donation_id"])
    if donor is None:
        raise PoisonEvent(f"refund of donation {data['donation_id']}: no donor to write to")
    campaign = uow.campaigns.get(data["campaign_id"])
    currency = data["currency"]
    rendered = render_refund(
        Refund(
            donation_id=data["donation_id"],
            campaign_title=data.get("campaign_title")
            or (campaign.title if campaign else data["campaign_slug"]),
            campaign_slug=data["campaign_slug"],
            cause=campaign.cause if campaign else "",
            amount=Money(data["amount"], currency),
            total_refunded=Money(data["total_refunded"], currency),
            fully_refunded=data["fully_refunded"],
            donor_name=donor["name"],
            locale=donor["locale"],
            refunded_at=data["refunded_at"],
        ),
        stationery.letterhead,
    )
    email = Email(
        rendered,
        donor["name"],
        donor["email"],
        Kind.REFUND,
        data["campaign_id"],
        donation_id=data["donation_id"],
    )
    _queue(uow, stationery, event.id, email)
    log.info("refund confirmation of donation %s queued", data["donation_id"])


def _donor_of_donation(
    uow: UnitOfWork, campaign_id: str, donation_id: str
) -> dict[str, Any] | None:
    """Whom a donation's receipt was sent to, as the refund confirmation names them."""
    address = uow.deliveries.receipt_recipient(donation_id)
    if address is None:
        return None
    donor = uow.donors.get(campaign_id, address)
    return {
        "email": address,
        "name": donor.name if donor else "",
        "locale": donor.locale if donor else "en",
    }


# --- campaigns: their facts, their news, their milestones -----------------------------------


def campaign_published(event: CloudEvent, uow: UnitOfWork, _stationery: Stationery) -> None:
    """Keep a campaign's title and cause, which news and impact emails name."""
    data = event.data
    uow.campaigns.record(
        CampaignFacts(data["campaign_id"], data["slug"], data["title"], data["cause"])
    )


def update_published(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """A campaign published a news post: queue it to every donor of the campaign who asked
    for news, once each; donors who unsubscribed get a skipped row, so counts show them."""
    data = event.data
    campaign_id = data["campaign_id"]
    uow.campaigns.record(
        CampaignFacts(
            campaign_id, data["campaign_slug"], data["campaign_title"], data.get("cause", "")
        )
    )
    post = NewsPost(
        campaign_title=data["campaign_title"],
        campaign_slug=data["campaign_slug"],
        cause=data.get("cause", ""),
        title=data["title"],
        body_markdown=data["body_markdown"],
        body_html=data["body_html"],
        url=data["url"],
    )
    queued = skipped = 0
    for donor in uow.donors.of_campaign(campaign_id):
        links = _links(uow, stationery, donor)
        rendered = _written(
            "news", partial(render_news, post, donor.locale, stationery.letterhead, links)
        )
        email = Email.to(donor, rendered, Kind.NEWS, post_id=data["post_id"], unsubscribe=links)
        why = None if donor.wants_news else "unsubscribed"
        if _queue(uow, stationery, event.id, email, why):
            queued, skipped = (queued + 1, skipped) if why is None else (queued, skipped + 1)
    log.info(
        "news post %s of campaign %s queued to %d donors (%d unsubscribed)",
        data["post_id"],
        campaign_id,
        queued,
        skipped,
    )


def milestone_reached(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """A campaign crossed milestones of meals: each donor who asked for news gets one email
    naming the highest, within their impact budget (domain.ImpactBudget): at once if their
    last impact email of this campaign is older than the period, else held and sent, naming
    the highest milestone reached meanwhile, when the period is over."""
    campaign_id = event.data["campaign_id"]
    reached = Reached.from_event(event.data)
    now = stationery.clock()
    queued = held = skipped = 0
    for donor in uow.donors.of_campaign(campaign_id):
        if not donor.wants_news:
            _queue_impact(uow, stationery, event.id, donor, reached, "unsubscribed")
            skipped += 1
            continue
        decision = stationery.impact.on_reached(donor.impact, reached, now)
        if decision.state == donor.impact:
            continue  # nothing this donor was not told already, or is not about to be
        if decision.send is not None:
            _queue_impact(uow, stationery, event.id, donor, decision.send)
            queued += 1
        else:
            held += 1
        due = decision.state.due_at(stationery.impact.period)
        uow.donors.save_impact(campaign_id, donor.email, decision.state, due)
    log.info(
        "milestone %s of campaign %s: %d emails queued, %d held for the budget, %d unsubscribed",
        event.data["milestone"],
        campaign_id,
        queued,
        held,
        skipped,
    )


def release_due_impact(uow: UnitOfWork, stationery: Stationery, now: datetime) -> int:
    """Queue the impact emails held for the budget whose period is over, each naming the
    highest milestone reached meanwhile; returns how many."""
    released = 0
    for donor in uow.donors.with_impact_due(now):
        decision = stationery.impact.on_due(donor.impact, now)
        state = decision.state
        if decision.send is not None and donor.wants_news:
            event_id = f"impact-held:{donor.campaign_id}:{decision.send.milestone}"
            _queue_impact(uow, stationery, event_id, donor, decision.send)
            released += 1
        elif decision.send is not None:
            state = replace(donor.impact, held=None)  # unsubscribed meanwhile
        due = state.due_at(stationery.impact.period)
        uow.donors.save_impact(donor.campaign_id, donor.email, state, due)
    if released:
        log.info("%d held impact email(s) queued", released)
    return released


def _links(uow: UnitOfWork, stationery: Stationery, donor: Donor) -> UnsubscribeLinks:
    """A donor's unsubscribe links (giving them a pseudonym if they were recorded before
    pseudonyms existed, or their links would find nobody)."""
    email_ref = donor.email_ref
    if email_ref is None:
        email_ref = stationery.keys.email_ref(donor.email)
        uow.donors.set_email_ref(donor.email, email_ref)
    return stationery.unsubscribe_links(email_ref, donor.campaign_id)


def _queue_impact(
    uow: UnitOfWork,
    stationery: Stationery,
    event_id: str,
    donor: Donor,
    reached: Reached,
    skipped_because: str | None = None,
) -> bool:
    """Write one impact email naming `reached` to one donor, and queue it (or log it skipped)."""
    campaign = uow.campaigns.get(donor.campaign_id)
    links = _links(uow, stationery, donor)
    milestone = Milestone(
        campaign_title=campaign.title if campaign else donor.campaign_id,
        campaign_slug=campaign.slug if campaign else donor.campaign_id,
        cause=campaign.cause if campaign else "",
        meals_funded=reached.meals_funded,
        goal_meals=reached.goal_meals,
        meals=reached.meals,
        goal_words=reached.goal_words,
    )
    rendered = _written(
        "impact", partial(render_impact, milestone, donor.locale, stationery.letterhead, links)
    )
    email = Email.to(donor, rendered, Kind.IMPACT, milestone=reached.milestone, unsubscribe=links)
    return _queue(uow, stationery, event_id, email, skipped_because)


# --- company difts --------------------------------------------------------------------------


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
    rendered = _written(
        "dift invitation",
        partial(
            render_invitation,
            dift,
            stationery.letterhead,
            data.get("message_markdown", ""),
            data.get("message_html", ""),
        ),
    )
    if not _queue(uow, stationery, event.id, _dift_email(dift, dift.recipient, rendered)):
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
        rendered = _written("dift reminder", partial(render_reminder, dift, stationery.letterhead))
        email = _dift_email(dift, dift.recipient, rendered, Kind.DIFT_REMINDER)
        expired = None if stationery.reminders.may_go(dift.expires_at, now) else "expired"
        _queue(uow, stationery, f"dift-reminder:{dift.dift_id}", email, expired)
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
    rendered = _written(
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
    if not _queue(uow, stationery, event.id, email):
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


# --- what donors and operators ask ----------------------------------------------------------


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
