"""The campaign manager's commands through the handlers on an in-memory unit of work: a
draft is announced only once it is published, a live campaign's edits are announced, its meal
price changes from a date on with the price before it, and a closed campaign changes no more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.donations.domain.campaigns import CampaignRuleBroken, CampaignStatus
from services.donations.handlers import campaigns
from services.shared.events import CAMPAIGN_CLOSED, CAMPAIGN_PUBLISHED, MEAL_PRICE_CHANGED
from services.shared.money import Money
from tests.unit.donations.conftest import SLUG, announced
from tests.unit.donations.fakes import FakeUnitOfWork

PRICE = Money(1350, "EUR")


def draft(uow: FakeUnitOfWork, slug: str = "bagnolet") -> None:
    command = campaigns.CreateCampaign(slug, PRICE, {"title": "Bagnolet", "cause": "LPC"})
    with uow:
        campaigns.create_campaign(command, uow)


def test_a_draft_is_announced_only_when_it_is_published(uow: FakeUnitOfWork) -> None:
    draft(uow)
    with uow:
        edited = campaigns.edit_campaign(
            campaigns.EditCampaign("bagnolet", {"meal_price": 1400, "currency": "CHF"}), uow
        )
    assert edited.meal_price == Money(1400, "CHF") and announced(uow) == []
    with uow:
        live = campaigns.go_live("bagnolet", uow)
    assert live.status is CampaignStatus.LIVE and announced(uow) == [CAMPAIGN_PUBLISHED]
    found = uow.campaigns.by_slug("bagnolet")
    assert found is not None and found.meal_price == Money(1400, "CHF")


def test_a_slug_is_taken_once(uow: FakeUnitOfWork) -> None:
    with pytest.raises(CampaignRuleBroken) as taken:
        draft(uow, SLUG)
    assert taken.value.field == "slug"


def test_publishing_a_campaign_twice_creates_it_once(uow: FakeUnitOfWork) -> None:
    command = campaigns.CreateCampaign(SLUG, PRICE, {"title": "Again", "cause": "LPC"})
    with uow:
        campaign_id, created = campaigns.publish_campaign(command, uow)
    existing = uow.campaigns.by_slug(SLUG)
    assert existing is not None and (campaign_id, created) == (existing.id, False)
    assert announced(uow) == []


def test_a_live_campaigns_edits_are_announced_and_an_empty_edit_is_not(
    uow: FakeUnitOfWork,
) -> None:
    with uow:
        campaigns.edit_campaign(campaigns.EditCampaign(SLUG, {}), uow)
        campaigns.edit_campaign(campaigns.EditCampaign(SLUG, {"goal_meals": 200}), uow)
    assert announced(uow) == [CAMPAIGN_PUBLISHED]
    found = uow.campaigns.by_slug(SLUG)
    assert found is not None and found.goal_meals == 200


def test_a_live_meal_price_changes_from_a_date_on_with_the_price_before(
    uow: FakeUnitOfWork,
) -> None:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    command = campaigns.ChangeMealPrice(SLUG, Money(1400, "EUR"), tomorrow)
    with uow:
        answer = campaigns.change_meal_price(command, uow)
    assert answer == {"meal_price": 1400, "effective_from": tomorrow, "announced": True}
    [(_topic, _key, event)] = uow.outbox.queued
    assert event.type == MEAL_PRICE_CHANGED and event.data["previous_meal_price"] == 1350
    found = uow.campaigns.by_slug(SLUG)
    assert found is not None and found.meal_price == PRICE  # not yet


def test_a_drafts_meal_price_changes_at_once_unannounced(uow: FakeUnitOfWork) -> None:
    draft(uow)
    command = campaigns.ChangeMealPrice("bagnolet", Money(1500, "EUR"), datetime.now(UTC))
    with uow:
        answer = campaigns.change_meal_price(command, uow)
    assert (answer["meal_price"], answer["announced"]) == (1500, False)
    found = uow.campaigns.by_slug("bagnolet")
    assert found is not None and found.meal_price == Money(1500, "EUR")
    assert announced(uow) == []


def test_a_closed_campaign_is_announced_once_and_changes_no_more(uow: FakeUnitOfWork) -> None:
    with uow:
        closed = campaigns.close_campaign(SLUG, uow)
    assert closed.status is CampaignStatus.CLOSED and announced(uow) == [CAMPAIGN_CLOSED]
    for change in (
        lambda: campaigns.close_campaign(SLUG, uow),
        lambda: campaigns.edit_campaign(campaigns.EditCampaign(SLUG, {"title": "x"}), uow),
    ):
        with pytest.raises(CampaignRuleBroken), uow:
            change()
    with pytest.raises(campaigns.UnknownCampaign), uow:
        campaigns.go_live("nope", uow)
    assert announced(uow) == [CAMPAIGN_CLOSED]


def test_a_campaigns_texts_per_language_fall_back_text_by_text_to_its_default_ones(
    uow: FakeUnitOfWork,
) -> None:
    english = {"title": "Canteens of Bagnolet", "money_uses": ["Cooking"]}
    texts = {"title": "Bagnolet", "cause": "LPC", "summary": "Des repas", "story_markdown": "Récit"}
    command = campaigns.CreateCampaign(
        "bagnolet", PRICE, {**texts, "translations": {"en": english}}
    )
    with uow:
        created = campaigns.create_campaign(command, uow)
    read_in_english = created.texts_in("en")
    assert (read_in_english.title, read_in_english.summary) == ("Canteens of Bagnolet", "Des repas")
    assert read_in_english.story_markdown == "Récit" and read_in_english.money_uses == ("Cooking",)
    # A language nobody wrote for reads the default texts whole.
    assert created.texts_in("fr").title == "Bagnolet" and created.texts_in("fr").money_uses == ()


def test_an_edit_replaces_the_languages_it_gives_and_an_empty_one_is_removed(
    uow: FakeUnitOfWork,
) -> None:
    draft(uow)
    first = {"translations": {"en": {"title": "Bagnolet EN"}, "fr": {"summary": "Des repas"}}}
    with uow:
        campaigns.edit_campaign(campaigns.EditCampaign("bagnolet", first), uow)
    again = {"translations": {"en": {"summary": "Meals"}, "fr": {"title": "", "money_uses": []}}}
    with uow:
        edited = campaigns.edit_campaign(campaigns.EditCampaign("bagnolet", again), uow)
    assert set(edited.translations) == {"en"}
    assert (edited.translations["en"].title, edited.translations["en"].summary) == ("", "Meals")
    stored = uow.campaigns.by_slug("bagnolet")
    assert stored is not None and stored.translations == edited.translations
