"""One function per event the service reacts to: update the projection, decide what to send,
and queue it in the delivery log, all in the consumer's transaction (which also records the
event id). Nothing here talks to SMTP: the sender does, from the delivery log.

A fan-out (a news post, a milestone) queues one delivery per donor in that one transaction:
either every donor's row is there or none is, so a crash mid-fan-out can neither lose nor
double anyone; the sender then works through the rows at its own pace."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, select

from services.shared.consumer import Handler, PoisonEvent, on_connection
from services.shared.envelope import CloudEvent
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    DONATION_BOOKED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    MILESTONE_REACHED,
    UPDATE_PUBLISHED,
    load_data,
)
from services.shared.money import Money

from . import store
from .config import DEVELOPMENT_SIGNING_SECRET
from .consent import ConsentKeys
from .domain import ImpactBudget, Reached
from .messages import (
    Letterhead,
    Milestone,
    NewsPost,
    Receipt,
    Refund,
    RenderedEmail,
    UnsendableAddress,
    UnsubscribeLinks,
    build_message,
    mask_email,
    render_impact,
    render_news,
    render_receipt,
    render_refund,
    serialize,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outbox:
    """What handlers need to write emails: the letterhead and the keys of unsubscribe links."""

    letterhead: Letterhead
    keys: ConsentKeys
    # How long a receipt may wait for the ledger's booking of its gift (0: never waits).
    receipt_wait: timedelta = timedelta(0)
    # At most one impact email per donor and campaign in this period (0: one per moment).
    impact: ImpactBudget = ImpactBudget(timedelta(0))
    # What time it is (tests move it to see a period end).
    clock: Callable[[], datetime] = partial(datetime.now, UTC)

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


def _queue(
    conn: Connection,
    outbox: Outbox,
    event_id: str,
    rendered: RenderedEmail,
    recipient: tuple[str, str],
    kind: str,
    campaign_id: str,
    donation_id: str | None = None,
    post_id: str | None = None,
    milestone: str | None = None,
    unsubscribe: UnsubscribeLinks | None = None,
    skipped_because: str | None = None,
) -> bool:
    """Build one message and queue it (or record it skipped, with why); False if this
    delivery already existed."""
    name, email = recipient
    now = outbox.clock()
    wire: str | None = None
    message_id: str | None = None
    if skipped_because is None:
        try:
            message = build_message(rendered, name, email, outbox.letterhead, now, unsubscribe)
            wire = serialize(message)
            message_id = str(message["Message-ID"])
        except UnsendableAddress as error:
            skipped_because = str(error)
    return store.add_delivery(
        conn,
        store.NewDelivery(
            event_id=event_id,
            recipient=email,
            kind=kind,
            campaign_id=campaign_id,
            donation_id=donation_id,
            subject=rendered.subject,
            message_id=message_id,
            message=wire,
            skipped_because=skipped_because,
            recipient_ref=outbox.keys.email_ref(email),
            post_id=post_id,
            milestone=milestone,
        ),
        now,
    )


def donation_succeeded(
    conn: Connection, event: CloudEvent, data: dict[str, Any], outbox: Outbox
) -> None:
    """Stripe confirmed a gift: remember its donor (and their consent) for this campaign and
    queue exactly one receipt to them. A receipt that cannot be addressed is logged as
    skipped, with why."""
    donor = data["donor"]
    store.record_donor(
        conn,
        store.DonorFacts(
            campaign_id=data["campaign_id"],
            email=donor["email"],
            name=donor["name"],
            locale=donor["locale"],
            updates_opt_in=data["updates_opt_in"],
            given_at=data["succeeded_at"],
            email_ref=outbox.keys.email_ref(donor["email"]),
            consent_at=data.get("consent_at"),
        ),
    )
    store.record_campaign(
        conn,
        store.CampaignFacts(
            data["campaign_id"],
            data["campaign_slug"],
            data["campaign_title"],
            data.get("campaign_cause", ""),
        ),
    )
    booking = store.booking_of(conn, data["donation_id"])
    if (
        booking is None
        and outbox.receipt_wait > timedelta(0)
        and store.ledger_books(conn, data["campaign_id"])
    ):
        # The ledger books this campaign's gifts: give it a moment, so the receipt states the
        # meals the ledger counted for this gift.
        store.hold_receipt(
            conn,
            data["donation_id"],
            event.id,
            data["campaign_id"],
            donor["email"],
            json.dumps(event.data, default=datetime.isoformat),
            datetime.now(UTC) + outbox.receipt_wait,
        )
        log.info("receipt for donation %s waits for the ledger", data["donation_id"])
        return
    queue_receipt(conn, outbox, event.id, data, booking)


def queue_receipt(
    conn: Connection,
    outbox: Outbox,
    event_id: str,
    data: dict[str, Any],
    booking: store.Booking | None,
) -> None:
    """Queue the one receipt of a succeeded donation (`data` as its event carried it), with
    the ledger's count of meals when its booking is known."""
    donor = data["donor"]
    currency = data["currency"]
    rendered = render_receipt(
        Receipt(
            donation_id=data["donation_id"],
            campaign_title=data["campaign_title"],
            campaign_slug=data["campaign_slug"],
            cause=data["campaign_cause"],
            amount=Money(data["amount"], currency),
            meal_price=Money(data["meal_price"], currency),
            donor_name=donor["name"],
            locale=donor["locale"],
            given_at=data["succeeded_at"],
            booked_meals=booking.meals if booking and booking.currency == currency else None,
            carried=(
                Money(booking.remainder, currency)
                if booking and booking.currency == currency
                else None
            ),
        ),
        outbox.letterhead,
    )
    queued = _queue(
        conn,
        outbox,
        event_id,
        rendered,
        (donor["name"], donor["email"]),
        store.RECEIPT,
        data["campaign_id"],
        donation_id=data["donation_id"],
    )
    recipient = mask_email(donor["email"])
    if not queued:
        log.info("receipt for donation %s to %s already queued", data["donation_id"], recipient)
    elif _skipped(conn, event_id, donor["email"], store.RECEIPT):
        log.warning(
            "receipt for donation %s to %s skipped: unsendable address",
            data["donation_id"],
            recipient,
        )
    else:
        log.info("receipt for donation %s queued to %s", data["donation_id"], recipient)


