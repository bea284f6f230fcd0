"""One contract for the donations repositories, run against SQLite, PostgreSQL and the unit
tests' in-memory fake (as the eventsourcing library runs one recorder suite against each
database): the same calls give the same answers everywhere."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.donations import store, views
from services.donations.domain.campaigns import (
    Campaign,
    CampaignStatus,
    CampaignTexts,
    MealPriceChange,
    NewsPost,
)
from services.donations.domain.donations import Dispute, Donation, DonationStatus, Donor, Refund
from services.donations.domain.payments import PayoutPaid
from services.donations.store import KeptEvent
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.money import Money
from tests.support.donations import DONATIONS_MIGRATIONS
from tests.support.stores import STORES, OpenUnitOfWork, units_of_work
from tests.unit.donations.fakes import FakeUnitOfWork

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
EUR = Money(1350, "EUR")


@pytest.fixture(params=STORES)
def open_uow(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenUnitOfWork]:
    """Opens a unit of work on one kind of store."""
    yield from units_of_work(
        request, tmp_path, DONATIONS_MIGRATIONS, DonationsUnitOfWork, FakeUnitOfWork
    )


def campaign(slug: str = "canteens", **changes: Any) -> Campaign:
    values: dict[str, Any] = {
        "id": f"c-{slug}",
        "slug": slug,
        "title": "Canteens",
        "cause": "Les Petites Cantines",
        "meal_price": EUR,
        "goal_meals": 100,
        "status": CampaignStatus.LIVE,
        "money_uses": ("Opening canteens",),
        "created_at": NOW,
        "published_at": NOW,
        **changes,
    }
    return Campaign(**values)


def donation(donation_id: str = "d-1", **changes: Any) -> Donation:
    values: dict[str, Any] = {
        "id": donation_id,
        "campaign_id": "c-canteens",
        "amount": Money(2767, "EUR"),
        "fee_covered": Money(67, "EUR"),
        "priced_meals": 2,
        "donor": Donor("ada@example.org", "Ada", "fr"),
        "updates_opt_in": True,
        "consent_at": NOW,
        "status": DonationStatus.PENDING,
        "created_at": NOW,
        "amount_refunded": Money(0, "EUR"),
        "checkout_session_id": f"cs_{donation_id}",
        "checkout_url": "https://checkout.test/pay",
        "correlation_id": "req-1",
        "anonymous": True,
        "public_message": "Bon appétit",
        "show_message": True,
        "request_fingerprint": "f" * 64,
        **changes,
    }
    return Donation(**values)


def with_campaign(open_uow: OpenUnitOfWork, *donations: Donation) -> None:
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        for gift in donations:
            assert uow.donations.add(gift)


# --- campaigns --------------------------------------------------------------------------------


def test_a_campaign_is_kept_by_id_and_slug(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.campaigns.add(campaign())
    with open_uow() as uow:
        assert uow.campaigns.get("c-canteens") == campaign()
        assert uow.campaigns.by_slug("canteens") == campaign()
        assert uow.campaigns.get("c-other") is None and uow.campaigns.by_slug("other") is None


def test_a_campaign_is_saved_with_a_drafts_meal_price_only(open_uow: OpenUnitOfWork) -> None:
    draft = campaign("bruz", status=CampaignStatus.DRAFT, published_at=None)
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.campaigns.add(draft)
        uow.campaigns.save(replace(draft, meal_price=Money(1400, "CHF"), title="Bruz"))
        # A live campaign's price changes from a date on, never by a save.
        uow.campaigns.save(replace(campaign(), meal_price=Money(9999, "EUR"), goal_meals=None))
    with open_uow() as uow:
        saved = uow.campaigns.by_slug("bruz")
        assert saved is not None and (saved.meal_price, saved.title) == (Money(1400, "CHF"), "Bruz")
        live = uow.campaigns.by_slug("canteens")
        assert live is not None and (live.meal_price, live.goal_meals) == (EUR, None)


def test_a_campaigns_texts_per_language_are_kept_replaced_and_removed(
    open_uow: OpenUnitOfWork,
) -> None:
    french = CampaignTexts("Cantines", "Des repas", "**Notre** histoire", ("Ouvrir", "Cuisiner"))
    english = CampaignTexts(title="Canteens in English")
    with open_uow() as uow:
        uow.campaigns.add(campaign(translations={"fr": french, "en": english}))
    with open_uow() as uow:
        kept = uow.campaigns.get("c-canteens")
        assert kept is not None and kept.translations == {"fr": french, "en": english}
        uow.campaigns.save(replace(kept, translations={"en": replace(english, summary="Meals")}))
    with open_uow() as uow:
        saved = uow.campaigns.by_slug("canteens")
        assert saved is not None
        assert saved.translations == {"en": CampaignTexts("Canteens in English", "Meals")}


def test_the_meal_price_in_force_is_the_latest_change_that_took_effect(
    open_uow: OpenUnitOfWork,
) -> None:
    now = datetime.now(UTC)
    past, future = now - timedelta(days=2), now + timedelta(days=2)
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        for at, price in ((past, 1400), (past + timedelta(days=1), 1450), (future, 1500)):
            uow.campaigns.add_meal_price_change(
                MealPriceChange(f"m-{price}", "c-canteens", Money(price, "EUR"), 1350, at, now)
            )
    with open_uow() as uow:
        assert uow.campaigns.meal_price_at("c-canteens", past - timedelta(days=1)) is None
        assert uow.campaigns.meal_price_at("c-canteens", past) == 1400
        assert uow.campaigns.meal_price_at("c-canteens", future) == 1500
        found = uow.campaigns.get("c-canteens")
        assert found is not None and found.meal_price == Money(1450, "EUR")


def meals_of(uow: Any, campaign_id: str) -> int:
    if isinstance(uow, FakeUnitOfWork):
        return uow.meals.rows.get(campaign_id, 0)
    return views.meals_funded(uow.connection, campaign_id)


def test_the_ledgers_latest_count_of_meals_stands(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.meals.record("c-canteens", 5, NOW)
        uow.meals.record("c-canteens", 7, NOW)
    with open_uow() as uow:
        assert (meals_of(uow, "c-canteens"), meals_of(uow, "c-other")) == (7, 0)


# --- news posts -------------------------------------------------------------------------------


def post(post_id: str = "p-1", **changes: Any) -> NewsPost:
    values: dict[str, Any] = {
        "id": post_id,
        "campaign_id": "c-canteens",
        "title": "Bruz",
        "body_markdown": "A **14th** canteen",
        "locale": "en",
        "created_at": NOW,
        **changes,
    }
    return NewsPost(**values)


def test_news_posts_are_kept_published_once_and_found_when_due(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.news.add(post("p-now", seed_key="demo-bruz"))
        uow.news.add(post("p-later", publish_at=NOW + timedelta(days=2)))
        uow.news.add(post("p-soon", publish_at=NOW + timedelta(days=1)))
    with open_uow() as uow:
        assert uow.news.get("p-now") == post("p-now", seed_key="demo-bruz")
        assert uow.news.by_seed_key("demo-bruz") == uow.news.get("p-now")
        assert uow.news.by_seed_key("demo-other") is None and uow.news.get("p-x") is None
        assert uow.news.due(NOW) == []
        assert uow.news.due(NOW + timedelta(days=3)) == ["p-soon", "p-later"]
        soon = uow.news.get("p-soon", lock=True)
        assert soon is not None
        uow.news.save(soon.published(NOW + timedelta(days=1)))
    with open_uow() as uow:
        assert uow.news.due(NOW + timedelta(days=3), limit=5) == ["p-later"]
        published = uow.news.get("p-soon")
        assert published is not None and published.published_at == NOW + timedelta(days=1)


# --- donations, refunds, disputes, payouts ----------------------------------------------------


def test_a_donation_is_kept_whole_and_added_once(open_uow: OpenUnitOfWork) -> None:
    with_campaign(open_uow, donation())
    with open_uow() as uow:
        assert not uow.donations.add(donation(amount=Money(1, "EUR")))  # a retried request
        assert uow.donations.get("d-1") == donation()
        assert uow.donations.get("d-1", lock=True) == donation()
        assert uow.donations.get("d-2") is None


def test_a_donation_is_found_by_the_payment_that_paid_it(open_uow: OpenUnitOfWork) -> None:
    paid = donation("d-1", payment_intent_id="pi_1", charge_id="ch_1")
    with_campaign(open_uow, paid, donation("d-2", charge_id="ch_2"))
    with open_uow() as uow:
        assert uow.donations.by_payment("pi_1", None) == paid
        assert uow.donations.by_payment("pi_x", "ch_1") == paid
        found = uow.donations.by_payment(None, "ch_2")
        assert found is not None and found.id == "d-2"
        assert uow.donations.by_payment("pi_x", "ch_x") is None
        assert uow.donations.by_payment(None, None) is None


def test_saving_a_donation_writes_its_lifecycle_only(open_uow: OpenUnitOfWork) -> None:
    with_campaign(open_uow, donation())
    changed = donation(
        status=DonationStatus.REFUNDED,
        payment_intent_id="pi_1",
        charge_id="ch_1",
        balance_transaction_id="txn_1",
        fee=66,
        net=2701,
        amount_refunded=Money(2767, "EUR"),
        succeeded_at=NOW,
        ended_at=NOW + timedelta(days=1),
    )
    with open_uow() as uow:
        uow.donations.save(replace(changed, donor=Donor("eve@example.org", "Eve", "en")))
    with open_uow() as uow:
        assert uow.donations.get("d-1") == changed


def test_a_refund_is_remembered_once_by_its_id(open_uow: OpenUnitOfWork) -> None:
    counted = Refund("re_1", "d-1", 1000, "EUR", NOW)
    with_campaign(open_uow, donation())
    with open_uow() as uow:
        assert uow.refunds.add(counted)
        assert not uow.refunds.add(replace(counted, amount=5))
        assert uow.refunds.add(Refund("re_2", "d-1", 5, "XYZ", NOW, "failed", NOW))
    with open_uow() as uow:
        assert uow.refunds.get("re_1") == counted and uow.refunds.get("re_x") is None
        failed = uow.refunds.get("re_2")
        assert failed is not None and failed.has_failed and failed.currency == "XYZ"
        uow.refunds.save(replace(counted, status="failed", failed_at=NOW))
    with open_uow() as uow:
        assert uow.refunds.get("re_1") == replace(counted, status="failed", failed_at=NOW)


def test_a_dispute_is_remembered_once_and_closed(open_uow: OpenUnitOfWork) -> None:
    opened = Dispute("dp_1", "d-1", 2767, "EUR", NOW)
    with_campaign(open_uow, donation())
    with open_uow() as uow:
        assert uow.disputes.add(opened)
        assert not uow.disputes.add(opened)
    with open_uow() as uow:
        assert uow.disputes.get("dp_1") == opened and uow.disputes.get("dp_2") is None
        uow.disputes.save(replace(opened, status="won", closed_at=NOW))
    with open_uow() as uow:
        assert uow.disputes.get("dp_1") == replace(opened, status="won", closed_at=NOW)


def test_a_payout_is_remembered_once(open_uow: OpenUnitOfWork) -> None:
    payout = PayoutPaid("po_1", 12345, "EUR", None)
    with open_uow() as uow:
        assert uow.payouts.add(payout, NOW)
        assert not uow.payouts.add(payout, NOW)


# --- Stripe events ----------------------------------------------------------------------------

KEPT = ("unmatched", "waiting")


def row_of(uow: Any, event_id: str) -> tuple[str, str | None, str | None, str | None]:
    """A Stripe event's outcome, payload, waiting_for and problem, as stored."""
    if isinstance(uow, FakeUnitOfWork):
        row: Any = uow.stripe_events.rows[event_id]
    else:
        table = store.stripe_events
        row = uow.connection.execute(select(table).where(table.c.id == event_id)).one()
    return (row.outcome, row.payload, row.waiting_for, row.problem)


