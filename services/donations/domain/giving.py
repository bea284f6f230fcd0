"""What a gift costs: the limits, the processing fee a donor may cover, amounts typed in the
giving form, and the meals the form prices a gift at."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from services.shared.money import Money

from .campaigns import Campaign, RuleBroken


@dataclass(frozen=True)
class Gift:
    """A donor's request to give, as validated at the edge: an amount or a number of meals,
    who gives, what they chose (news, anonymity, a public message, covering the fee), and the
    request's correlation id and Idempotency-Key."""

    campaign_slug: str
    amount: int | None
    meals: int | None
    currency: str | None
    donor_email: str
    donor_name: str
    locale: str
    updates_opt_in: bool
    correlation_id: str | None
    anonymous: bool = False
    public_message: str | None = None
    show_message: bool = False
    cover_fee: bool = False
    idempotency_key: str | None = None

    def fingerprint(self) -> str | None:
        """What a request with an Idempotency-Key asked for, so a retry under the same key can
        be told from a new one (None without a key)."""
        if not self.idempotency_key:
            return None
        asked = [
            self.campaign_slug,
            self.amount,
            self.meals,
            self.currency,
            self.donor_email,
            self.donor_name,
            self.updates_opt_in,
            self.anonymous,
            self.public_message,
            self.show_message,
            self.cover_fee,
        ]
        return hashlib.sha256(json.dumps(asked).encode()).hexdigest()


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


class GiftRefused(RuleBroken):
    """A gift that cannot be accepted."""


def price_gift(
    campaign: Campaign,
    limits: GiftLimits,
    *,
    amount: int | None = None,
    meals: int | None = None,
    currency: str | None = None,
) -> Money:
    """What the donor gives: either an amount in minor units, or a number of meals at the
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


def priced_meals(gift: Money, meal_price: Money) -> int:
    """How many whole meals the giving form prices a gift at: pricing, not counting (the
    ledger counts the meals funded)."""
    whole, _rest = gift.divmod(meal_price)
    return whole


@dataclass(frozen=True)
class PricedGift:
    """A gift as the donor pays it: `total` (the gift, plus the fee when the donor covers
    it), that `fee_covered`, and the form's `priced_meals` (the meals the donor chose, or the
    whole meals the gift pays at the meal price in force)."""

    total: Money
    fee_covered: Money
    priced_meals: int


def price_donation(
    campaign: Campaign,
    limits: GiftLimits,
    fee: ProcessingFee,
    *,
    amount: int | None,
    meals: int | None,
    currency: str | None,
    cover_fee: bool,
) -> PricedGift:
    """What a donor pays for a gift (price_gift), with the processing fee added when they
    cover it; the whole payment stays within the largest gift."""
    given = price_gift(campaign, limits, amount=amount, meals=meals, currency=currency)
    fee_covered = fee.to_cover(given) if cover_fee else Money.zero(given.currency)
    total = given + fee_covered
    if total.amount > limits.max_amount:
        raise GiftRefused("cover_fee", "with the fee added the gift is above the largest gift")
    chosen = meals if meals is not None else priced_meals(given, campaign.meal_price)
    return PricedGift(total, fee_covered, chosen)


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
