"""Impact emails over random sequences of gifts and refunds, through the real ledger and
notifications handlers (each on its own SQLite database), with a clock that moves: no donor
ever gets two impact emails that name the same milestone or state the same count, never two
within the budget's period, and every donor ends up told at least the last milestone reached
while they were a donor. Plus the rule's cases one by one (domain.ImpactBudget)."""

from __future__ import annotations

import email
import email.policy
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from services.ledger import store as ledger_store
from services.ledger.__main__ import MIGRATIONS as LEDGER_MIGRATIONS
from services.ledger.consumer import build_consumer as ledger_consumer
from services.notifications import store
from services.notifications.__main__ import MIGRATIONS as NOTIFICATIONS_MIGRATIONS
from services.notifications.config import Settings
from services.notifications.consent import ConsentKeys
from services.notifications.consumer import letterhead
from services.notifications.domain import ImpactBudget, ImpactState, Reached
from services.notifications.handlers import Outbox, handlers_writing_with, release_due_impact
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.shared.consumer import IdempotentConsumer
from services.shared.db import make_engine, upgrade
from services.shared.envelope import new_event
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    MILESTONE_REACHED,
)

CAMPAIGN = "camp-impact"
PERIOD = timedelta(days=7)
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MEAL = 1350


# --- the rule, case by case -----------------------------------------------------------------


def reached(meals: int, count: int | None = None, percent: int | None = None) -> Reached:
    return Reached(f"m-{meals}", meals, count or meals, 2000, percent)


def test_the_first_milestone_goes_at_once_and_the_next_waits_for_the_period() -> None:
    budget = ImpactBudget(PERIOD)
    first = budget.on_reached(ImpactState(), reached(100, 104), START)
    assert first.send == reached(100, 104) and first.state.told_meals == 104
    soon = budget.on_reached(first.state, reached(200, 210), START + timedelta(days=1))
    assert soon.send is None and soon.state.held == reached(200, 210)
    later = budget.on_reached(soon.state, reached(300, 305), START + timedelta(days=2))
    assert later.send is None and later.state.held == reached(300, 305)  # the highest waits
    assert later.state.due_at(PERIOD) == START + PERIOD
    assert budget.on_due(later.state, START + timedelta(days=6)).send is None
    due = budget.on_due(later.state, START + PERIOD)
    assert due.send == reached(300, 305) and due.state == ImpactState(305, START + PERIOD)


def test_nothing_at_or_below_what_the_donor_was_told_is_told_again() -> None:
    budget = ImpactBudget(PERIOD)
    told = ImpactState(told_meals=510, last_at=START)
    assert budget.on_reached(told, reached(500), START + 2 * PERIOD).send is None
    assert budget.on_reached(told, reached(510), START + 2 * PERIOD).send is None
    assert budget.on_reached(told, reached(600), START + 2 * PERIOD).send == reached(600)


def test_without_a_period_each_moment_is_one_email() -> None:
    budget = ImpactBudget(timedelta(0))
    state = ImpactState()
    for meals in (100, 200, 300):
        decision = budget.on_reached(state, reached(meals), START)
        assert decision.send == reached(meals)
        state = decision.state


def test_an_event_names_its_highest_milestone_and_the_share_of_the_goal_it_is() -> None:
    data = {
        "milestone": "goal-25",
        "kind": "goal_percent",
        "value": 25,
        "meals": 500,
        "milestones": [
            {"milestone": "meals-400", "kind": "meals", "value": 400, "meals": 400},
            {"milestone": "meals-500", "kind": "meals", "value": 500, "meals": 500},
            {"milestone": "goal-25", "kind": "goal_percent", "value": 25, "meals": 500},
        ],
        "meals_funded": 512,
        "goal_meals": 2000,
    }
    found = Reached.from_event(data)
    assert (found.milestone, found.meals, found.goal_words, found.meals_funded) == (
        "goal-25",
        500,
        "quarter",
        512,
    )
    # An event of before the milestones list: one milestone, its meals worked out.
    old = {"milestone": "goal-50", "kind": "goal_percent", "value": 50, "meals_funded": 1003}
    assert Reached.from_event({**old, "goal_meals": 2000}).meals == 1000


