"""A campaign as the ledger knows it: its projection of the donations service's campaign (what
decides how the campaign's money becomes meals) and the running totals of its books."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from services.shared.money import Money

from .gifts import FeePolicy
from .meals import MealCount

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Where a campaign's first price period starts: every gift falls after it."""


@dataclass(frozen=True, slots=True)
class Campaign:
    """The ledger's projection of a campaign: its currency, the meal price in force now (minor
    units), its goal, and who bears Stripe's fees on its gifts (set by finance staff)."""

    campaign_id: str
    slug: str
    title: str
    currency: str
    meal_price: int
    goal_meals: int | None = None
    fee_policy: str = FeePolicy.PLATFORM.value


@dataclass(frozen=True, slots=True)
class CampaignTotals:
    """A campaign's running summary, kept with the entries it sums: gross given by donors,
    refunded, gifts counted, meals funded (by gifts and difts together) and the remainder
    carried; and apart, what difts brought: their money (directed or given by a programme's
    fallback rule), how many difts (each dift once), and the meals they completed when booked
    (minor units of `currency`)."""

    currency: str
    donated: int = 0
    refunded: int = 0
    donations: int = 0
    meals_funded: int = 0
    remainder: int = 0
    difts_amount: int = 0
    difts_received: int = 0
    dift_meals: int = 0

    def with_gift(self, amount: Money, count: MealCount) -> CampaignTotals:
        """The totals once a gift of `amount` is booked and the meals are `count`."""
        return replace(
            self.counted(count),
            donated=(Money(self.donated, amount.currency) + amount).amount,
            donations=self.donations + 1,
        )

    def with_dift(self, amount: Money, count: MealCount, meals: int) -> CampaignTotals:
        """The totals once one dift's part of `amount` is booked, moving the counter by
        `meals` to `count`."""
        return replace(
            self.counted(count),
            difts_amount=(Money(self.difts_amount, amount.currency) + amount).amount,
            difts_received=self.difts_received + 1,
            dift_meals=self.dift_meals + meals,
        )

    @property
    def gift_meals(self) -> int:
        """The meals of the counter that donors' own gifts funded: those the difts did not
        complete (never below zero, should a refund take back a meal a dift completed)."""
        return max(0, self.meals_funded - self.dift_meals)

    def with_refunded(self, amount: Money) -> CampaignTotals:
        """The totals once `amount` more went back to donors (less, if it is negative: a
        refund that failed)."""
        return replace(self, refunded=(Money(self.refunded, amount.currency) + amount).amount)

    def counted(self, count: MealCount) -> CampaignTotals:
        """The totals with the meals (and remainder) of a recount."""
        return replace(self, meals_funded=count.meals_funded, remainder=count.remainder.amount)