def test_a_stripe_event_is_recorded_once_and_settled(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        assert uow.stripe_events.record("evt_1", "refund.created", NOW)
        assert not uow.stripe_events.record("evt_1", "refund.created", NOW)
        uow.stripe_events.settle("evt_1", "refunded", None)
    with open_uow() as uow:
        assert row_of(uow, "evt_1") == ("refunded", None, None, None)
        assert uow.stripe_events.kept_ids(KEPT, 10) == []


def test_kept_events_wait_for_what_they_follow_oldest_first(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        for number, waits_for in ((2, "pi_1"), (1, "pi_1"), (3, "d-1")):
            event_id = f"evt_{number}"
            uow.stripe_events.record(event_id, "refund.created", NOW + timedelta(seconds=number))
            kept = KeptEvent(event_id, f'{{"n": {number}}}', waits_for)
            uow.stripe_events.settle(event_id, "waiting", None, kept)
    with open_uow() as uow:
        waiting = uow.stripe_events.waiting_for(["pi_1", ""], KEPT)
        assert [(k.id, k.payload, k.waiting_for) for k in waiting] == [
            ("evt_1", '{"n": 1}', "pi_1"),
            ("evt_2", '{"n": 2}', "pi_1"),
        ]
        assert uow.stripe_events.waiting_for([""], KEPT) == []
        assert uow.stripe_events.kept_ids(KEPT, 2) == ["evt_1", "evt_2"]
        locked = uow.stripe_events.lock_kept("evt_3", KEPT)
        assert locked is not None and locked.waiting_for == "d-1"
        uow.stripe_events.settle("evt_3", "refunded", "d-1")
        assert uow.stripe_events.lock_kept("evt_3", KEPT) is None


def test_an_unreadable_event_is_kept_with_its_problem_and_no_longer_waits(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        uow.stripe_events.record("evt_1", "payout.paid", NOW)
        uow.stripe_events.settle("evt_1", "waiting", None, KeptEvent("evt_1", "{}", "pi_1"))
        uow.stripe_events.keep_unreadable("evt_1", "{not json", "x" * 3000)
    with open_uow() as uow:
        outcome, payload, waiting_for, problem = row_of(uow, "evt_1")
        assert (outcome, payload, waiting_for, problem) == (
            "unreadable",
            "{not json",
            None,
            "x" * 2000,
        )
        assert uow.stripe_events.kept_ids(KEPT, 10) == []


# --- the transaction --------------------------------------------------------------------------


def test_a_savepoint_or_a_transaction_that_raises_leaves_nothing(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.stripe_events.record("evt_1", "payout.paid", NOW)
        with contextlib.suppress(RuntimeError), uow.savepoint():
            uow.payouts.add(PayoutPaid("po_1", 100, "EUR", None), NOW)
            raise RuntimeError("the event cannot be published")
        assert uow.payouts.add(PayoutPaid("po_1", 100, "EUR", None), NOW)  # undone above
    with contextlib.suppress(RuntimeError), open_uow() as uow:
        uow.stripe_events.record("evt_2", "payout.paid", NOW)
        raise RuntimeError("the request failed")
    with open_uow() as uow:
        assert not uow.stripe_events.record("evt_1", "payout.paid", NOW)
        assert uow.stripe_events.record("evt_2", "payout.paid", NOW)
