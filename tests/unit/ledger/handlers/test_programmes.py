"""The handlers of a company's programme of difts on an in-memory unit of work: funding books
the money into the programme's fund (from Stripe clearing or the bank), each dift moves its
value from that fund to the chosen campaigns' funds once, counting meals there as gifts do,
and a credit back takes what is left out of it; the fund never goes below zero and every
entry balances."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from services.ledger.domain import SPONSOR_CREDITS
from services.shared.consumer import IdempotentConsumer
from services.shared.events import DIFT_BOOKED, LEDGER_TOPIC, MEALS_FUNDED, MILESTONE_REACHED
from services.shared.money import Money, split_evenly
from tests.unit.ledger.conftest import (
    CAMPAIGN,
    FUND,
    PROGRAMME,
    PROGRAMME_FUND,
    SLUG,
    allocation,
    apply,
    credited_back,
    directed,
    expired,
    funded,
    gift,
    price_changed,
    published,
)
from tests.unit.ledger.fakes import (
    FakeUnitOfWork,
    balances,
    campaign_summary,
    journal,
    outbox,
    programme_balance,
    trial_totals,
    unbalanced_entries,
)

BAGNOLET, BRUZ = "c-2", "c-3"
BAGNOLET_FUND, BRUZ_FUND = f"funds:campaign:{BAGNOLET}", f"funds:campaign:{BRUZ}"


def assert_books_balance(uow: FakeUnitOfWork) -> None:
    assert unbalanced_entries(uow) == []
    assert all(total == 0 for total in trial_totals(uow).values())


def shortlist(ledger: IdempotentConsumer) -> None:
    """Three published campaigns: Les Petites Cantines (13.50 a meal) and two canteens."""
    assert (
        apply(
            ledger,
            published(),
            published(campaign_id=BAGNOLET, slug=f"cantine-{BAGNOLET}", meal_price=1000),
            published(campaign_id=BRUZ, slug=f"cantine-{BRUZ}", meal_price=1200),
        )
        == ["applied"] * 3
    )


def fund_balance(uow: FakeUnitOfWork) -> int:
    """What the programme's fund holds, read from the journal (funds are credit balances)."""
    return -balances(uow).get(PROGRAMME_FUND, 0)


def dift_booked(uow: FakeUnitOfWork) -> list[dict[str, Any]]:
    return [event["data"] for event in outbox(uow, DIFT_BOOKED)]


# --- funding ------------------------------------------------------------------------------------


