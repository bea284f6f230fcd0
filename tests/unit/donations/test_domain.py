"""The donations service's rules, with no I/O: what a gift costs and which campaigns take
gifts, the fee a donor may cover, amounts typed in the form, when a campaign's meal price may
change, and a donation's lifecycle (each change once, with the events it causes)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.donations.domain.campaigns import (
    Campaign,
    CampaignRuleBroken,
    CampaignStatus,
    check_meal_price_change,
)
from services.donations.domain.donations import (
    DisputeEnded,
    Donation,
    DonationDisputed,
    DonationEnded,
    DonationRefunded,
    DonationStatus,
    DonationSucceeded,
    Donor,
    RefundReversed,
    succeeded_event_id,
)
from services.donations.domain.giving import (
    Gift,
    GiftLimits,
    GiftRefused,
    ProcessingFee,
    parse_major_amount,
    price_donation,
    price_gift,
    priced_meals,
)
from services.donations.domain.payments import (
    CheckoutPaid,
    CheckoutSession,
    DisputeClosed,
    DisputeFees,
    DisputeOpened,
    PaymentFacts,
    PaymentRef,
    RefundReported,
)
from services.shared.money import Money

LIMITS = GiftLimits(min_amount=100, max_amount=1_000_000)
LIVE = Campaign("c-1", "canteens", "Canteens", "LPC", Money(1350, "EUR"), 100, CampaignStatus.LIVE)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


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


# --- what a gift costs ------------------------------------------------------------------------


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
    assert priced_meals(Money(2000, "EUR"), Money(1350, "EUR")) == 1


def test_the_form_prices_a_gift_at_the_meals_chosen_or_the_whole_meals_it_pays() -> None:
    fee = ProcessingFee(150, 25)
    chosen = price_donation(
        campaign(), LIMITS, fee, amount=None, meals=2, currency=None, cover_fee=True
    )
    assert (chosen.total, chosen.fee_covered, chosen.priced_meals) == (
        Money(2767, "EUR"),
        Money(67, "EUR"),
        2,
    )
    typed = price_donation(
        campaign(), LIMITS, fee, amount=2700, meals=None, currency="EUR", cover_fee=False
    )
    assert (typed.total, typed.fee_covered, typed.priced_meals) == (
        Money(2700, "EUR"),
        Money(0, "EUR"),
        2,
    )
    with pytest.raises(GiftRefused) as refused:
        price_donation(
            campaign(), LIMITS, fee, amount=999_999, meals=None, currency=None, cover_fee=True
        )
    assert refused.value.field == "cover_fee"


def test_a_donation_has_one_succeeded_event_id_however_often_it_is_confirmed() -> None:
    assert succeeded_event_id("d-1") == succeeded_event_id("d-1")
    assert succeeded_event_id("d-1") != succeeded_event_id("d-2")


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


# --- campaigns --------------------------------------------------------------------------------


def test_meal_price_changes_only_from_a_date_not_in_the_past() -> None:
    check_meal_price_change(LIVE, Money(1400, "EUR"), NOW + timedelta(days=1), NOW)
    with pytest.raises(CampaignRuleBroken) as past:
        check_meal_price_change(LIVE, Money(1400, "EUR"), NOW - timedelta(days=1), NOW)
    assert past.value.field == "effective_from"
    with pytest.raises(CampaignRuleBroken) as currency:
        check_meal_price_change(LIVE, Money(1400, "USD"), NOW, NOW)
    assert currency.value.field == "currency"


def test_a_draft_goes_live_once_and_a_live_campaign_closes_once() -> None:
    draft = replace(LIVE, status=CampaignStatus.DRAFT)
    live = draft.gone_live(NOW)
    assert (live.status, live.published_at) == (CampaignStatus.LIVE, NOW)
    closed = live.closed(NOW)
    assert (closed.status, closed.closed_at) == (CampaignStatus.CLOSED, NOW)
    for refused in (live.gone_live, draft.closed, closed.gone_live, closed.closed):
        with pytest.raises(CampaignRuleBroken) as broken:
            refused(NOW)
        assert broken.value.field == "status"


def test_only_a_draft_changes_its_meal_price_or_currency_by_an_edit() -> None:
    draft = replace(LIVE, status=CampaignStatus.DRAFT)
    edited = draft.edited({"meal_price": 1400, "currency": "CHF", "money_uses": ["Rent"]})
    assert (edited.meal_price, edited.money_uses) == (Money(1400, "CHF"), ("Rent",))
    assert LIVE.edited({"goal_meals": 200}).goal_meals == 200
    for change in ({"meal_price": 1400}, {"currency": "CHF"}):
        with pytest.raises(CampaignRuleBroken) as broken:
            LIVE.edited(change)
        assert broken.value.field == next(iter(change))
    with pytest.raises(CampaignRuleBroken) as closed:
        LIVE.closed(NOW).edited({"title": "Later"})
    assert closed.value.field == "campaign"


# --- a donation's lifecycle -------------------------------------------------------------------


def donation(status: DonationStatus = DonationStatus.PENDING, **changes: Any) -> Donation:
    values: dict[str, Any] = {
        "id": "d-1",
        "campaign_id": "c-1",
        "amount": Money(2700, "EUR"),
        "fee_covered": Money(0, "EUR"),
        "priced_meals": 2,
        "donor": Donor("ada@example.org", "Ada", "fr"),
        "updates_opt_in": False,
        "consent_at": None,
        "status": status,
        "created_at": NOW,
        "amount_refunded": Money(0, "EUR"),
        "charge_id": "ch_1",
        **changes,
    }
    return Donation(**values)


def paid(amount: int | None = 2700, currency: str | None = "EUR") -> CheckoutPaid:
    return CheckoutPaid("d-1", "cs_1", "pi_1", amount, currency)


FACTS = PaymentFacts("ch_1", "txn_1", 66, 2634, 2700, "EUR")


def refund(refund_id: str = "re_1", amount: int = 1000, currency: str = "EUR") -> RefundReported:
    return RefundReported(
        refund_id, amount, currency, "succeeded", PaymentRef("pi_1", None), None, None
    )


def test_a_donation_starts_pending_with_the_form_pricing_and_consent_dated() -> None:
    priced = price_donation(
        campaign(),
        LIMITS,
        ProcessingFee(0, 0),
        amount=None,
        meals=2,
        currency=None,
        cover_fee=False,
    )
    asked = Gift("canteens", None, 2, None, "ada@example.org", "Ada", "fr", True, None)
    started = Donation.start(
        "d-1", campaign(), asked, priced, CheckoutSession("cs_1", "https://pay"), NOW
    )
    assert (started.status, started.priced_meals, started.consent_at) == (
        DonationStatus.PENDING,
        2,
        NOW,
    )
    assert (started.public_message, started.show_message) == (None, False)  # no message
    assert started.request_fingerprint is None  # no Idempotency-Key
    again = replace(asked, idempotency_key="key-1")
    assert again.fingerprint() == replace(again, locale="en").fingerprint()
    assert again.fingerprint() != replace(again, meals=3).fingerprint()


def test_a_paid_checkout_succeeds_once_with_the_balance_facts() -> None:
    pending = donation()
    outcome = pending.succeed(paid(), FACTS, NOW)
    assert outcome.name == "succeeded" and pending.status is DonationStatus.SUCCEEDED
    [event] = outcome.events
    assert isinstance(event, DonationSucceeded) and event.session_id == "cs_1"
    assert (event.donation.fee, event.donation.net, event.donation.payment_intent_id) == (
        66,
        2634,
        "pi_1",
    )
    again = pending.succeed(paid(), FACTS, NOW)
    assert (again.name, again.events) == ("already_succeeded", ())


def test_a_paid_checkout_of_another_amount_or_a_foreign_balance_transaction_counts_no_fee() -> None:
    assert donation().succeed(paid(amount=1), FACTS, NOW).name == "amount_mismatch"
    assert donation().succeed(paid(currency="USD"), FACTS, NOW).name == "amount_mismatch"
    foreign = replace(FACTS, amount=100, currency="USD")
    outcome = donation().succeed(paid(), foreign, NOW)
    assert outcome.name == "succeeded"
    assert (outcome.events[0].donation.fee, outcome.events[0].donation.net) == (None, None)


@pytest.mark.parametrize("earlier", [DonationStatus.EXPIRED, DonationStatus.CANCELED])
def test_money_that_moved_wins_over_an_earlier_end(earlier: DonationStatus) -> None:
    assert donation(earlier).succeed(paid(), FACTS, NOW).name == "succeeded"


def test_only_a_pending_donation_ends_unpaid() -> None:
    pending = donation()
    outcome = pending.end_unpaid(DonationStatus.CANCELED, "the donor left", NOW)
    [event] = outcome.events
    assert outcome.name == "canceled" and isinstance(event, DonationEnded)
    assert (pending.status, pending.ended_at, event.reason) == (
        DonationStatus.CANCELED,
        NOW,
        "the donor left",
    )
    assert donation(DonationStatus.SUCCEEDED).end_unpaid(
        DonationStatus.EXPIRED, "expired", NOW
    ).name == ("already_succeeded")


def test_refunds_count_once_within_the_gift_until_it_is_refunded() -> None:
    gift = donation(DonationStatus.SUCCEEDED)
    first = gift.refund(refund("re_1", 1000), NOW, counted_before=False)
    assert first.name == "partially_refunded" and first.refund is not None
    assert gift.amount_refunded == Money(1000, "EUR") and gift.status is DonationStatus.SUCCEEDED
    assert gift.refund(refund("re_1", 1000), NOW, counted_before=True).name == "already_refunded"
    assert gift.refund(refund("re_2", 1701), NOW, counted_before=False).name == "refund_mismatch"
    other = gift.refund(refund("re_3", 100, "USD"), NOW, counted_before=False)
    assert other.name == "refund_mismatch"
    rest = gift.refund(refund("re_4", 1700), NOW, counted_before=False)
    [event] = rest.events
    assert rest.name == "refunded" and isinstance(event, DonationRefunded) and event.fully
    assert gift.status is DonationStatus.REFUNDED


def test_a_refund_of_a_donation_not_paid_yet_waits() -> None:
    assert donation().refund(refund(), NOW, counted_before=False).name == "waiting"


def test_a_counted_refund_that_fails_is_undone_once() -> None:
    gift = donation(DonationStatus.SUCCEEDED)
    counted = gift.refund(refund("re_1", 2700), NOW, counted_before=False).refund
    assert counted is not None and gift.status is DonationStatus.REFUNDED
    reversed_ = gift.reverse_refund(counted, refund("re_1", 2700), NOW)
    [event] = reversed_.events
    assert reversed_.name == "refund_reversed" and isinstance(event, RefundReversed)
    assert (gift.status, gift.amount_refunded) == (DonationStatus.SUCCEEDED, Money(0, "EUR"))
    assert reversed_.refund is not None and reversed_.refund.has_failed
    again = gift.reverse_refund(reversed_.refund, refund("re_1", 2700), NOW)
    assert (again.name, again.events) == ("refund_already_failed", ())


def test_a_refund_that_failed_first_is_remembered_as_failed() -> None:
    remembered = donation().refuse_refund(refund("re_9", 500, "XYZ"), NOW)
    assert (remembered.has_failed, remembered.currency, remembered.failed_at) == (True, "XYZ", NOW)


def dispute_opened() -> DisputeOpened:
    fees = DisputeFees(1500, 0, "txn_d")
    return DisputeOpened("dp_1", 2700, None, PaymentRef("pi_1", "ch_1"), fees, "fraudulent")


def dispute_closed(status: str) -> DisputeClosed:
    return DisputeClosed("dp_1", status, "ch_1", DisputeFees(1500, 1500, "txn_d2"))


def test_a_dispute_opens_on_a_paid_donation_and_a_won_one_gives_it_back() -> None:
    assert donation().open_dispute(dispute_opened(), NOW).name == "waiting"
    gift = donation(DonationStatus.SUCCEEDED)
    opened = gift.open_dispute(dispute_opened(), NOW)
    assert opened.name == "dispute_opened" and gift.status is DonationStatus.DISPUTED
    assert isinstance(opened.events[0], DonationDisputed) and opened.dispute is not None
    assert opened.dispute.currency == "EUR"  # the donation's, when Stripe names none
    won = gift.close_dispute(opened.dispute, dispute_closed("won"), NOW)
    [event] = won.events
    assert won.name == "dispute_won" and isinstance(event, DisputeEnded) and event.won
    assert gift.status is DonationStatus.SUCCEEDED
    assert won.dispute is not None
    assert gift.close_dispute(won.dispute, dispute_closed("won"), NOW).name == "already_closed"


def test_a_lost_dispute_leaves_it_disputed_and_a_won_one_of_a_refunded_gift_refunded() -> None:
    gift = donation(DonationStatus.SUCCEEDED)
    opened = gift.open_dispute(dispute_opened(), NOW).dispute
    assert opened is not None
    assert gift.close_dispute(opened, dispute_closed("lost"), NOW).name == "dispute_lost"
    assert gift.status is DonationStatus.DISPUTED
    refunded = donation(DonationStatus.DISPUTED, amount_refunded=Money(2700, "EUR"))
    refunded.close_dispute(opened, dispute_closed("won"), NOW)
    assert refunded.status is DonationStatus.REFUNDED
