"""The notifications service's rules, with no I/O: which impact emails a donor gets.

The impact rule (README, "Impact emails"): the milestones one booking crosses together are
one moment and make one email, naming the highest ("you funded 500 meals: a quarter of the
goal"). Each donor gets at most one impact email per campaign in a period (a week by
default): a milestone reached sooner waits, and when the period is over the donor gets one
email naming the highest milestone reached meanwhile. A donor is never told a milestone at or
below the count their last impact email stated, so no two of their impact emails name the
same milestone or the same count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

_GOAL_WORDS = {25: "quarter", 50: "half", 75: "three_quarters", 100: "goal"}


@dataclass(frozen=True)
class Reached:
    """What one milestone event announces: the milestone that heads it (its name, the meals
    it stands at, the share of the goal if it is one), the campaign's count then, its goal."""

    milestone: str
    meals: int
    meals_funded: int
    goal_meals: int | None
    goal_percent: int | None = None

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> Reached:
        """A difts.ledger.milestone_reached.v1 event's data; events of before the milestones
        list carry one milestone, whose meals are worked out from its kind."""
        parts = data.get("milestones") or [
            {"milestone": data["milestone"], "kind": data["kind"], "value": data["value"]}
        ]
        goal = data.get("goal_meals")
        at = [(_meals_of(part, goal), part) for part in parts]
        top_meals = max(meals for meals, _part in at)
        shares = [
            part["value"]
            for meals, part in at
            if meals == top_meals and part["kind"] == "goal_percent"
        ]
        return cls(
            milestone=str(data["milestone"]),
            meals=top_meals,
            meals_funded=int(data["meals_funded"]),
            goal_meals=goal,
            goal_percent=max(shares) if shares else None,
        )

    @property
    def goal_words(self) -> str | None:
        """How the email names the share of the goal reached ("quarter", ..., "goal")."""
        return _GOAL_WORDS.get(self.goal_percent) if self.goal_percent else None

    def to_dict(self) -> dict[str, Any]:
        """For keeping a held milestone in the database."""
        return {
            "milestone": self.milestone,
            "meals": self.meals,
            "meals_funded": self.meals_funded,
            "goal_meals": self.goal_meals,
            "goal_percent": self.goal_percent,
        }

    @classmethod
    def from_dict(cls, kept: dict[str, Any]) -> Reached:
        """A held milestone read back."""
        return cls(**kept)


def _meals_of(part: dict[str, Any], goal_meals: int | None) -> int:
    """The meals a milestone stands at: given, or its count, or its share of the goal."""
    if part.get("meals") is not None:
        return int(part["meals"])
    if part["kind"] == "goal_percent" and goal_meals:
        return -(-int(goal_meals) * int(part["value"]) // 100)
    return int(part["value"])


@dataclass(frozen=True)
class ImpactState:
    """What one donor of one campaign has been told of its milestones: the count their last
    impact email stated, when it was queued, and the milestone waiting for the budget."""

    told_meals: int = 0
    last_at: datetime | None = None
    held: Reached | None = None

    def due_at(self, period: timedelta) -> datetime | None:
        """When the held milestone may go (None when nothing is held)."""
        if self.held is None:
            return None
        return self.last_at + period if self.last_at is not None else None


@dataclass(frozen=True)
class ImpactDecision:
    """What to do for one donor: `send` the milestone now, or keep `state` (holding it)."""

    state: ImpactState
    send: Reached | None = None


@dataclass(frozen=True)
class ImpactBudget:
    """At most one impact email per donor and campaign in `period` (zero: one per moment)."""

    period: timedelta

    def on_reached(self, state: ImpactState, reached: Reached, now: datetime) -> ImpactDecision:
        """A milestone event reached this donor's campaign."""
        known = max(state.told_meals, state.held.meals_funded if state.held else 0)
        if reached.meals <= known:
            return ImpactDecision(state)  # nothing this donor was not told, or will be
        if state.last_at is None or now >= state.last_at + self.period:
            return ImpactDecision(ImpactState(reached.meals_funded, now, None), send=reached)
        return ImpactDecision(replace(state, held=reached))

    def on_due(self, state: ImpactState, now: datetime) -> ImpactDecision:
        """The budget's period may be over: the held milestone goes, if it is due."""
        due = state.due_at(self.period)
        if state.held is None or due is None or now < due:
            return ImpactDecision(state)
        return ImpactDecision(ImpactState(state.held.meals_funded, now, None), send=state.held)
