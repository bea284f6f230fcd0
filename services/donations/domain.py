"""Pure rules of giving: what a gift costs, which campaigns take gifts, how a donation moves
through its lifecycle. No Flask, no SQL, no Stripe."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
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
    """A cause's fundraising campaign: what donors read, and the price of one meal in force."""

    id: str
    slug: str
    title: str
    cause: str
    meal_price: Money
    goal_meals: int | None
    status: CampaignStatus
    cause_certified: bool = False
    action_zone: str = ""
    summary: str = ""
    story_markdown: str = ""
    money_uses: tuple[str, ...] = field(default_factory=tuple)

    def accepts_gifts(self) -> bool:
        """Only a live campaign takes donations."""
        return self.status is CampaignStatus.LIVE

    def can_publish(self) -> bool:
        """A draft goes live once; a closed campaign stays closed."""
        return self.status is CampaignStatus.DRAFT

    def can_close(self) -> bool:
        """Only a live campaign can be closed."""
        return self.status is CampaignStatus.LIVE


class CampaignRuleBroken(ValueError):
    """A change a campaign's state does not allow; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_meal_price_change(
    campaign: Campaign, new_price: Money, effective_from: datetime, now: datetime
) -> None:
    """A live campaign's meal price changes only from a date not in the past, in the same
    currency, so no gift already counted is re-priced silently."""
    if campaign.status is CampaignStatus.CLOSED:
        raise CampaignRuleBroken("campaign", f"campaign {campaign.slug!r} is closed")
    if new_price.currency != campaign.meal_price.currency:
        raise CampaignRuleBroken(
            "currency", f"the meal price stays in {campaign.meal_price.currency}"
        )
    if new_price.amount < 1:
        raise CampaignRuleBroken("meal_price", "a meal costs at least one minor unit")
    if effective_from < now.replace(microsecond=0):
        raise CampaignRuleBroken("effective_from", "a price change cannot take effect in the past")


@dataclass(frozen=True)
class ProcessingFee:
    """The processor's estimated fee: a percentage (in basis points) plus a fixed part."""

    percent_bp: int
    fixed: int

    def to_cover(self, gift: Money) -> Money:
        """What a donor adds so that, after the estimated fee on the whole payment, the cause
        receives `gift` whole: total = ceil((gift + fixed) / (1 - percent)); added = total -
        gift. Integer arithmetic only."""
        denominator = 10_000 - self.percent_bp
        numerator = (gift.amount + self.fixed) * 10_000
        total = -(-numerator // denominator)
        return Money(total - gift.amount, gift.currency)


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


def parse_major_amount(text: str, currency_exponent: int) -> int | None:
    """A donor-typed amount such as "13,50", "13.5" or "20" in minor units; None if it is not
    a plain positive decimal number with at most the currency's decimals."""
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "").replace(",", ".")
    if not cleaned.isascii():
        return None  # other scripts' digits are digits to Python, not to a payment form
    whole, _dot, fraction = cleaned.partition(".")
    if not whole.isdigit() or len(whole) > 9:
        return None
    if _dot and (not fraction.isdigit() or len(fraction) > currency_exponent):
        return None
    fraction = fraction.ljust(currency_exponent, "0")
    return int(whole) * 10**currency_exponent + (int(fraction) if fraction else 0)


def meals_in(gift: Money, meal_price: Money) -> int:
    """How many whole meals a gift pays for on its own."""
    whole, _rest = gift.divmod(meal_price)
    return whole


def succeeded_event_id(donation_id: str) -> str:
    """The id of a donation's succeeded event, the same however often it is produced, so
    that even a duplicated confirmation cannot be counted twice downstream."""
    return str(uuid.uuid5(_DONATION_EVENT_NAMESPACE, f"{donation_id}:succeeded"))


def derived_event_id(*parts: str) -> str:
    """A stable event id for one fact (a refund, a dispute's opening, a payout), so producing
    it twice publishes the same event id and consumers count it once."""
    return str(uuid.uuid5(_DONATION_EVENT_NAMESPACE, ":".join(parts)))


def donation_id_for_retry(idempotency_key: str, campaign_slug: str) -> str:
    """The donation id a retried request with the same Idempotency-Key gets again."""
    return str(
        uuid.uuid5(_DONATION_EVENT_NAMESPACE, f"idempotency:{campaign_slug}:{idempotency_key}")
    )


# Where a donation may go when Stripe reports an outcome. A paid checkout wins over an earlier
# expiry or cancel (money did move); nothing leaves a final refund.
SUCCEEDS_FROM = (
    DonationStatus.PENDING,
    DonationStatus.EXPIRED,
    DonationStatus.CANCELED,
    DonationStatus.FAILED,
)
ENDS_UNPAID_FROM = (DonationStatus.PENDING,)
REFUNDABLE = (DonationStatus.SUCCEEDED, DonationStatus.DISPUTED, DonationStatus.REFUNDED)
