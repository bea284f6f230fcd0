"""Impact emails over random sequences of gifts and refunds, with a clock that moves: the
notifications handlers on an in-memory unit of work, fed the milestone events the ledger's
rules produce (services/ledger/domain: the counter, the milestones a booking crosses, each
once, headed by the highest). No donor ever gets two impact emails that name the same
milestone or state the same count, never two within the budget's period, and every donor
ends up told at least the last milestone reached while they were a donor."""

from __future__ import annotations

import email.utils
import re
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ledger.domain import highest, milestones_crossed
from services.notifications.consent import ConsentKeys
from services.notifications.domain import ImpactBudget, Reached
from services.notifications.handlers import Stationery, release_due_impact
from services.notifications.messages import Letterhead
from services.shared.envelope import new_event
from services.shared.events import MILESTONE_REACHED
from tests.unit.notifications.conftest import NOW, Clock, Deliver, gift, parsed, rows, text_of
from tests.unit.notifications.fakes import FakeUnitOfWork

PERIOD = timedelta(days=7)
LETTERHEAD = Letterhead.from_settings(
    "difts <thanks@difts.localhost>", "http://127.0.0.1:8001", "Europe/Paris"
)
MEAL = 1350
# English counts are grouped by CLDR ("1,000 meals").
COUNT = re.compile(r"(?:funded|now stands at) (\d[\d,]*) meals?")


class Ledger:
    """The ledger's rules for milestones, as its handlers apply them to one campaign."""

    def __init__(self, goal_meals: int | None) -> None:
        self.goal_meals = goal_meals
        self.eligible = 0
        self.reached: set[str] = set()

    def book(self, change: int) -> dict[str, Any] | None:
        """Move the eligible amount; the milestone event of the booking, if it makes one."""
        before = self.eligible // MEAL
        self.eligible += change
        after = self.eligible // MEAL
        fresh = [
            m
            for m in milestones_crossed(before, after, self.goal_meals)
            if m.name not in self.reached
        ]
        self.reached |= {m.name for m in fresh}
        if not fresh:
            return None
        top = highest(fresh)
        return {
            "campaign_id": "camp_1",
            "campaign_slug": "slug-camp_1",
            "milestone": top.name,
            "kind": top.kind,
            "value": top.value,
            "meals": top.meals,
            "milestones": [
                {"milestone": m.name, "kind": m.kind, "value": m.value, "meals": m.meals}
                for m in fresh
            ],
            "meals_funded": after,
            "goal_meals": self.goal_meals,
            "reached_at": NOW.isoformat(),
        }


STEPS = st.lists(
    st.tuples(
        st.integers(0, 7),  # which donor
        st.integers(1, 180),  # meals given
        st.integers(0, 6 * 24 * 60),  # minutes after the step before
        st.booleans(),  # ticks the news box
        st.integers(0, 9),  # 0: the step refunds the donor's last gift instead
    ),
    min_size=1,
    max_size=30,
)


@given(goal=st.none() | st.integers(10, 3000), steps=STEPS)
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_donor_gets_two_impact_emails_that_read_the_same(
    goal: int | None, steps: list[tuple[int, int, int, bool, int]]
) -> None:
    uow, clock = FakeUnitOfWork(), Clock()
    stationery = Stationery(LETTERHEAD, ConsentKeys("impact-property"), ImpactBudget(PERIOD), clock)
    deliver, ledger = Deliver(uow, stationery), Ledger(goal)
    last_gift: dict[str, int] = {}
    donors: set[str] = set()
    last_event: tuple[dict[str, Any], set[str]] | None = None
    for who, meals, minutes, opt_in, refund in steps:
        donor = f"donor-{who}@example.org"
        clock.now += timedelta(minutes=minutes)
        release_due_impact(uow, stationery, clock.now)
        if refund == 0 and donor in last_gift:
            reached = ledger.book(-last_gift.pop(donor) * MEAL)
        else:
            deliver(gift(donor, opt_in, at=clock.now, donation_id=f"don-{uuid.uuid4().hex}"))
            donors |= {donor} if opt_in else set()
            last_gift[donor] = meals
            reached = ledger.book(meals * MEAL)
        if reached is not None:
            deliver(new_event(MILESTONE_REACHED, "difts/ledger", reached))
            last_event = (reached, set(donors))
    clock.now += 2 * PERIOD
    release_due_impact(uow, stationery, clock.now)

    emails = defaultdict(list)
    for row in rows(uow, "impact"):
        if row.message is not None:
            emails[row.recipient].append(row)
    for donor, found in emails.items():
        subjects = [str(parsed(row)["Subject"]) for row in found]
        assert len(set(subjects)) == len(subjects), (donor, subjects)
        stated = [
            max(int(n.replace(",", "")) for n in COUNT.findall(text_of(row))) for row in found
        ]
        assert stated == sorted(set(stated)), (donor, stated)  # always more than the last
        dates = [email.utils.parsedate_to_datetime(str(parsed(row)["Date"])) for row in found]
        assert all(b - a >= PERIOD for a, b in zip(dates, dates[1:], strict=False)), donor
    if last_event is not None:
        event, donors_then = last_event
        top = Reached.from_event(event).meals
        for donor in donors_then:
            told = max(
                int(n.replace(",", ""))
                for row in emails[donor]
                for n in COUNT.findall(text_of(row))
            )
            assert told >= top, (donor, told, top)
