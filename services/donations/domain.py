"""Pure rules of giving: what a gift costs, which campaigns take gifts, how a donation moves
through its lifecycle. No Flask, no SQL, no Stripe."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from services.shared.money import Money

_DONATION_EVENT_NAMESPACE = uuid.UUID("8f5a3c64-2d1e-4b8e-9a55-0d1f7a5e2c01")


class CampaignStatus(StrEnum):
    """Where a campaign is in its life."""

    DRAFT = "draft"
    LIVE = "live"
    CLOSED = "closed"


class DonationStatus(StrEnum):
    """Where a donation is in its life; only a pending donation can succeed."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


@dataclass(frozen=True)
class Campaign:
    """A cause's fundraising campaign, as far as giving is concerned."""

    id: str
    slug: str
    title: str
    cause: str
    meal_price: Money
    goal_meals: int | None
    status: CampaignStatus

    def accepts_gifts(self) -> bool:
        """Only a live campaign takes donations."""
        return self.status is CampaignStatus.LIVE


@dataclass(frozen=True)
class GiftLimits:
    """The smallest and largest gift accepted, in minor units of the campaign's currency."""

    min_amount: int
    max_amount: int


class GiftRefused(ValueError):
    """A gift that cannot be accepted; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def price_gift(
    campaign: Campaign,
    limits: GiftLimits,
    *,
    amount: int | None = None,
    meals: int | None = None,
    currency: str | None = None,
) -> Money:
    """What the donor pays: either an amount in minor units, or a number of meals at the
    campaign's meal price; in the campaign's currency and within the limits."""
    if not campaign.accepts_gifts():
        raise GiftRefused("campaign", f"campaign {campaign.slug!r} is not taking donations")
    price = campaign.meal_price
    if currency is not None and currency != price.currency:
        raise GiftRefused("currency", f"this campaign takes {price.currency}, not {currency}")
    if (amount is None) == (meals is None):
        raise GiftRefused("amount", "give either an amount or a number of meals")
    gift = price * meals if meals is not None else Money(amount or 0, price.currency)
    field = "meals" if meals is not None else "amount"
    if gift.amount < limits.min_amount:
        raise GiftRefused(field, f"the smallest gift is {limits.min_amount} minor units")
    if gift.amount > limits.max_amount:
        raise GiftRefused(field, f"the largest gift is {limits.max_amount} minor units")
    return gift


def meals_in(gift: Money, meal_price: Money) -> int:
    """How many whole meals a gift pays for on its own."""
    whole, _rest = gift.divmod(meal_price)
    return whole


def succeeded_event_id(donation_id: str) -> str:
    """The id of a donation's succeeded event, the same however often it is produced, so
    that even a duplicated confirmation cannot be counted twice downstream."""
    return str(uuid.uuid5(_DONATION_EVENT_NAMESPACE, f"{donation_id}:succeeded"))