def test_a_stripe_funding_holds_the_gross_in_the_fund_and_books_stripes_fee_as_a_gifts_fee(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    assert apply(ledger, funded("f-1", 100_000, fee=1_450)) == ["applied"]

    # The default fee policy of gifts: Stripe's fee is the platform's expense.
    assert balances(uow) == {
        "assets:stripe-clearing": 98_550,
        "expenses:processing-fees": 1_450,
        PROGRAMME_FUND: -100_000,
    }
    [entry] = journal(uow)
    assert (entry["kind"], entry["campaign_id"]) == ("programme_funded", None)
    assert (entry["charge_id"], entry["balance_transaction_id"]) == ("ch_f-1", "txn_f-1")
    assert entry["stripe_reference"] == "pi_f-1"
    found = programme_balance(uow, PROGRAMME)
    assert found is not None
    assert (found["funded"], found["fees"], found["balance"]) == (100_000, 1_450, 100_000)
    assert_books_balance(uow)


def test_a_bank_transfer_funding_books_the_bank_and_the_fund(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    assert apply(ledger, funded("f-1", 50_000, method="bank_transfer")) == ["applied"]
    assert apply(ledger, funded("f-2", 20_000, method="bank_transfer")) == ["applied"]

    assert balances(uow) == {"assets:bank": 70_000, PROGRAMME_FUND: -70_000}
    assert [e["stripe_object_id"] for e in journal(uow)] == [None, None]
    assert "VIR-f-1" in journal(uow)[0]["description"]
    assert fund_balance(uow) == 70_000


def test_a_funding_is_booked_once_whatever_event_ids_announce_it(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    first = funded("f-1", 100_000, fee=1_450)
    again = replace(first, id="another-event-id")

    assert apply(ledger, first, first, again) == ["applied", "duplicate", "applied"]

    assert len(journal(uow)) == 1
    assert fund_balance(uow) == 100_000


def test_a_funding_in_another_currency_than_the_programmes_is_refused(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, funded("f-1", 100_000))
    before = copy.deepcopy(uow.journal.entries)

    assert apply(ledger, funded("f-2", 100_000, currency="GBP")) == ["dead_lettered"]
    assert uow.journal.entries == before


def test_one_charge_never_funds_twice(uow: FakeUnitOfWork, ledger: IdempotentConsumer) -> None:
    apply(ledger, funded("f-1", 100_000))
    same_charge = funded("f-2", 100_000)
    same_charge.data["charge_id"] = "ch_f-1"

    assert apply(ledger, same_charge) == ["dead_lettered"]
    assert fund_balance(uow) == 100_000


# --- directing a dift ---------------------------------------------------------------------------


def test_a_directed_dift_moves_its_value_from_the_programmes_fund_to_each_chosen_campaign(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    shortlist(ledger)
    apply(ledger, funded("f-1", 10_000, method="bank_transfer"))

    split = directed("d-1", 4_000, [allocation(CAMPAIGN, 2_700), allocation(BAGNOLET, 1_300)])
    assert apply(ledger, split) == ["applied"]

    assert balances(uow) == {
        "assets:bank": 10_000,
        PROGRAMME_FUND: -6_000,
        FUND: -2_700,
        BAGNOLET_FUND: -1_300,
    }
    # One balanced entry per campaign, each in that campaign's journal.
    parts = [e for e in journal(uow) if e["kind"] == "dift_directed"]
    assert [(e["campaign_id"], [line["amount"] for line in e["lines"]]) for e in parts] == [
        (CAMPAIGN, [2_700, -2_700]),
        (BAGNOLET, [1_300, -1_300]),
    ]
    assert_books_balance(uow)
    [booked] = dift_booked(uow)
    assert booked | {"booked_at": None} == {
        "dift_id": "d-1",
        "programme_id": PROGRAMME,
        "kind": "directed",
        "value": 4_000,
        "currency": "EUR",
        "allocations": [
            {
                "campaign_id": CAMPAIGN,
                "campaign_slug": SLUG,
                "amount": 2_700,
                "meal_price": 1_350,
                "meals": 2,
                "meals_funded": 2,
                "remainder": 0,
            },
            {
                "campaign_id": BAGNOLET,
                "campaign_slug": f"cantine-{BAGNOLET}",
                "amount": 1_300,
                "meal_price": 1_000,
                "meals": 1,
                "meals_funded": 1,
                "remainder": 300,
            },
        ],
        "programme_balance": 6_000,
        "booked_at": None,
    }
    [(topic, key, _event)] = [e for e in uow.outbox.events if e[2].type == DIFT_BOOKED]
    assert (topic, key) == (LEDGER_TOPIC, PROGRAMME)
    meals = outbox(uow, MEALS_FUNDED)
    assert [(m["data"]["campaign_id"], m["data"]["dift_id"]) for m in meals] == [
        (CAMPAIGN, "d-1"),
        (BAGNOLET, "d-1"),
    ]
    assert [m["data"]["donation_id"] for m in meals] == [None, None]
    assert [m["data"]["donation_meals"] for m in meals] == [2, 1]


def test_a_dift_is_booked_once_per_dift_id_whatever_is_redelivered(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    shortlist(ledger)
    apply(ledger, funded("f-1", 10_000))
    dift = directed("d-1", 2_700, [allocation(CAMPAIGN, 2_700)])
    announced_again = replace(dift, id="another-event-id")
    then_expired = expired("d-1", 2_700, [allocation(CAMPAIGN, 2_700)])

    assert apply(ledger, dift, dift, announced_again, then_expired) == [
        "applied",
        "duplicate",
        "applied",
        "applied",
    ]

    assert fund_balance(uow) == 7_300
    assert campaign_summary(uow)["difts_received"] == 1
    assert campaign_summary(uow)["meals_funded"] == 2
    assert len(dift_booked(uow)) == 1
    assert len(outbox(uow, MEALS_FUNDED)) == 1


def test_a_dift_beyond_what_the_fund_holds_is_refused_and_changes_nothing(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    shortlist(ledger)
    apply(ledger, funded("f-1", 5_000), directed("d-1", 4_000, [allocation(CAMPAIGN, 4_000)]))
    before = copy.deepcopy((uow.journal.entries, uow.campaigns.totals, uow.outbox.events))

    assert apply(ledger, directed("d-2", 1_001, [allocation(CAMPAIGN, 1_001)])) == ["dead_lettered"]

    assert (uow.journal.entries, uow.campaigns.totals, uow.outbox.events) == before
    assert fund_balance(uow) == 1_000
    # What the fund holds can still be directed to the cent.
    assert apply(ledger, directed("d-3", 1_000, [allocation(CAMPAIGN, 1_000)])) == ["applied"]
    assert fund_balance(uow) == 0


@pytest.mark.parametrize(
    "refused",
    [
        # the allocations do not sum to the value
        directed("d-9", 2_000, [allocation(CAMPAIGN, 1_000), allocation(BAGNOLET, 999)]),
        # a currency the programme is not funded in
        directed("d-9", 2_000, [allocation(CAMPAIGN, 2_000)], currency="GBP"),
        # a programme never funded
        directed("d-9", 2_000, [allocation(CAMPAIGN, 2_000)], programme_id="p-unknown"),
        # a campaign the ledger cannot count meals for (unknown, no meal price carried)
        directed("d-9", 2_000, [allocation("c-unknown", 2_000)]),
        # the "credit back" rule gives no campaign money
        expired("d-9", 2_000, [allocation(CAMPAIGN, 2_000)], rule="credit_back"),
    ],
    ids=["sum", "currency", "unfunded", "unknown-campaign", "credit-back-with-allocations"],
)
def test_a_dift_that_can_never_be_booked_goes_to_dead_letters_and_changes_nothing(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer, refused: Any
) -> None:
    shortlist(ledger)
    apply(ledger, funded("f-1", 10_000))
    before = copy.deepcopy((uow.journal.entries, uow.campaigns.totals, uow.programmes.funds))

    assert apply(ledger, refused) == ["dead_lettered"]

    assert (uow.journal.entries, uow.campaigns.totals, uow.programmes.funds) == before


def test_a_dift_to_a_campaign_in_another_currency_is_refused(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(campaign_id="c-gbp", slug="cantine-c-gbp", currency="GBP"))
    apply(ledger, funded("f-1", 10_000))

    assert apply(ledger, directed("d-1", 2_000, [allocation("c-gbp", 2_000)])) == ["dead_lettered"]
    assert fund_balance(uow) == 10_000


def test_a_dift_to_a_campaign_not_yet_heard_of_counts_at_the_meal_price_it_carries(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, funded("f-1", 10_000))

    assert apply(ledger, directed("d-1", 2_700, [allocation(CAMPAIGN, 2_700, 1_350)])) == [
        "applied"
    ]
    assert campaign_summary(uow)["meals_funded"] == 2
    # The campaign's own events, read afterwards, are the authority.
    assert apply(ledger, published()) == ["applied"]
    assert campaign_summary(uow)["title"] == "Les Petites Cantines"


def test_two_parts_of_a_dift_to_the_same_campaign_count_as_one_dift_there(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    shortlist(ledger)
    apply(ledger, funded("f-1", 10_000))

    twice = directed("d-1", 2_700, [allocation(CAMPAIGN, 1_350), allocation(CAMPAIGN, 1_350)])
    assert apply(ledger, twice) == ["applied"]

    summary = campaign_summary(uow)
    assert (summary["difts_amount"], summary["difts_received"]) == (2_700, 1)
    [booked] = dift_booked(uow)
    assert [(a["campaign_id"], a["amount"]) for a in booked["allocations"]] == [(CAMPAIGN, 2_700)]


# --- meals, as gifts count them ----------------------------------------------------------------


def test_a_dift_completes_meals_with_the_remainder_gifts_carried(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    shortlist(ledger)
    apply(ledger, gift("g-1", 1_000), funded("f-1", 10_000))  # 10.00 carried at 13.50 a meal

    apply(ledger, directed("d-1", 2_000, [allocation(CAMPAIGN, 2_000)]))

    # 30.00 = 2 meals + 3.00 carried: this dift moved the counter by 2.
    [booked] = dift_booked(uow)
    [part] = booked["allocations"]
    assert (part["meals"], part["meals_funded"], part["remainder"]) == (2, 2, 300)
    summary = campaign_summary(uow)
    assert (summary["meals_funded"], summary["remainder"]) == (2, 300)
    assert (summary["gift_meals"], summary["dift_meals"]) == (0, 2)


def test_an_expired_dift_split_evenly_never_loses_or_invents_a_cent(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    shortlist(ledger)
    apply(ledger, funded("f-1", 10_000))
    shares = split_evenly(Money(2_000, "EUR"), 3)  # 6.67, 6.67, 6.66: first shares first
    parts = [
        allocation(campaign_id, share.amount)
        for campaign_id, share in zip((CAMPAIGN, BAGNOLET, BRUZ), shares, strict=True)
    ]

    assert apply(ledger, expired("d-1", 2_000, parts)) == ["applied"]

    assert [share.amount for share in shares] == [667, 667, 666]
    assert balances(uow) == {
        "assets:stripe-clearing": 10_000,
        PROGRAMME_FUND: -8_000,
        FUND: -667,
        BAGNOLET_FUND: -667,
        BRUZ_FUND: -666,
    }
    assert_books_balance(uow)
    [booked] = dift_booked(uow)
    assert booked["kind"] == "expired"
    assert [a["remainder"] for a in booked["allocations"]] == [667, 667, 666]
    found = programme_balance(uow, PROGRAMME)
    assert found is not None
    assert (found["expired_given"], found["difts_expired"], found["directed"]) == (2_000, 1, 0)


def test_an_expired_dift_under_credit_back_moves_nothing_until_the_credit_back(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    shortlist(ledger)
    apply(ledger, funded("f-1", 5_000, method="bank_transfer"))
    apply(ledger, directed("d-1", 2_000, [allocation(CAMPAIGN, 2_000)]))

    assert apply(ledger, expired("d-2", 3_000, [], rule="credit_back")) == ["applied"]
    assert fund_balance(uow) == 3_000
    assert dift_booked(uow)[-1]["allocations"] == []

    assert apply(ledger, credited_back("cb-1", 3_000, reason="expired_difts")) == ["applied"]
    assert balances(uow) == {
        "assets:bank": 5_000,
        FUND: -2_000,
        SPONSOR_CREDITS: -3_000,
    }
    found = programme_balance(uow, PROGRAMME)
    assert found is not None
    assert (found["balance"], found["fund_balance"], found["credited_back"]) == (0, 0, 3_000)
    assert (found["difts_directed"], found["difts_expired"]) == (1, 1)


def test_a_credit_back_never_takes_the_fund_below_zero_and_is_booked_once(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, funded("f-1", 5_000))
    credit = credited_back("cb-1", 4_000)

    assert apply(ledger, credit, replace(credit, id="again")) == ["applied", "applied"]
    assert apply(ledger, credited_back("cb-2", 1_001)) == ["dead_lettered"]
    assert apply(ledger, credited_back("cb-3", 1_000, programme_id="p-unknown")) == [
        "dead_lettered"
    ]

    assert fund_balance(uow) == 1_000
    assert_books_balance(uow)


def test_a_dift_counts_at_the_meal_price_in_force_and_moves_with_a_late_price_change(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    shortlist(ledger)
    apply(ledger, funded("f-1", 10_000))
    apply(ledger, directed("d-1", 2_000, [allocation(CAMPAIGN, 2_000)], when="2026-02-10T00:00Z"))
    assert campaign_summary(uow)["meals_funded"] == 1  # 20.00 at 13.50

    # A price of 10.00 from 1 February, announced late: the dift counts at it, like a gift.
    assert apply(ledger, price_changed(1_000, 1_350, "2026-02-01T00:00:00+00:00")) == ["applied"]

    assert campaign_summary(uow)["meals_funded"] == 2
    [part] = uow.programmes.allocations.values()
    assert part.period_starts_at.isoformat() == "2026-02-01T00:00:00+00:00"


def test_difts_cross_milestones_once_as_gifts_do(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(goal_meals=4))
    apply(ledger, funded("f-1", 10_000))

    apply(ledger, directed("d-1", 2_700, [allocation(CAMPAIGN, 2_700)]))
    apply(ledger, directed("d-2", 2_700, [allocation(CAMPAIGN, 2_700)]))

    reached = [event["data"]["milestone"] for event in outbox(uow, MILESTONE_REACHED)]
    assert reached == ["goal-50", "goal-100"]


def test_the_campaign_summary_tells_gifts_and_difts_apart(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    shortlist(ledger)
    apply(ledger, gift("g-1", 2_700), funded("f-1", 10_000))
    apply(ledger, directed("d-1", 4_050, [allocation(CAMPAIGN, 4_050)]))
    apply(ledger, expired("d-2", 2_000, [allocation(CAMPAIGN, 1_000), allocation(BRUZ, 1_000)]))

    summary = campaign_summary(uow)
    assert (summary["donated"], summary["donations"], summary["gift_meals"]) == (2_700, 1, 2)
    # 27.00 + 40.50 + 10.00 = 77.50: 5 meals and 10.00 carried, 3 of them completed by difts.
    assert (summary["difts_amount"], summary["difts_received"], summary["dift_meals"]) == (
        5_050,
        2,
        3,
    )
    assert (summary["meals_funded"], summary["remainder"]) == (5, 1_000)
    found = programme_balance(uow, PROGRAMME)
    assert found is not None
    assert found["campaigns"] == [
        {"campaign_id": CAMPAIGN, "campaign_slug": SLUG, "amount": 5_050, "meals": 3, "difts": 2},
        {
            "campaign_id": BRUZ,
            "campaign_slug": f"cantine-{BRUZ}",
            "amount": 1_000,
            "meals": 0,
            "difts": 1,
        },
    ]
    assert found["balance"] == found["fund_balance"] == 10_000 - 4_050 - 2_000
