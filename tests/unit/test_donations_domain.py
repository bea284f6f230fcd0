"""The rules of giving: what a gift costs and which campaigns take gifts."""

import pytest

from services.donations.domain import (
    Campaign,
    CampaignStatus,
    GiftLimits,
    GiftRefused,
    meals_in,
    price_gift,
    succeeded_event_id,
)
from services.donations.payments import checkout_session_params
from services.shared.money import Money

LIMITS = GiftLimits(min_amount=100, max_amount=1_000_000)


def campaign(status: CampaignStatus = CampaignStatus.LIVE) -> Campaign:
    return Campaign(
        id="c-1",
        slug="petites-cantines",
        title="Canteens",
        cause="LPC",
        meal_price=Money(1350, "EUR"),
        goal_meals=1000,
        status=status,
    )


def test_two_meals_cost_27_euros() -> None:
    assert price_gift(campaign(), LIMITS, meals=2) == Money(2700, "EUR")


def test_an_amount_is_taken_as_given_in_minor_units() -> None:
    assert price_gift(campaign(), LIMITS, amount=2700, currency="EUR") == Money(2700, "EUR")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount": 99}, "amount"),
        ({"amount": 1_000_001}, "amount"),
        ({"meals": 10_000}, "meals"),
        ({"amount": 2700, "currency": "USD"}, "currency"),
        ({"amount": 2700, "meals": 2}, "amount"),
        ({}, "amount"),
    ],
)
def test_gifts_outside_the_rules_are_refused_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(GiftRefused) as refused:
        price_gift(campaign(), LIMITS, **kwargs)
    assert refused.value.field == field


@pytest.mark.parametrize("status", [CampaignStatus.DRAFT, CampaignStatus.CLOSED])
def test_only_a_live_campaign_takes_gifts(status: CampaignStatus) -> None:
    with pytest.raises(GiftRefused) as refused:
        price_gift(campaign(status), LIMITS, meals=1)
    assert refused.value.field == "campaign"


def test_a_gift_pays_for_whole_meals_only() -> None:
    assert meals_in(Money(2000, "EUR"), Money(1350, "EUR")) == 1


def test_a_donation_has_one_succeeded_event_id_however_often_it_is_confirmed() -> None:
    assert succeeded_event_id("d-1") == succeeded_event_id("d-1")
    assert succeeded_event_id("d-1") != succeeded_event_id("d-2")


def test_a_checkout_carries_the_donation_to_the_charge_for_a_later_resync() -> None:
    params = checkout_session_params(
        donation_id="d-1",
        campaign_id="c-1",
        campaign_title="Canteens",
        gift=Money(2767, "EUR"),
        fee_covered=Money(67, "EUR"),
        donor_email="ada@example.org",
        success_url="https://difts.test/thanks",
        cancel_url="https://difts.test/canceled",
    )
    assert (params["mode"], params["submit_type"]) == ("payment", "donate")
    assert params["client_reference_id"] == "d-1"
    expected = {"donation_id": "d-1", "campaign_id": "c-1", "fee_covered": "67"}
    assert params["metadata"] == params["payment_intent_data"]["metadata"] == expected
    assert params["line_items"][0]["price_data"]["unit_amount"] == 2767
