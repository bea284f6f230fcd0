"""The notifications rules on their own: consent, a delivery's retries, what a receipt
states, and the impact budget, case by case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifications.domain import (
    Attempted,
    Consent,
    DeliveryStatus,
    Funds,
    ImpactBudget,
    ImpactState,
    Kind,
    Reached,
    ReceiptFacts,
    ReminderRule,
    RetryPolicy,
    smtp_refusal,
)
from services.shared.money import Money
from tests.unit.notifications.conftest import NOW

PERIOD = timedelta(days=7)
LATER = NOW + timedelta(hours=1)

# --- consent --------------------------------------------------------------------------------


def test_consent_once_given_is_kept_by_a_gift_without_the_box_ticked() -> None:
    given = Consent().after_gift(True, NOW, "checkout")
    assert given == Consent(NOW, "checkout", None)
    assert given.after_gift(False, LATER, "checkout") == given
    assert given.wants_news()


def test_a_newer_consent_replaces_an_older_one_and_an_older_one_changes_nothing() -> None:
    given = Consent().after_gift(True, NOW, "checkout")
    assert given.after_gift(True, LATER, "form").consent_at == LATER
    assert given.after_gift(True, NOW - timedelta(days=1), "form") == given


def test_unsubscribing_stops_the_news_until_a_gift_consented_after_it() -> None:
    out = Consent().after_gift(True, NOW, "checkout").unsubscribed(LATER)
    assert not out.wants_news()
    assert out.unsubscribed(LATER + timedelta(days=1)).unsubscribed_at == LATER  # first counts
    assert not out.after_gift(False, LATER + timedelta(hours=1), "checkout").wants_news()
    again = out.after_gift(True, LATER + timedelta(hours=1), "checkout")
    assert again.wants_news() and again.unsubscribed_at is None


def test_unsubscribing_from_every_campaign_covers_consent_given_before_it_only() -> None:
    given = Consent().after_gift(True, NOW, "checkout")
    assert not given.wants_news(unsubscribed_everywhere_at=LATER)
    assert given.after_gift(True, LATER + timedelta(seconds=1), "checkout").wants_news(LATER)
    assert not Consent().wants_news()


def test_only_news_and_impact_emails_need_consent() -> None:
    assert [kind.value for kind in Kind if kind.needs_consent] == ["news", "impact"]


# --- retries --------------------------------------------------------------------------------


def test_retry_delays_double_up_to_an_hour() -> None:
    policy = RetryPolicy(first_delay=timedelta(seconds=30), longest_delay=timedelta(hours=1))

    delays = [policy.retry_at(attempt, NOW) - NOW for attempt in (1, 2, 3, 10)]

    for delay, base in zip(delays, (30, 60, 120, 3600), strict=True):
        assert timedelta(seconds=base) <= delay <= timedelta(seconds=base * 1.25)


def test_a_failed_attempt_is_retried_until_the_last_one_allowed() -> None:
    policy = RetryPolicy(max_attempts=3, first_delay=timedelta(seconds=30), jitter=0)

    assert policy.after_failure(0, "451 later", NOW) == Attempted(
        DeliveryStatus.PENDING, "451 later", NOW + timedelta(seconds=30)
    )
    assert policy.after_failure(2, "timed out", NOW) == Attempted(
        DeliveryStatus.FAILED, "timed out (gave up after 3 attempts)"
    )
    assert policy.after_failure(0, "550 no such user", NOW, permanent=True) == Attempted(
        DeliveryStatus.FAILED, "550 no such user"
    )


def test_a_5xx_reply_refuses_for_good_and_a_4xx_one_does_not() -> None:
    assert smtp_refusal(550) and smtp_refusal(554)
    assert not smtp_refusal(451) and not smtp_refusal(421)


# --- receipts -------------------------------------------------------------------------------


def test_a_receipt_states_the_booking_and_what_the_donations_service_said() -> None:
    data = {
        "donation_id": "don_1",
        "campaign_id": "camp_1",
        "campaign_slug": "petites-cantines",
        "amount": 3000,
        "currency": "EUR",
        "meal_price": 1350,
        "meals": 2,
        "meals_funded": 40,
        "remainder": 300,
        "receipt": {
            "donor": {"email": "ada@example.org", "name": "Ada", "locale": "fr"},
            "campaign_title": "Les Petites Cantines",
            "campaign_cause": "Cantines",
            "succeeded_at": NOW,
        },
    }
    facts = ReceiptFacts.from_booked(data)
    assert facts is not None
    assert (facts.amount, facts.meals, facts.carried) == (
        Money(3000, "EUR"),
        2,
        Money(300, "EUR"),
    )
    assert (facts.donor_email, facts.locale, facts.cause, facts.given_at) == (
        "ada@example.org",
        "fr",
        "Cantines",
        NOW,
    )
    assert ReceiptFacts.from_booked({**data, "receipt": None}) is None


# --- impact emails --------------------------------------------------------------------------


def reached(meals: int, count: int | None = None, percent: int | None = None) -> Reached:
    return Reached(f"m-{meals}", meals, count or meals, 2000, percent)


def test_the_first_milestone_goes_at_once_and_the_next_waits_for_the_period() -> None:
    budget = ImpactBudget(PERIOD)
    first = budget.on_reached(ImpactState(), reached(100, 104), NOW)
    assert first.send == reached(100, 104) and first.state.told_meals == 104
    soon = budget.on_reached(first.state, reached(200, 210), NOW + timedelta(days=1))
    assert soon.send is None and soon.state.held == reached(200, 210)
    later = budget.on_reached(soon.state, reached(300, 305), NOW + timedelta(days=2))
    assert later.send is None and later.state.held == reached(300, 305)  # the highest waits
    assert later.state.due_at(PERIOD) == NOW + PERIOD
    assert budget.on_due(later.state, NOW + timedelta(days=6)).send is None
    due = budget.on_due(later.state, NOW + PERIOD)
    assert due.send == reached(300, 305) and due.state == ImpactState(305, NOW + PERIOD)


def test_nothing_at_or_below_what_the_donor_was_told_is_told_again() -> None:
    budget = ImpactBudget(PERIOD)
    told = ImpactState(told_meals=510, last_at=NOW)
    assert budget.on_reached(told, reached(500), NOW + 2 * PERIOD).send is None
    assert budget.on_reached(told, reached(510), NOW + 2 * PERIOD).send is None
    assert budget.on_reached(told, reached(600), NOW + 2 * PERIOD).send == reached(600)


def test_without_a_period_each_moment_is_one_email() -> None:
    budget = ImpactBudget(timedelta(0))
    state = ImpactState()
    for meals in (100, 200, 300):
        decision = budget.on_reached(state, reached(meals), NOW)
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
    assert Reached.from_dict(found.to_dict()) == found


# --- company difts --------------------------------------------------------------------------


def test_a_dift_funds_whole_meals_or_the_share_of_one_rounded_down() -> None:
    meal = Money(1350, "EUR")
    assert Funds.of(Money(2000, "EUR"), meal) == Funds(1)
    assert Funds.of(Money(2700, "EUR"), meal) == Funds(2)
    assert Funds.of(Money(2000, "EUR"), Money(2700, "EUR")) == Funds(0, 74)
    assert Funds.of(Money(1349, "EUR"), meal) == Funds(0, 99)  # never "1 meal"
    assert Funds.of(Money(1, "EUR"), meal) == Funds(0, 0)


def test_a_reminder_is_due_its_days_before_expiry_and_never_goes_at_or_after_it() -> None:
    rule = ReminderRule(timedelta(days=3))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expires = datetime(2026, 1, 31, tzinfo=UTC)
    assert rule.due_at(expires, now) == datetime(2026, 1, 28, tzinfo=UTC)
    assert rule.due_at(expires, expires - timedelta(days=2)) is None  # too late for one
    assert rule.may_go(expires, expires - timedelta(seconds=1))
    assert not rule.may_go(expires, expires)


def test_a_permanent_refusal_of_an_invitation_is_a_bounce_not_a_failure() -> None:
    policy = RetryPolicy()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.after_failure(0, "550 no", now, permanent=True, bounces=True) == Attempted(
        DeliveryStatus.BOUNCED, "550 no"
    )
    assert policy.after_failure(0, "550 no", now, permanent=True).status is DeliveryStatus.FAILED
    assert policy.after_failure(0, "451 later", now, bounces=True).status is (
        DeliveryStatus.PENDING
    )
    assert Kind.DIFT_INVITATION.invites and Kind.DIFT_REMINDER.invites
    assert not Kind.DIFT_CONFIRMATION.invites and not Kind.RECEIPT.invites
