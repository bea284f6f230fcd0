"""The ledger's rules: balanced entries, and money into meals with the remainder carried."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.domain import (
    STRIPE_CLEARING,
    BookedGift,
    CampaignTotals,
    EntryKind,
    FeePolicy,
    GiftBooking,
    JournalEntry,
    JournalLine,
    LedgerMovement,
    MealCount,
    MealTally,
    PricePeriod,
    StripeMovement,
    UnbalancedEntry,
    campaign_fund,
    count_meals,
    credit,
    debit,
    donation_entry,
    highest,
    milestones_crossed,
    posting_date,
    reconcile,
    refund_entry,
    refund_taken,
    return_to_donor,
    settle_payout,
    stripe_fee,
    with_eligible,
)
from services.shared.money import Money

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
MEAL = Money(1350, "EUR")


def eur(cents: int) -> Money:
    return Money(cents, "EUR")


def test_a_27_euro_gift_at_13_50_a_meal_funds_2_meals_with_nothing_left() -> None:
    tally, gift_meals = MealTally.empty(MEAL).add_gift(eur(2700))

    assert (tally.meals_funded, tally.remainder, gift_meals) == (2, eur(0), 2)


def test_the_remainder_is_carried_to_the_next_gift_never_rounded() -> None:
    tally, first = MealTally.empty(MEAL).add_gift(eur(1000))
    assert (tally.meals_funded, tally.remainder, first) == (0, eur(1000), 0)

    tally, second = tally.add_gift(eur(2700))

    # 10.00 + 27.00 = 37.00 = 2 meals (27.00) + 10.00 carried.
    assert (tally.meals_funded, tally.remainder, second) == (2, eur(1000), 2)


def test_a_small_gift_that_completes_a_meal_is_credited_with_that_meal() -> None:
    tally = MealTally(eur(1300), MEAL)

    after, gift_meals = tally.add_gift(eur(50))

    assert (after.meals_funded, after.remainder, gift_meals) == (1, eur(0), 1)


def test_a_gift_one_cent_short_of_a_meal_funds_none() -> None:
    tally, gift_meals = MealTally.empty(MEAL).add_gift(eur(1349))

    assert (tally.meals_funded, tally.remainder, gift_meals) == (0, eur(1349), 0)


def test_a_gift_must_be_positive_and_in_the_campaign_currency() -> None:
    tally = MealTally.empty(MEAL)
    with pytest.raises(ValueError):
        tally.add_gift(eur(0))
    with pytest.raises(ValueError):
        tally.add_gift(Money(2700, "USD"))


def test_a_meal_price_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MealTally.empty(eur(0))


def test_a_donation_entry_debits_stripe_clearing_and_credits_the_campaign_fund() -> None:
    entry = donation_entry("c-1", eur(2700), NOW, "Gift d-1 to petites-cantines")

    assert entry.kind is EntryKind.DONATION
    assert [(line.account, line.amount) for line in entry.lines] == [
        (STRIPE_CLEARING, eur(2700)),
        ("funds:campaign:c-1", eur(-2700)),
    ]
    assert sum(line.amount.amount for line in entry.lines) == 0


def test_credits_are_negative_and_debits_positive() -> None:
    assert debit(STRIPE_CLEARING, eur(100)).amount == eur(100)
    assert credit(STRIPE_CLEARING, eur(100)).amount == eur(-100)
    with pytest.raises(ValueError):
        debit(STRIPE_CLEARING, eur(-100))
    with pytest.raises(ValueError):
        credit(STRIPE_CLEARING, eur(0))


@pytest.mark.parametrize(
    ("why", "credited"),
    [
        ("off by a cent", eur(2699)),
        # An entry balances per currency, not across currencies.
        ("euros against dollars", Money(2700, "USD")),
    ],
)
def test_an_unbalanced_entry_is_refused(why: str, credited: Money) -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry(
            EntryKind.DONATION,
            why,
            NOW,
            (debit(STRIPE_CLEARING, eur(2700)), credit(campaign_fund("c-1"), credited)),
        )


def test_an_entry_of_one_line_is_refused() -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry(EntryKind.DONATION, "alone", NOW, (debit(STRIPE_CLEARING, eur(1)),))


def test_a_line_of_zero_is_refused() -> None:
    with pytest.raises(ValueError):
        JournalLine(STRIPE_CLEARING, eur(0))


def test_a_campaign_fund_is_named_after_the_campaign() -> None:
    assert campaign_fund("c-1") == "funds:campaign:c-1"
    with pytest.raises(ValueError):
        campaign_fund("")
    with pytest.raises(ValueError):
        campaign_fund("a:b")  # would read as a sub-account


@given(
    meal_price=st.integers(min_value=1, max_value=100_000),
    gifts=st.lists(st.integers(min_value=1, max_value=1_000_000), max_size=60),
)
def test_meals_are_the_floor_of_the_total_and_per_gift_meals_add_up_to_the_counter(
    meal_price: int, gifts: list[int]
) -> None:
    tally = MealTally.empty(eur(meal_price))
    counted = 0
    for gift in gifts:
        tally, gift_meals = tally.add_gift(eur(gift))
        assert gift_meals >= 0
        counted += gift_meals

    total = sum(gifts)
    assert tally.meals_funded == total // meal_price
    assert tally.remainder == eur(total % meal_price)
    assert counted == tally.meals_funded
    assert tally.meals_funded * meal_price + tally.remainder.amount == total


# --- price periods, returns, milestones, posting dates ------------------------------------------


def test_one_price_period_counts_the_plain_formula_and_a_new_price_counts_from_its_date() -> None:

    january = datetime(2026, 1, 1, tzinfo=UTC)
    february = datetime(2026, 2, 1, tzinfo=UTC)
    only = count_meals([PricePeriod(january, MEAL, eur(4100))])
    assert (only.meals_funded, only.remainder) == (3, eur(50))

    # 41.00 at 13.50 = 3 meals, 0.50 carried into February at 10.00: with 19.50, 2 meals.
    both = count_meals(
        [PricePeriod(february, eur(1000), eur(1950)), PricePeriod(january, MEAL, eur(4100))]
    )
    assert (both.meals_funded, both.remainder, both.meal_price) == (5, eur(0), eur(1000))


@given(
    periods=st.lists(
        st.tuples(st.integers(1, 20_000), st.integers(0, 500_000)), min_size=1, max_size=8
    )
)
def test_meals_over_price_periods_never_round_a_cent_away(periods: list[tuple[int, int]]) -> None:

    dated = [
        PricePeriod(datetime(2026, 1 + n, 1, tzinfo=UTC), eur(price), eur(eligible))
        for n, (price, eligible) in enumerate(periods[:8])
    ]
    counted = count_meals(dated)

    # Replay the fold by hand: what was eligible is exactly meals at their prices + remainder.
    carried, meals, spent = 0, 0, 0
    for price, eligible in periods[:8]:
        whole, carried = divmod(carried + eligible, price)
        meals += whole
        spent += whole * price
    assert (counted.meals_funded, counted.remainder.amount) == (meals, carried)
    assert spent + counted.remainder.amount == sum(eligible for _, eligible in periods[:8])
    assert 0 <= counted.remainder.amount < periods[-1][0]


@given(
    amount=st.integers(1, 1_000_000),
    covered_share=st.floats(0, 0.5),
    cuts=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=6),
)
def test_returns_of_a_whole_gift_split_the_donor_cover_to_the_cent(
    amount: int, covered_share: float, cuts: list[float]
) -> None:

    covered = min(int(amount * covered_share), amount - 1)
    gift = GiftBooking(eur(amount), eur(covered), eur(0))
    returned, from_covered, from_fund = 0, 0, 0
    for cut in cuts:
        left = amount - returned
        if left == 0:
            break
        part = max(1, int(left * cut))
        back = return_to_donor(gift, eur(returned), eur(part))
        assert back.total == eur(part)
        assert back.from_covered_fees.amount >= 0 and back.from_fund.amount >= 0
        returned += part
        from_covered += back.from_covered_fees.amount
        from_fund += back.from_fund.amount
    if returned < amount:
        back = return_to_donor(gift, eur(returned), eur(amount - returned))
        from_covered += back.from_covered_fees.amount
        from_fund += back.from_fund.amount
    assert (from_covered, from_fund) == (covered, amount - covered)


def test_milestones_are_quarters_of_the_goal_and_every_hundred_meals() -> None:

    assert [m.name for m in milestones_crossed(0, 250, 1000)] == [
        "goal-25",
        "meals-100",
        "meals-200",
    ]
    assert [m.name for m in milestones_crossed(2, 3, 10)] == ["goal-25"]
    assert milestones_crossed(5, 3, 10) == []
    assert [m.meals for m in milestones_crossed(0, 250, 1000)] == [250, 100, 200]


def test_the_highest_of_milestones_crossed_together_names_the_moment() -> None:
    # 25 % of 2,000 meals and the 500th meal are the same moment: the share of the goal says more.
    crossed = milestones_crossed(450, 520, 2000)
    assert [m.name for m in crossed] == ["goal-25", "meals-500"]
    assert highest(crossed).name == "goal-25"
    assert highest(milestones_crossed(0, 250, 1000)).name == "goal-25"
    assert highest(milestones_crossed(0, 260, None)).name == "meals-200"
    with pytest.raises(ValueError):
        highest([])


def test_an_entry_dated_in_a_closed_month_posts_at_the_start_of_the_next_open_one() -> None:

    late = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
    assert posting_date(late, set()) == (late, None)
    assert posting_date(late, {"2026-01", "2026-02"}) == (datetime(2026, 3, 1, tzinfo=UTC), late)
    december = datetime(2025, 12, 5, tzinfo=UTC)
    assert posting_date(december, {"2025-12"})[0] == datetime(2026, 1, 1, tzinfo=UTC)


# --- a booked gift and what goes back of it ---------------------------------------------------


def test_stripes_fee_is_the_fee_or_the_gift_less_the_net_and_must_add_up() -> None:
    assert stripe_fee(eur(2700), 64, 2636) == eur(64)
    assert stripe_fee(eur(2700), None, 2636) == eur(64)
    assert stripe_fee(eur(2700), 64, None) == eur(64)
    assert stripe_fee(eur(2700), None, None) is None
    with pytest.raises(ValueError, match="fee 64 and net 2600 do not add up to 2700"):
        stripe_fee(eur(2700), 64, 2600)


def booked(policy: FeePolicy = FeePolicy.CAMPAIGN) -> BookedGift:
    """27.80 given, 0.80 of it to cover a 1.00 fee."""
    booking = GiftBooking(eur(2780), eur(80), eur(100), policy)
    return BookedGift.booked("d-1", "c-1", booking, "ch_1", NOW, NOW, 2)


def test_a_booked_gift_holds_its_fund_share_and_nothing_went_back_yet() -> None:
    gift = booked()

    assert (gift.fund_balance, gift.returned, gift.fee_back_to_fund) == (eur(2680), eur(0), eur(0))
    assert gift.eligible == eur(2680)  # 27.00 for the cause, less the 0.20 the cover missed
    assert (gift.currency, gift.meals) == ("EUR", 2)


def test_a_refund_gives_back_from_the_fund_and_the_cover_and_the_fee_back_to_the_fund() -> None:
    gift = booked()
    back = gift.give_back(eur(1390))
    fee_back = gift.fee_back_on_refund(eur(50))

    after = gift.refunded(back, fee_back)

    assert (back.from_fund, back.from_covered_fees) == (eur(1350), eur(40))
    assert fee_back == eur(20)  # the fund bore only the 0.20 the cover did not pay
    assert (after.returned, after.fund_balance, after.fee_back_to_fund) == (
        eur(1390),
        eur(2680 - 1350 + 20),
        eur(20),
    )
    assert after.fee_back_on_refund(eur(50)) == eur(0)
    assert booked(FeePolicy.PLATFORM).fee_back_on_refund(eur(50)) == eur(0)


def test_a_refund_that_fails_leaves_the_gift_as_before_it() -> None:
    gift = booked()
    back = gift.give_back(eur(1390))
    entry = refund_entry("c-1", back, eur(50), eur(20), NOW, "Refund re_1")
    refunded = gift.refunded(back, eur(20))

    taken = refund_taken("c-1", entry.lines, "EUR")

    assert taken.total == eur(1390)
    assert (taken.from_fund, taken.from_covered_fees, taken.fee_back_to_fund) == (
        eur(1350 - 20),
        eur(40),
        eur(20),
    )
    assert refunded.refund_failed(taken) == gift


def test_a_lost_dispute_takes_its_part_from_the_fund_and_more_than_the_gift_never_goes_back() -> (
    None
):
    gift = booked()
    lost = gift.lost_in_dispute(gift.give_back(eur(2780)))

    assert (lost.returned, lost.fund_balance, lost.eligible) == (eur(2780), eur(-20), eur(0))
    with pytest.raises(ValueError, match="2781 returned of a gift of 2780 EUR"):
        gift.give_back(eur(2781))


# --- a campaign's totals and its price periods ----------------------------------------------


def test_a_campaigns_totals_add_gifts_and_returns_and_take_a_recount() -> None:
    count = MealCount(3, eur(150), MEAL)
    totals = CampaignTotals("EUR").with_gift(eur(4200), count)

    assert totals == CampaignTotals("EUR", 4200, 0, 1, 3, 150)
    assert totals.with_refunded(eur(700)).with_refunded(eur(-700)) == totals
    assert totals.counted(MealCount(2, eur(0), MEAL)) == CampaignTotals("EUR", 4200, 0, 1, 2, 0)


def test_a_gift_adds_to_the_eligible_amount_of_its_period_only() -> None:
    later = datetime(2026, 2, 1, tzinfo=UTC)
    periods = [PricePeriod(NOW, MEAL, eur(100)), PricePeriod(later, eur(1000), eur(0))]

    assert with_eligible(periods, later, eur(2000)) == [
        PricePeriod(NOW, MEAL, eur(100)),
        PricePeriod(later, eur(1000), eur(2000)),
    ]


def test_a_milestone_is_published_by_its_name_kind_value_and_meals() -> None:
    [quarter] = milestones_crossed(0, 3, 10)

    assert quarter.as_data() == {
        "milestone": "goal-25",
        "kind": "goal_percent",
        "value": 25,
        "meals": 3,
    }


# --- reconciliation ----------------------------------------------------------------------------


def movement(txn: str, source: str, net: int) -> StripeMovement:
    return StripeMovement(txn, "charge", source, "EUR", net, 0, net, NOW)


def booked_movement(entry_id: int, source: str, txn: str | None, net: int) -> LedgerMovement:
    return LedgerMovement(entry_id, "donation", source, txn, "EUR", net, NOW)


def test_movements_match_by_balance_transaction_else_by_stripe_object_and_sign() -> None:
    stripe_side = [
        movement("txn_1", "ch_1", 2636),
        movement("txn_2", "dp_1", -4200),  # a dispute's withdrawal...
        movement("txn_3", "dp_1", 2700),  # ...and its reinstatement
        movement("txn_4", "ch_9", 100),
    ]
    ledger_side = [
        booked_movement(1, "ch_1", "txn_1", 2636),
        booked_movement(2, "dp_1", None, 2700),
        booked_movement(3, "dp_1", None, -4200),
        booked_movement(4, "ch_5", "txn_5", 500),
    ]

    report = reconcile("test", stripe_side, ledger_side)

    assert [(m["balance_transaction"], m["entry_id"]) for m in report.matched] == [
        ("txn_1", 1),
        ("txn_2", 3),
        ("txn_3", 2),
    ]
    assert [m["balance_transaction"] for m in report.only_in_stripe] == ["txn_4"]
    assert [m["entry_id"] for m in report.only_in_ledger] == [4]
    assert (report.stripe_total, report.ledger_total) == ({"EUR": 1236}, {"EUR": 1636})
    assert not report.balanced
    assert report.to_dict()["summary"]["only_in_ledger_total"] == 500
    assert "NOT BALANCED" in report.to_text()


def test_a_payouts_report_balances_only_when_the_bank_got_what_it_settled() -> None:
    report = reconcile("payout po_1", [movement("txn_1", "ch_1", 2636)], [])
    report.only_in_stripe.clear()
    report.ledger_total = {"EUR": 2636}

    settle_payout(report, "po_1", booked=2636)
    assert report.payout == {"payout_id": "po_1", "booked": 2636, "settled": 2636, "difference": 0}
    assert report.balanced

    settle_payout(report, "po_1", booked=2600)
    assert report.payout["difference"] == 36
    assert not report.balanced