# --- the whole path, over random histories --------------------------------------------------


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """The two services, wired by hand: what the ledger's outbox announces is applied to
    notifications, in order, as the broker would deliver it."""

    ledger_engine: Engine
    notifications_engine: Engine
    ledger: IdempotentConsumer
    notifications: IdempotentConsumer
    outbox: Outbox
    clock: Clock
    relayed: int = 0
    milestones: list[dict[str, Any]] = field(default_factory=list)
    donors_at_milestone: list[set[str]] = field(default_factory=list)
    donors: set[str] = field(default_factory=set)

    def give(self, donor: str, meals: int, opt_in: bool) -> str:
        donation_id = f"don-{uuid.uuid4().hex[:10]}"
        data = {
            "donation_id": donation_id,
            "campaign_id": CAMPAIGN,
            "campaign_slug": "petites-cantines",
            "campaign_title": "Les Petites Cantines",
            "campaign_cause": "Les Petites Cantines",
            "amount": meals * MEAL,
            "currency": "EUR",
            "meal_price": MEAL,
            "donor": {"email": donor, "name": "", "locale": "en"},
            "updates_opt_in": opt_in,
            "succeeded_at": self.clock.now.isoformat(),
        }
        if opt_in:
            self.donors.add(donor)
        self._both(new_event(DONATION_SUCCEEDED, "difts/donations", data).to_json().encode())
        return donation_id

    def refund(self, donation_id: str, meals: int) -> None:
        data = {
            "donation_id": donation_id,
            "campaign_id": CAMPAIGN,
            "campaign_slug": "petites-cantines",
            "refund_id": f"re-{uuid.uuid4().hex[:10]}",
            "amount": meals * MEAL,
            "currency": "EUR",
            "total_refunded": meals * MEAL,
            "fully_refunded": True,
            "refunded_at": self.clock.now.isoformat(),
        }
        self.ledger.apply(new_event(DONATION_REFUNDED, "difts/donations", data).to_json().encode())
        self.relay()

    def _both(self, raw: bytes) -> None:
        assert self.notifications.apply(raw).status == "applied"
        assert self.ledger.apply(raw).status in ("applied", "duplicate")
        self.relay()

    def relay(self) -> None:
        """The ledger's new outbox events, to notifications (milestones noted on the way)."""
        with self.ledger_engine.connect() as conn:
            rows = conn.execute(
                select(ledger_store.outbox).where(ledger_store.outbox.c.seq > self.relayed)
            ).all()
        for row in rows:
            self.relayed = row.seq
            if row.event_type == MILESTONE_REACHED:
                self.milestones.append(json.loads(row.payload)["data"])
                self.donors_at_milestone.append(set(self.donors))
            self.notifications.apply(row.payload.encode())

    def tick(self, minutes: int) -> None:
        self.clock.now += timedelta(minutes=minutes)
        release_due_impact(self.notifications_engine, self.outbox, self.clock.now)

    def impact_emails(self) -> dict[str, list[email.message.EmailMessage]]:
        with self.notifications_engine.connect() as conn:
            rows = conn.execute(
                select(store.deliveries)
                .where(
                    store.deliveries.c.kind == store.IMPACT, store.deliveries.c.message.is_not(None)
                )
                .order_by(store.deliveries.c.created_at)
            ).all()
        found: dict[str, list[email.message.EmailMessage]] = defaultdict(list)
        for row in rows:
            message = email.message_from_string(row.message, policy=email.policy.default)
            found[row.recipient].append(message)  # type: ignore[arg-type]
        return found


@pytest.fixture
def world_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    engines: list[Engine] = []

    def build(goal_meals: int | None) -> World:
        folder: Path = tmp_path_factory.mktemp("impact")
        ledger_url = f"sqlite:///{folder / 'ledger.db'}"
        notifications_url = f"sqlite:///{folder / 'notifications.db'}"
        upgrade(ledger_url, LEDGER_MIGRATIONS)
        upgrade(notifications_url, NOTIFICATIONS_MIGRATIONS)
        ledger_engine, notifications_engine = (
            make_engine(ledger_url),
            make_engine(notifications_url),
        )
        engines.extend([ledger_engine, notifications_engine])
        clock = Clock()
        settings_ = replace(Settings.from_env(), database_url=notifications_url)
        outbox = Outbox(
            letterhead(settings_),
            ConsentKeys(settings_.signing_secret),
            impact=ImpactBudget(PERIOD),
            clock=clock,
        )
        handlers = handlers_writing_with(outbox)
        world = World(
            ledger_engine,
            notifications_engine,
            ledger_consumer(ledger_engine, "127.0.0.1:1", "ledger", None),  # type: ignore[arg-type]
            IdempotentConsumer(
                lambda: NotificationsUnitOfWork(notifications_engine),
                "n",
                ("t",),
                handlers,
                "unused:1",
                None,  # type: ignore[arg-type]
            ),
            outbox,
            clock,
        )
        published = {
            "campaign_id": CAMPAIGN,
            "slug": "petites-cantines",
            "title": "Les Petites Cantines",
            "cause": "Les Petites Cantines",
            "currency": "EUR",
            "meal_price": MEAL,
            "goal_meals": goal_meals,
        }
        world._both(new_event(CAMPAIGN_PUBLISHED, "difts/donations", published).to_json().encode())
        return world

    yield build
    for engine in engines:
        engine.dispose()


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
COUNT = re.compile(r"(?:funded|now stands at) (\d+) meals")


@given(goal=st.none() | st.integers(10, 3000), steps=STEPS)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
def test_no_donor_gets_two_impact_emails_that_read_the_same(
    world_factory: Any, goal: int | None, steps: list[tuple[int, int, int, bool, int]]
) -> None:
    world: World = world_factory(goal)
    last_gift: dict[str, tuple[str, int]] = {}
    for who, meals, minutes, opt_in, refund in steps:
        donor = f"donor-{who}@example.org"
        world.tick(minutes)
        if refund == 0 and donor in last_gift:
            world.refund(*last_gift.pop(donor))
        else:
            last_gift[donor] = (world.give(donor, meals, opt_in), meals)
    world.tick(2 * 7 * 24 * 60)  # the budget's period is over for everyone

    emails = world.impact_emails()
    for donor, messages in emails.items():
        subjects = [str(m["Subject"]) for m in messages]
        assert len(set(subjects)) == len(subjects), (donor, subjects)
        stated = [max(int(n) for n in COUNT.findall(body(m))) for m in messages]
        assert stated == sorted(set(stated)), (donor, stated)  # always more than the last
        sent_at = [email.utils.parsedate_to_datetime(str(m["Date"])) for m in messages]
        assert all(b - a >= PERIOD for a, b in zip(sent_at, sent_at[1:], strict=False)), (
            donor,
            sent_at,
        )
    if world.milestones:
        last, donors_then = world.milestones[-1], world.donors_at_milestone[-1]
        top = Reached.from_event(last).meals
        for donor in donors_then:
            told = max(int(n) for m in emails[donor] for n in COUNT.findall(body(m)))
            assert told >= top, (donor, told, top)


def body(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]