def donation_booked(
    conn: Connection, _event: CloudEvent, data: dict[str, Any], outbox: Outbox
) -> None:
    """The ledger booked a gift: keep what it did, and let its receipt go if it was waiting."""
    booking = store.Booking(
        data["donation_id"], data["campaign_id"], data["meals"], data["remainder"], data["currency"]
    )
    store.record_booking(conn, booking, datetime.now(UTC))
    held = store.take_held_receipt(conn, data["donation_id"])
    if held is not None:
        queue_receipt(
            conn,
            outbox,
            held.event_id,
            load_data(DONATION_SUCCEEDED, json.loads(held.data)),
            booking,
        )


def release_overdue_receipts(engine: Engine, outbox: Outbox, now: datetime) -> int:
    """Queue the receipts that waited long enough for the ledger, counting meals from the gift
    alone; returns how many."""
    released = 0
    with engine.begin() as conn:
        for donation_id in store.overdue_held_receipts(conn, now):
            held = store.take_held_receipt(conn, donation_id)
            if held is None:
                continue
            data = load_data(DONATION_SUCCEEDED, json.loads(held.data))
            queue_receipt(conn, outbox, held.event_id, data, store.booking_of(conn, donation_id))
            released += 1
    if released:
        log.info("%d receipt(s) released without the ledger's booking", released)
    return released


def _skipped(conn: Connection, event_id: str, email: str, kind: str) -> bool:
    row = conn.execute(
        select(store.deliveries.c.status).where(
            store.deliveries.c.event_id == event_id,
            store.deliveries.c.recipient == email,
            store.deliveries.c.kind == kind,
        )
    ).first()
    return row is not None and row.status == store.SKIPPED


def donation_refunded(
    conn: Connection, event: CloudEvent, data: dict[str, Any], outbox: Outbox
) -> None:
    """Money went back to a donor: confirm it to them (one email per refund). The donor comes
    with the event, or else from the receipt this service sent for that donation."""
    donor = data.get("donor")
    if donor is None:
        donor = _donor_of_donation(conn, data["campaign_id"], data["donation_id"])
    if donor is None:
        raise PoisonEvent(f"refund of donation {data['donation_id']}: no donor to write to")
    campaign = store.campaign_of(conn, data["campaign_id"])
    title = data.get("campaign_title") or (campaign.title if campaign else data["campaign_slug"])
    currency = data["currency"]
    rendered = render_refund(
        Refund(
            donation_id=data["donation_id"],
            campaign_title=title,
            campaign_slug=data["campaign_slug"],
            cause=campaign.cause if campaign else "",
            amount=Money(data["amount"], currency),
            total_refunded=Money(data["total_refunded"], currency),
            fully_refunded=data["fully_refunded"],
            donor_name=donor["name"],
            locale=donor["locale"],
            refunded_at=data["refunded_at"],
        ),
        outbox.letterhead,
    )
    _queue(
        conn,
        outbox,
        event.id,
        rendered,
        (donor["name"], donor["email"]),
        store.REFUND,
        data["campaign_id"],
        donation_id=data["donation_id"],
    )
    log.info("refund confirmation of donation %s queued", data["donation_id"])


