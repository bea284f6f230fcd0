"""Campaigns: their facts, their news posts fanned out to donors, their milestones within
each donor's impact budget.

A fan-out (a news post, a milestone) queues one delivery per donor in the consumer's one
transaction: either every donor's row is there or none is, so a crash mid-fan-out can neither
lose nor double anyone; the sender then works through the rows at its own pace."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from functools import partial

from services.shared.envelope import CloudEvent

from ..domain import CampaignFacts, Donor, Kind, Reached
from ..emails import Milestone, NewsPost, UnsubscribeLinks, render_impact, render_news
from .queueing import Email, Stationery, UnitOfWork, queue_email, words_of

log = logging.getLogger(__name__)


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
        rendered = words_of(
            "news", partial(render_news, post, donor.locale, stationery.letterhead, links)
        )
        email = Email.to(donor, rendered, Kind.NEWS, post_id=data["post_id"], unsubscribe=links)
        why = None if donor.wants_news else "unsubscribed"
        if queue_email(uow, stationery, event.id, email, why):
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
    rendered = words_of(
        "impact", partial(render_impact, milestone, donor.locale, stationery.letterhead, links)
    )
    email = Email.to(donor, rendered, Kind.IMPACT, milestone=reached.milestone, unsubscribe=links)
    return queue_email(uow, stationery, event_id, email, skipped_because)
