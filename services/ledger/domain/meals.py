"""How money becomes meals: a campaign's eligible amount over its price periods, the remainder
carried, and the milestones the counter crosses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from services.shared.money import Money


@dataclass(frozen=True, slots=True)
class MealTally:
    """A campaign's eligible cumulative amount and the meals it funds.

    meals funded = floor(eligible / meal price); the remainder is carried to the next gift,
    never rounded. The eligible amount is what was given minus what was given back.
    """

    eligible: Money
    meal_price: Money

    def __post_init__(self) -> None:
        if self.eligible.currency != self.meal_price.currency:
            raise ValueError("eligible amount and meal price must share a currency")
        if not self.meal_price.is_positive():
            raise ValueError("a meal price must be positive")

    @classmethod
    def empty(cls, meal_price: Money) -> MealTally:
        """A campaign nobody has given to yet."""
        return cls(Money.zero(meal_price.currency), meal_price)

    @property
    def meals_funded(self) -> int:
        """Whole meals the eligible amount pays for."""
        return self.eligible.divmod(self.meal_price)[0]

    @property
    def remainder(self) -> Money:
        """What is left towards the next meal."""
        return self.eligible.divmod(self.meal_price)[1]

    def add_gift(self, amount: Money) -> tuple[MealTally, int]:
        """The tally after a gift, and how many meals this gift moved the counter by.

        A gift completes meals together with the remainder carried before it: with 10.00
        carried at 13.50 a meal, a 27.00 gift takes the counter from 0 to 2 (37.00 = 2 meals
        + 10.00 carried), so that gift funded 2 meals. Summed over gifts, these per-gift
        counts equal the counter.
        """
        if not amount.is_positive():
            raise ValueError("a gift is a positive amount")
        after = MealTally(self.eligible + amount, self.meal_price)
        return after, after.meals_funded - self.meals_funded


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """The gifts given while one meal price was in force: from `starts_at` on, at
    `meal_price`, the eligible amount (what the fund kept of those gifts)."""

    starts_at: datetime
    meal_price: Money
    eligible: Money


@dataclass(frozen=True, slots=True)
class MealCount:
    """A campaign's funded meals, the remainder carried and the meal price now in force."""

    meals_funded: int
    remainder: Money
    meal_price: Money


def count_meals(periods: list[PricePeriod]) -> MealCount:
    """Meals over a campaign's price periods, oldest first: each period turns the remainder
    carried into it plus its own eligible gifts into meals at its own price, and carries what
    is left, so a price change applies from its date only and no cent is rounded away. With
    one price this is floor(eligible / meal price)."""
    if not periods:
        raise ValueError("a campaign has at least one meal price")
    ordered = sorted(periods, key=lambda period: period.starts_at)
    carried = Money.zero(ordered[0].meal_price.currency)
    meals = 0
    for period in ordered:
        if period.eligible.amount < 0:
            raise ValueError("an eligible amount is never negative")
        whole, carried = (carried + period.eligible).divmod(period.meal_price)
        meals += whole
    return MealCount(meals, carried, ordered[-1].meal_price)


def period_for(periods: list[PricePeriod], moment: datetime) -> PricePeriod:
    """The price period in force at `moment` (the first one for anything before it)."""
    ordered = sorted(periods, key=lambda period: period.starts_at)
    found = ordered[0]
    for period in ordered:
        if period.starts_at <= moment:
            found = period
    return found


def with_eligible(
    periods: list[PricePeriod], starts_at: datetime, change: Money
) -> list[PricePeriod]:
    """The price periods once `change` is added to the eligible amount of the one starting at
    `starts_at` (what a gift booked in it does to the count)."""
    return [
        replace(period, eligible=period.eligible + change)
        if period.starts_at == starts_at
        else period
        for period in periods
    ]


@dataclass(frozen=True, slots=True)
class Milestone:
    """A threshold a campaign's meal counter crosses: a share of its goal or a round count,
    and the number of meals it stands at."""

    name: str
    kind: str
    value: int
    meals: int = 0

    def as_data(self) -> dict[str, str | int]:
        """The milestone as difts.ledger.milestone_reached.v1 names it."""
        return {"milestone": self.name, "kind": self.kind, "value": self.value, "meals": self.meals}


def milestones_crossed(before: int, after: int, goal_meals: int | None) -> list[Milestone]:
    """The milestones a counter moving from `before` to `after` meals reaches: 25, 50, 75 and
    100 % of the goal, and every 100 meals. Going down crosses nothing."""
    crossed: list[Milestone] = []
    if after <= before:
        return crossed
    if goal_meals:
        for percent in (25, 50, 75, 100):
            threshold = -(-goal_meals * percent // 100)  # ceiling: 25 % of 10 meals is 3
            if before < threshold <= after:
                crossed.append(Milestone(f"goal-{percent}", "goal_percent", percent, threshold))
    for hundreds in range(before // 100 + 1, after // 100 + 1):
        crossed.append(
            Milestone(f"meals-{hundreds * 100}", "meals", hundreds * 100, hundreds * 100)
        )
    return crossed


def highest(milestones: Sequence[Milestone]) -> Milestone:
    """What one moment names when it crosses several milestones: the one of most meals (a
    share of the goal before a round count of the same meals: it says more)."""
    if not milestones:
        raise ValueError("no milestone was crossed")
    return max(milestones, key=lambda m: (m.meals, m.kind == "goal_percent", m.value))