def _donor_of_donation(
    conn: Connection, campaign_id: str, donation_id: str
) -> dict[str, Any] | None:
    receipt = conn.execute(
        select(store.deliveries.c.recipient).where(
            store.deliveries.c.donation_id == donation_id,
            store.deliveries.c.kind == store.RECEIPT,
        )
    ).first()
    if receipt is None or receipt.recipient.startswith("erased:"):
        return None
    row = conn.execute(
        select(store.donors.c.name, store.donors.c.locale).where(
            store.donors.c.campaign_id == campaign_id,
            store.donors.c.email == receipt.recipient.strip().lower(),
        )
    ).first()
    return {
        "email": receipt.recipient,
        "name": row.name if row else "",
        "locale": row.locale if row else "en",
    }


def campaign_published(
    conn: Connection, _event: CloudEvent, data: dict[str, Any], _outbox: Outbox
) -> None:
    """Keep a campaign's title and cause, which news and impact emails name."""
    store.record_campaign(
        conn,
        store.CampaignFacts(data["campaign_id"], data["slug"], data["title"], data["cause"]),
    )


def update_published(
    conn: Connection, event: CloudEvent, data: dict[str, Any], outbox: Outbox
) -> None:
    """A campaign published a news post: queue it to every donor of the campaign who asked
    for news, once each; donors who unsubscribed get a skipped row, so counts show them."""
    campaign_id = data["campaign_id"]
    store.record_campaign(
        conn,
        store.CampaignFacts(
            campaign_id, data["campaign_slug"], data["campaign_title"], data.get("cause", "")
        ),
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

    def render(donor: store.Donor, links: UnsubscribeLinks) -> RenderedEmail:
        return render_news(post, donor.locale, outbox.letterhead, links)

    queued, skipped = _fan_out(
        conn, event, outbox, campaign_id, store.NEWS, render, post_id=data["post_id"]
    )
    log.info(
        "news post %s of campaign %s queued to %d donors (%d unsubscribed)",
        data["post_id"],
        campaign_id,
        queued,
        skipped,
    )


def milestone_reached(
    conn: Connection, event: CloudEvent, data: dict[str, Any], outbox: Outbox
) -> None:
    """A campaign crossed milestones of meals: each donor who asked for news gets one email
    naming the highest, within their impact budget (domain.ImpactBudget): at once if their
    last impact email of this campaign is older than the period, else held and sent, naming
    the highest milestone reached meanwhile, when the period is over."""
    campaign_id = data["campaign_id"]
    reached = Reached.from_event(data)
    now = outbox.clock()
    queued = held = skipped = 0
    for donor in store.donors_of(conn, campaign_id):
        if not donor.wants_news:
            links = _links(conn, outbox, donor, campaign_id)
            _queue_impact(
                conn, outbox, event.id, donor, campaign_id, reached, links, "unsubscribed"
            )
            skipped += 1
            continue
        decision = outbox.impact.on_reached(donor.impact, reached, now)
        if decision.state == donor.impact:
            continue  # nothing this donor was not told already, or is not about to be
        if decision.send is not None:
            links = _links(conn, outbox, donor, campaign_id)
            _queue_impact(conn, outbox, event.id, donor, campaign_id, decision.send, links)
            queued += 1
        else:
            held += 1
        store.save_impact(
            conn,
            campaign_id,
            donor.email,
            decision.state,
            decision.state.due_at(outbox.impact.period),
        )
    log.info(
        "milestone %s of campaign %s: %d emails queued, %d held for the budget, %d unsubscribed",
        data["milestone"],
        campaign_id,
        queued,
        held,
        skipped,
    )


def release_due_impact(engine: Engine, outbox: Outbox, now: datetime) -> int:
    """Queue the impact emails held for the budget whose period is over, each naming the
    highest milestone reached meanwhile; returns how many."""
    released = 0
    with engine.begin() as conn:
        for donor in store.donors_with_impact_due(conn, now):
            decision = outbox.impact.on_due(donor.impact, now)
            state = decision.state
            if decision.send is not None and donor.wants_news:
                links = _links(conn, outbox, donor, donor.campaign_id)
                milestone = decision.send.milestone
                _queue_impact(
                    conn,
                    outbox,
                    f"impact-held:{donor.campaign_id}:{milestone}",
                    donor,
                    donor.campaign_id,
                    decision.send,
                    links,
                )
                released += 1
            elif decision.send is not None:
                state = replace(donor.impact, held=None)  # unsubscribed meanwhile
            store.save_impact(
                conn, donor.campaign_id, donor.email, state, state.due_at(outbox.impact.period)
            )
    if released:
        log.info("%d held impact email(s) queued", released)
    return released


def _links(
    conn: Connection, outbox: Outbox, donor: store.Donor, campaign_id: str
) -> UnsubscribeLinks:
    """A donor's unsubscribe links (giving them a pseudonym if they were recorded before
    pseudonyms existed, or their links would find nobody)."""
    email_ref = donor.email_ref
    if email_ref is None:
        email_ref = outbox.keys.email_ref(donor.email)
        store.set_email_ref(conn, donor.email, email_ref)
    return outbox.unsubscribe_links(email_ref, campaign_id)


def _queue_impact(
    conn: Connection,
    outbox: Outbox,
    event_id: str,
    donor: store.Donor,
    campaign_id: str,
    reached: Reached,
    links: UnsubscribeLinks,
    skipped_because: str | None = None,
) -> bool:
    """Write one impact email naming `reached` to one donor, and queue it (or log it skipped)."""
    campaign = store.campaign_of(conn, campaign_id)
    milestone = Milestone(
        campaign_title=campaign.title if campaign else campaign_id,
        campaign_slug=campaign.slug if campaign else campaign_id,
        cause=campaign.cause if campaign else "",
        meals_funded=reached.meals_funded,
        goal_meals=reached.goal_meals,
        meals=reached.meals,
        goal_words=reached.goal_words,
    )
    try:
        rendered = render_impact(milestone, donor.locale, outbox.letterhead, links)
    except Exception as error:
        # A template that cannot render this event will not render it on a retry either.
        raise PoisonEvent(f"cannot write the impact email: {type(error).__name__}") from error
    return _queue(
        conn,
        outbox,
        event_id,
        rendered,
        (donor.name, donor.email),
        store.IMPACT,
        campaign_id,
        milestone=reached.milestone,
        unsubscribe=links,
        skipped_because=skipped_because,
    )


def _fan_out(
    conn: Connection,
    event: CloudEvent,
    outbox: Outbox,
    campaign_id: str,
    kind: str,
    render: Any,
    post_id: str | None = None,
    milestone: str | None = None,
) -> tuple[int, int]:
    queued = skipped = 0
    for donor in store.donors_of(conn, campaign_id):
        links = _links(conn, outbox, donor, campaign_id)
        try:
            rendered = render(donor, links)
        except Exception as error:
            # A template that cannot render this event will not render it on a retry either.
            raise PoisonEvent(f"cannot write the {kind} email: {type(error).__name__}") from error
        added = _queue(
            conn,
            outbox,
            event.id,
            rendered,
            (donor.name, donor.email),
            kind,
            campaign_id,
            post_id=post_id,
            milestone=milestone,
            unsubscribe=links,
            skipped_because=None if donor.wants_news else "unsubscribed",
        )
        if added and donor.wants_news:
            queued += 1
        elif added:
            skipped += 1
    return queued, skipped


def event_handlers(
    letterhead: Letterhead,
    keys: ConsentKeys | None = None,
    receipt_wait: timedelta = timedelta(0),
    impact_period: timedelta = timedelta(0),
) -> dict[str, Handler]:
    """The events this service acts on, by type; every other type is skipped."""
    return handlers_writing_with(
        Outbox(
            letterhead,
            keys or ConsentKeys(DEVELOPMENT_SIGNING_SECRET),
            receipt_wait,
            ImpactBudget(impact_period),
        )
    )


def handlers_writing_with(outbox: Outbox) -> dict[str, Handler]:
    """The handlers, by event type, writing their emails with `outbox`."""
    return {
        DONATION_BOOKED: on_connection(partial(donation_booked, outbox=outbox)),
        DONATION_SUCCEEDED: on_connection(partial(donation_succeeded, outbox=outbox)),
        DONATION_REFUNDED: on_connection(partial(donation_refunded, outbox=outbox)),
        CAMPAIGN_PUBLISHED: on_connection(partial(campaign_published, _outbox=outbox)),
        UPDATE_PUBLISHED: on_connection(partial(update_published, outbox=outbox)),
        MILESTONE_REACHED: on_connection(partial(milestone_reached, outbox=outbox)),
    }
