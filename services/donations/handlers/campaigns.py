"""The campaign manager's commands: write a draft, edit it, publish it, close it, change a
live campaign's meal price from a date on. Every change a donor can see is announced."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.shared.money import Money

from ..domain.campaigns import (
    Campaign,
    CampaignRuleBroken,
    CampaignStatus,
    MealPriceChange,
    check_meal_price_change,
)
from . import UnitOfWork
from .publishing import announce_campaign, announce_closed, announce_meal_price


class UnknownCampaign(LookupError):
    """No campaign has this slug."""


def require_campaign(uow: UnitOfWork, slug: str) -> Campaign:
    """The campaign with this slug; UnknownCampaign if there is none."""
    campaign = uow.campaigns.by_slug(slug)
    if campaign is None:
        raise UnknownCampaign(slug)
    return campaign


@dataclass(frozen=True)
class CreateCampaign:
    """A draft campaign: its slug, meal price, and texts (title and cause at least)."""

    slug: str
    meal_price: Money
    texts: Mapping[str, Any] = field(default_factory=dict)


def create_campaign(command: CreateCampaign, uow: UnitOfWork) -> Campaign:
    """Write a draft campaign; nothing is announced until it is published."""
    if uow.campaigns.by_slug(command.slug) is not None:
        raise CampaignRuleBroken("slug", f"a campaign with slug {command.slug!r} exists")
    draft = Campaign.draft(
        str(uuid.uuid4()), command.slug, command.meal_price, command.texts, datetime.now(UTC)
    )
    uow.campaigns.add(draft)
    return draft


def publish_campaign(command: CreateCampaign, uow: UnitOfWork) -> tuple[str, bool]:
    """Create a live campaign (if no campaign has this slug) and announce it; return its id
    and whether it was created now."""
    existing = uow.campaigns.by_slug(command.slug)
    if existing is not None:
        return existing.id, False
    draft = create_campaign(command, uow)
    return go_live(draft.slug, uow).id, True


@dataclass(frozen=True)
class EditCampaign:
    """New texts and goal for a campaign (a draft's meal price and currency too)."""

    slug: str
    changes: Mapping[str, Any]


def edit_campaign(command: EditCampaign, uow: UnitOfWork) -> Campaign:
    """Change a campaign's texts and goal (and a draft's meal price); a live campaign's new
    facts are announced. A live meal price changes only through change_meal_price."""
    edited = require_campaign(uow, command.slug).edited(command.changes)
    if command.changes:
        uow.campaigns.save(edited)
        if edited.status is CampaignStatus.LIVE:
            announce_campaign(uow, edited)
    return edited


def go_live(slug: str, uow: UnitOfWork) -> Campaign:
    """Publish a draft campaign: it takes gifts from now and is announced."""
    live = require_campaign(uow, slug).gone_live(datetime.now(UTC))
    uow.campaigns.save(live)
    announce_campaign(uow, live)
    return live


def close_campaign(slug: str, uow: UnitOfWork) -> Campaign:
    """Stop a live campaign taking gifts, and announce it."""
    closed = require_campaign(uow, slug).closed(datetime.now(UTC))
    uow.campaigns.save(closed)
    announce_closed(uow, closed)
    return closed


@dataclass(frozen=True)
class ChangeMealPrice:
    """A campaign's meal price from a date on."""

    slug: str
    meal_price: Money
    effective_from: datetime


def change_meal_price(command: ChangeMealPrice, uow: UnitOfWork) -> dict[str, Any]:
    """Schedule a meal price from a date on (a draft's changes at once), and announce it."""
    now = datetime.now(UTC)
    campaign = require_campaign(uow, command.slug)
    check_meal_price_change(campaign, command.meal_price, command.effective_from, now)
    if campaign.status is CampaignStatus.DRAFT:
        uow.campaigns.save(campaign.edited({"meal_price": command.meal_price.amount}))
        return {"meal_price": command.meal_price.amount, "effective_from": now, "announced": False}
    # The price in force just before the change takes effect (the ledger prices gifts by it).
    previous = uow.campaigns.meal_price_at(campaign.id, command.effective_from)
    change = MealPriceChange(
        id=str(uuid.uuid4()),
        campaign_id=campaign.id,
        meal_price=command.meal_price,
        previous_meal_price=previous if previous is not None else campaign.meal_price.amount,
        effective_from=command.effective_from,
        created_at=now,
    )
    uow.campaigns.add_meal_price_change(change)
    announce_meal_price(uow, campaign, change)
    answer = {"meal_price": change.meal_price.amount, "effective_from": change.effective_from}
    return {**answer, "announced": True}
