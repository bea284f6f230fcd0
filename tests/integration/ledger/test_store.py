"""One contract for the ledger's repositories (campaigns, gifts, the journal), run against
SQLite, PostgreSQL and the unit tests' in-memory fake (as the eventsourcing library runs one
recorder suite against each database): the same calls give the same answers everywhere, and
what one unit of work wrote the next one reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from services.ledger import domain
from services.ledger.cli import MIGRATIONS
from services.ledger.domain import EPOCH, BalanceQuery, BookedGift, Campaign, EntryKind, GiftBooking
from services.ledger.unit_of_work import LedgerUnitOfWork
from services.shared.money import Money
from tests.support.stores import STORES, OpenUnitOfWork, units_of_work
from tests.unit.ledger.fakes import FakeUnitOfWork, Refused

pytestmark = pytest.mark.integration

JAN = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
# What a database refuses (a unique key, a check) and what the fake refuses in its place.
REFUSED = (IntegrityError, Refused)


@pytest.fixture(params=STORES)
def open_uow(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenUnitOfWork]:
    """Opens a unit of work (a transaction, committed on leaving) on one kind of store."""
    yield from units_of_work(request, tmp_path, MIGRATIONS, LedgerUnitOfWork, FakeUnitOfWork)


def eur(minor: int) -> Money:
    return Money(minor, "EUR")


CANTINES = Campaign("c-1", "cantines", "Les Petites Cantines", "EUR", 1350, goal_meals=100)


def campaign(campaign_id: str = "c-1", **changes: Any) -> Campaign:
    return replace(CANTINES, campaign_id=campaign_id, **changes)


def about(event_id: str = "e-1", **changes: Any) -> domain.EntryReferences:
    return domain.EntryReferences(event_id, "c-1", **changes)


# --- campaigns --------------------------------------------------------------------------------


def test_a_campaign_is_added_once_with_empty_totals_and_saved_over(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.campaigns.add(campaign(title="Another title"))  # known already: kept
    with open_uow() as uow:
        assert uow.campaigns.get("c-1") == campaign()
        assert uow.campaigns.get("c-2") is None
        assert uow.campaigns.holder_of("cantines") == "c-1"
        assert uow.campaigns.holder_of("nobody") is None
        assert uow.campaigns.lock_totals("c-1") == domain.CampaignTotals("EUR")
        assert uow.campaigns.lock_totals("c-2") is None
        uow.campaigns.set_fee_policy("c-1", "campaign")
        uow.campaigns.save(campaign(title="New title", meal_price=1000, goal_meals=None))
    with open_uow() as uow:
        assert uow.campaigns.get("c-1") == campaign(
            title="New title", meal_price=1000, goal_meals=None, fee_policy="campaign"
        )
        uow.campaigns.set_meal_price("c-1", 900)
    with open_uow() as uow:
        found = uow.campaigns.get("c-1")
        assert found is not None and found.meal_price == 900


def test_two_campaigns_cannot_share_a_slug(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.campaigns.add(campaign())
    with pytest.raises(REFUSED), open_uow() as uow:
        uow.campaigns.add(campaign("c-2"))
    with open_uow() as uow:
        assert uow.campaigns.get("c-2") is None


def test_a_campaigns_totals_are_saved_whole(open_uow: OpenUnitOfWork) -> None:
    count = domain.MealCount(3, eur(150), eur(1350))
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        totals = uow.campaigns.lock_totals("c-1")
        uow.campaigns.save_totals("c-1", totals.with_gift(eur(4200), count))
    with open_uow() as uow:
        assert uow.campaigns.lock_totals("c-1") == domain.CampaignTotals("EUR", 4200, 0, 1, 3, 150)


def test_price_periods_keep_their_eligible_amount_when_their_price_is_corrected(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.campaigns.start_period("c-1", FEB, 1000)
        uow.campaigns.start_period("c-1", EPOCH, 1350)
        uow.campaigns.add_eligible("c-1", EPOCH, eur(2800))
        uow.campaigns.add_eligible("c-1", EPOCH, eur(-100))
        uow.campaigns.start_period("c-1", EPOCH, 1200)  # the same start: a corrected price
    with open_uow() as uow:
        assert uow.campaigns.periods("c-1") == [
            domain.PricePeriod(EPOCH, eur(1200), eur(2700)),
            domain.PricePeriod(FEB, eur(1000), eur(0)),
        ]
        assert uow.campaigns.periods("c-2") == []


def test_an_eligible_amount_never_goes_below_zero(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.campaigns.start_period("c-1", EPOCH, 1350)
    with pytest.raises(REFUSED), open_uow() as uow:
        uow.campaigns.add_eligible("c-1", EPOCH, eur(-1))


def test_each_milestone_is_claimed_once(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        assert uow.campaigns.claim_milestones("c-1", ["goal-25", "goal-50"], JAN) == {
            "goal-25",
            "goal-50",
        }
        assert uow.campaigns.claim_milestones("c-1", [], JAN) == set()
    with open_uow() as uow:
        assert uow.campaigns.claim_milestones("c-1", ["goal-50", "goal-75"], FEB) == {"goal-75"}
        assert uow.campaigns.claim_milestones("c-2", ["goal-50"], FEB) == {"goal-50"}


# --- gifts ----------------------------------------------------------------------------------


def test_a_booked_gift_is_read_back_as_it_was_booked_and_changed(
    open_uow: OpenUnitOfWork,
) -> None:
    gift = BookedGift.booked(
        "d-1", "c-1", GiftBooking(eur(2780), eur(80), eur(66)), "ch_1", JAN, EPOCH, 2
    )
    unknown_fee = BookedGift.booked(
        "d-2", "c-1", GiftBooking(eur(500), eur(0), None), None, FEB, FEB, 0
    )
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.gifts.add(gift)
        uow.gifts.add(unknown_fee)
    with open_uow() as uow:
        assert uow.gifts.get("d-1", lock=True) == gift
        assert uow.gifts.get("d-2") == unknown_fee
        assert uow.gifts.get("d-3") is None
        assert uow.gifts.by_charge("ch_1") == gift
        assert uow.gifts.by_charge("ch_2") is None
        back = domain.return_to_donor(gift.booking, eur(0), eur(1000))
        uow.gifts.save(gift.refunded(back, eur(20)))
    with open_uow() as uow:
        assert uow.gifts.get("d-1") == gift.refunded(back, eur(20))


def test_a_gift_is_booked_once_and_never_returns_more_than_it_gave(
    open_uow: OpenUnitOfWork,
) -> None:
    gift = BookedGift.booked(
        "d-1", "c-1", GiftBooking(eur(1000), eur(0), None), None, JAN, EPOCH, 0
    )
    with open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.gifts.add(gift)
    with pytest.raises(REFUSED), open_uow() as uow:
        uow.gifts.add(gift)
    too_much = domain.return_to_donor(gift.booking, eur(0), eur(1000))
    with pytest.raises(REFUSED), open_uow() as uow:
        uow.gifts.save(gift.refunded(too_much, eur(0)).refunded(too_much, eur(0)))


def test_gifts_dated_from_a_new_price_period_on_move_into_it_with_what_they_bring(
    open_uow: OpenUnitOfWork,
) -> None:
    def given(donation_id: str, when: datetime, fund_balance: int) -> BookedGift:
        booking = GiftBooking(eur(1000), eur(0), None)
        booked = BookedGift.booked(donation_id, "c-1", booking, None, when, EPOCH, 0)
        return BookedGift(**{**_fields(booked), "fund_balance": eur(fund_balance)})

    with open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.gifts.add(given("d-jan", JAN, 1000))
        uow.gifts.add(given("d-feb", FEB, 1000))
        uow.gifts.add(given("d-feb-owes", datetime(2026, 2, 3, tzinfo=UTC), -40))
    with open_uow() as uow:
        assert uow.gifts.move_to_period("c-1", FEB, EPOCH) == eur(1000)
        assert uow.gifts.move_to_period("c-1", datetime(2026, 3, 1, tzinfo=UTC), EPOCH) is None
    with open_uow() as uow:
        assert [uow.gifts.get(d).period_starts_at for d in ("d-jan", "d-feb", "d-feb-owes")] == [
            EPOCH,
            FEB,
            FEB,
        ]


def _fields(gift: BookedGift) -> dict[str, Any]:
    return {name: getattr(gift, name) for name in BookedGift.__dataclass_fields__}


# --- the journal --------------------------------------------------------------------------------


def test_entries_are_posted_with_their_lines_and_found_by_what_they_booked(
    open_uow: OpenUnitOfWork,
) -> None:
    gift = domain.donation_entry("c-1", eur(2700), JAN, "Gift d-1")
    with open_uow() as uow:
        first = uow.journal.post(
            gift, about(donation_id="d-1", stripe_object_id="ch_1", charge_id="ch_1")
        )
        second = uow.journal.post(
            domain.payout_entry(eur(2700), FEB, "Payout po_1"), about(stripe_object_id="po_1")
        )
    with open_uow() as uow:
        assert second > first
        assert uow.journal.lines_of(first) == list(gift.lines)
        assert uow.journal.lines_of(second + 1) == []
        assert uow.journal.entry_of([EntryKind.DONATION], "ch_1") == domain.PostedEntry(
            first, "donation", "ch_1", "ch_1"
        )
        assert uow.journal.entry_of(
            [EntryKind.REFUND, EntryKind.PAYOUT], "po_1"
        ) == domain.PostedEntry(second, "payout", "po_1", None)
        assert uow.journal.entry_of([EntryKind.REFUND], "ch_1") is None
        assert uow.journal.has_gift("d-1") and not uow.journal.has_gift("d-2")


def test_a_stripe_object_is_booked_once_per_kind_and_a_gift_once(
    open_uow: OpenUnitOfWork,
) -> None:
    gift = domain.donation_entry("c-1", eur(2700), JAN, "Gift d-1")
    with open_uow() as uow:
        uow.journal.post(gift, about(donation_id="d-1", stripe_object_id="ch_1"))
    for again in (about("e-2", stripe_object_id="ch_1"), about("e-3", donation_id="d-1")):
        with pytest.raises(REFUSED), open_uow() as uow:
            uow.journal.post(gift, again)


def test_a_month_is_closed_once(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        assert uow.journal.closed_months() == set()
        assert uow.journal.close("2026-01", "finance@example.org")
        assert not uow.journal.close("2026-01", "someone else")
    with open_uow() as uow:
        assert uow.journal.closed_months() == {"2026-01"}


def test_the_movements_of_stripe_clearing_by_period_payout_and_reference(
    open_uow: OpenUnitOfWork,
) -> None:
    back = domain.return_to_donor(GiftBooking(eur(2700), eur(0), None), eur(0), eur(700))
    with open_uow() as uow:
        gift = uow.journal.post(
            domain.donation_entry("c-1", eur(2700), JAN, "Gift d-1"),
            about(stripe_object_id="ch_1", balance_transaction_id="txn_1"),
        )
        refund = uow.journal.post(
            domain.refund_entry("c-1", back, eur(0), eur(0), FEB, "Refund re_1"),
            about("e-2", stripe_object_id="re_1", balance_transaction_id="txn_2"),
        )
        uow.journal.record_payout_items("po_1", ["txn_1"])
        uow.journal.record_payout_items("po_1", ["txn_1"])  # payout.paid again: no change
        uow.journal.post(
            domain.payout_entry(eur(2700), FEB, "Payout po_1"),
            about("e-3", stripe_object_id="po_1"),
        )
    with open_uow() as uow:
        everything = uow.journal.clearing_movements()
        january = uow.journal.clearing_movements(BalanceQuery(EPOCH, FEB))
        settled = uow.journal.clearing_movements(BalanceQuery(payout_id="po_1"))
        referenced = uow.journal.clearing_movements(referencing={"re_1", "txn_9"})
        assert [(m.entry_id, m.kind, m.net) for m in everything] == [
            (gift, "donation", 2700),
            (refund, "refund", -700),
            (refund + 1, "payout", -2700),
        ]
        assert [(m.stripe_object_id, m.balance_transaction_id) for m in january] == [
            ("ch_1", "txn_1")
        ]
        assert [m.entry_id for m in settled] == [gift]
        assert [m.entry_id for m in referenced] == [refund]
        assert (everything[0].currency, everything[0].effective_at) == ("EUR", JAN)
        assert uow.journal.booked_to_bank("po_1") == 2700
        assert uow.journal.booked_to_bank("po_2") == 0


def test_an_entry_dated_in_a_closed_month_keeps_its_date_for_reconciliation(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        uow.journal.close("2026-01", "finance@example.org")
        uow.journal.post(domain.donation_entry("c-1", eur(2700), JAN, "Gift d-1"), about())
    with open_uow() as uow:
        [late] = uow.journal.clearing_movements(BalanceQuery(EPOCH, FEB))
        assert late.effective_at == JAN  # posted in February, dated in January
        assert uow.journal.clearing_movements(BalanceQuery(since=FEB)) == []


def test_what_a_unit_of_work_did_is_undone_when_it_raises(open_uow: OpenUnitOfWork) -> None:
    with pytest.raises(RuntimeError), open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.journal.post(domain.donation_entry("c-1", eur(2700), JAN, "Gift d-1"), about())
        raise RuntimeError("the handler failed")
    with open_uow() as uow:
        assert uow.campaigns.get("c-1") is None
        assert uow.journal.clearing_movements() == []


# --- programmes of difts --------------------------------------------------------------------


def test_a_programmes_fund_is_added_once_saved_whole_and_never_below_zero(
    open_uow: OpenUnitOfWork,
) -> None:
    fund = domain.ProgrammeFund("p-1", "s-1", "EUR")
    funded = fund.with_funding(eur(10_000), eur(145))
    with open_uow() as uow:
        assert uow.programmes.lock("p-1") is None
        uow.programmes.add(fund)
        uow.programmes.add(domain.ProgrammeFund("p-1", "s-other", "GBP"))  # known: kept
        uow.programmes.save(funded)
    with open_uow() as uow:
        assert uow.programmes.lock("p-1") == funded
        given = funded.with_dift(domain.DiftOutcome.EXPIRED, eur(4_000))
        uow.programmes.save(given.with_credit_back(eur(6_000)))
    with open_uow() as uow:
        found = uow.programmes.lock("p-1")
        assert found is not None and found.balance == eur(0)
        assert (found.expired_given, found.difts_expired, found.credited_back) == (4_000, 1, 6_000)
    # What the domain refuses, the table refuses too.
    with pytest.raises(REFUSED), open_uow() as uow:
        uow.programmes.save(domain.ProgrammeFund("p-1", "s-1", "EUR", funded=1, directed=2))


def test_each_funding_dift_and_credit_back_is_recorded_once(open_uow: OpenUnitOfWork) -> None:
    moved = domain.ProgrammeMovement(
        domain.Movement.DIFT, "d-1", "p-1", "directed", eur(2_000), JAN
    )
    with open_uow() as uow:
        assert not uow.programmes.booked(domain.Movement.DIFT, "d-1")
        uow.programmes.record(moved)
        # The same id as another kind of movement is another movement.
        uow.programmes.record(replace(moved, movement=domain.Movement.FUNDING, kind="funded"))
    with open_uow() as uow:
        assert uow.programmes.booked(domain.Movement.DIFT, "d-1")
        assert uow.programmes.booked(domain.Movement.FUNDING, "d-1")
        assert not uow.programmes.booked(domain.Movement.CREDIT, "d-1")
    with pytest.raises(REFUSED), open_uow() as uow:
        uow.programmes.record(replace(moved, kind="expired"))


def test_a_difts_allocations_move_to_a_new_price_period_with_what_they_bring(
    open_uow: OpenUnitOfWork,
) -> None:
    def part(dift_id: str, when: datetime, amount: int) -> domain.DiftAllocation:
        return domain.DiftAllocation(
            dift_id, "c-1", "p-1", domain.DiftOutcome.DIRECTED, eur(amount), 0, when, EPOCH
        )

    with open_uow() as uow:
        uow.campaigns.add(campaign())
        uow.programmes.add_allocations(
            [part("d-jan", JAN, 1_000), part("d-feb", FEB, 700), part("d-mar", FEB, 300)]
        )
        uow.programmes.add_allocations([])
    with pytest.raises(REFUSED), open_uow() as uow:
        uow.programmes.add_allocations([part("d-jan", JAN, 1_000)])
    with open_uow() as uow:
        assert uow.programmes.move_to_period("c-1", FEB, EPOCH) == eur(1_000)
        assert uow.programmes.move_to_period("c-1", datetime(2026, 3, 1, tzinfo=UTC), EPOCH) is None
        assert uow.programmes.move_to_period("c-2", FEB, EPOCH) is None
    with open_uow() as uow:
        assert uow.programmes.move_to_period("c-1", FEB, EPOCH) is None  # moved already
