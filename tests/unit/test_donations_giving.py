"""Giving options as pure rules: the fee a donor may cover, amounts typed in the form, and
when a campaign's meal price may change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.donations.domain import (
    Campaign,
    CampaignRuleBroken,
    CampaignStatus,
    ProcessingFee,
    check_meal_price_change,
    parse_major_amount,
)
from services.donations.markdown_text import render_markdown
from services.shared.money import Money

LIVE = Campaign("c-1", "canteens", "Canteens", "LPC", Money(1350, "EUR"), 100, CampaignStatus.LIVE)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_covering_the_fee_leaves_the_cause_the_whole_gift() -> None:
    fee = ProcessingFee(percent_bp=150, fixed=25)
    gift = Money(2700, "EUR")
    added = fee.to_cover(gift)
    total = gift.amount + added.amount
    # What Stripe would keep on the whole payment, rounded up, still leaves the gift whole.
    kept = -(-total * 150 // 10_000) + 25
    assert total - kept >= gift.amount
    assert added == Money(67, "EUR")


def test_no_fee_terms_add_nothing() -> None:
    assert ProcessingFee(0, 0).to_cover(Money(1350, "EUR")) == Money(0, "EUR")


@pytest.mark.parametrize(
    ("typed", "minor"),
    [("13,50", 1350), ("13.5", 1350), ("20", 2000), (" 1 000,00 ", 100000), ("0,05", 5)],
)
def test_amounts_typed_by_donors_become_minor_units(typed: str, minor: int) -> None:
    assert parse_major_amount(typed, 2) == minor


@pytest.mark.parametrize("typed", ["", "abc", "-5", "1,234", "1e3", "13,5,0", "١٢"])
def test_amounts_that_are_not_plain_numbers_are_refused(typed: str) -> None:
    assert parse_major_amount(typed, 2) is None


def test_meal_price_changes_only_from_a_date_not_in_the_past() -> None:
    check_meal_price_change(LIVE, Money(1400, "EUR"), NOW + timedelta(days=1), NOW)
    with pytest.raises(CampaignRuleBroken) as past:
        check_meal_price_change(LIVE, Money(1400, "EUR"), NOW - timedelta(days=1), NOW)
    assert past.value.field == "effective_from"
    with pytest.raises(CampaignRuleBroken) as currency:
        check_meal_price_change(LIVE, Money(1400, "USD"), NOW, NOW)
    assert currency.value.field == "currency"


def test_stories_are_rendered_without_scripts_or_dangerous_links() -> None:
    html = render_markdown("**Hi** <script>alert(1)</script> [x](javascript:alert(1))")
    assert "<strong>Hi</strong>" in html
    assert "<script>" not in html
    assert 'href="javascript' not in html
