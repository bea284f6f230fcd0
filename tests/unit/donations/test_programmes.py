"""Company difts' rules (domain/programmes.py): sponsors' SIREN, a programme's shortlist,
dates, budget and life, a dift's state machine, and the arithmetic of allocations (a
recipient's split, the expiry fallback): every sum exact, every illegal transition refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.donations.domain.campaigns import Campaign, CampaignStatus, RuleBroken
from services.donations.domain.programmes import (
    Allocation,
    Channel,
    CreditReason,
    Dift,
    DiftAlreadyDirected,
    DiftExpired,
    DiftRuleBroken,
    DiftState,
    FallbackRule,
    Programme,
    ProgrammeRuleBroken,
    ProgrammeStatus,
    Recipient,
    Sponsor,
    direction,
    fallback_allocations,
    receipt_number,
    siren_is_valid,
    split,
)
from services.shared.money import Money

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EUR = "EUR"


def campaign(
    slug: str, status: CampaignStatus = CampaignStatus.LIVE, currency: str = EUR
) -> Campaign:
    return Campaign(
        id=f"c-{slug}",
        slug=slug,
        title=slug.title(),
        cause="Les Petites Cantines",
        meal_price=Money(1350, currency),
        goal_meals=None,
        status=status,
    )


SHORTLIST = [campaign("network"), campaign("bagnolet"), campaign("bruz")]


def sponsor() -> Sponsor:
    return Sponsor.register(
        "s-1",
        legal_name="Acme SAS",
        legal_form="SAS",
        siren="732 829 320",
        postal_address="1 rue de la Paix, 75002 Paris",
        contact_email="csr@acme.test",
        brand_name="Acme",
        now=NOW,
    )


def programme(**changes: Any) -> Programme:
    values: dict[str, Any] = {
        "name": "Year-end difts",
        "currency": EUR,
        "dift_value": 2000,
        "opens_at": NOW,
        "expires_at": NOW + timedelta(days=30),
        "now": NOW,
        **changes,
    }
    shortlist = values.pop("shortlist", SHORTLIST)
    return Programme.draft("p-1", sponsor(), shortlist, **values)


def open_programme(funded: int = 10_000, **changes: Any) -> Programme:
    funded_programme, _event = programme(**changes).funded_with(Money(funded, EUR), NOW)
    return funded_programme.opened(NOW)


def issued(value: int = 2000, channel: Channel = Channel.EMAIL) -> Dift:
    recipient = Recipient("ada@example.org", "Ada") if channel is not Channel.CODE else None
    dift, _event = Dift.issue(
        "d-1", open_programme(), channel, Money(value, EUR), NOW, recipient=recipient
    )
    return dift


def euros(amount: int) -> Money:
    return Money(amount * 100, EUR)


# --- sponsors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("siren", ["732829320", "552100554", "443061841", "356000000"])
def test_a_siren_whose_luhn_key_checks_is_valid(siren: str) -> None:
    assert siren_is_valid(siren)


@pytest.mark.parametrize(
    "siren", ["732829321", "123456789", "73282932", "7328293200", "73282932a", ""]
)
def test_a_siren_with_a_wrong_key_or_shape_is_refused(siren: str) -> None:
    assert not siren_is_valid(siren)


def test_a_sponsor_with_a_wrong_siren_is_refused_naming_the_field() -> None:
    with pytest.raises(RuleBroken) as refused:
        Sponsor.register(
            "s-2",
            legal_name="Acme",
            legal_form="SAS",
            siren="732829321",
            postal_address="Paris",
            contact_email="a@b.test",
            brand_name="",
            now=NOW,
        )
    assert refused.value.field == "siren"


def test_a_sponsor_without_a_brand_shows_its_legal_name() -> None:
    assert replace(sponsor()).siren == "732829320"
    assert (
        Sponsor.register(
            "s-3",
            legal_name="Acme SAS",
            legal_form="SAS",
            siren="732829320",
            postal_address="Paris",
            contact_email="a@b.test",
            brand_name=" ",
            now=NOW,
        ).brand_name
        == "Acme SAS"
    )


# --- programmes -------------------------------------------------------------------------------


def test_a_new_programme_is_a_draft_with_an_empty_budget_and_its_shortlist_in_order() -> None:
    draft = programme()
    assert draft.status is ProgrammeStatus.DRAFT
    assert draft.shortlist == ("c-network", "c-bagnolet", "c-bruz")
    assert (draft.funded, draft.available) == (Money.zero(EUR), Money.zero(EUR))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"shortlist": []}, "shortlist"),
        ({"shortlist": [campaign(f"c{i}") for i in range(7)]}, "shortlist"),
        ({"shortlist": [campaign("a"), campaign("a")]}, "shortlist"),
        ({"shortlist": [campaign("draft", CampaignStatus.DRAFT)]}, "shortlist"),
        ({"shortlist": [campaign("swiss", currency="CHF")]}, "currency"),
        ({"dift_value": 0}, "dift_value"),
        ({"expires_at": NOW}, "expires_at"),
        ({"fallback_rule": FallbackRule.ONE_CAMPAIGN}, "fallback_campaign_id"),
        (
            {"fallback_rule": FallbackRule.ONE_CAMPAIGN, "fallback_campaign_id": "c-elsewhere"},
            "fallback_campaign_id",
        ),
        ({"fallback_campaign_id": "c-bruz"}, "fallback_campaign_id"),
        ({"name": " "}, "name"),
    ],
)
def test_a_programme_that_does_not_hold_together_is_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ProgrammeRuleBroken) as refused:
        programme(**changes)
    assert refused.value.field == field


def test_funding_a_draft_funds_it_and_a_top_up_adds_to_it() -> None:
    funded, event = programme().funded_with(euros(100), NOW)
    assert (funded.status, funded.funded, event.amount) == (
        ProgrammeStatus.FUNDED,
        euros(100),
        euros(100),
    )
    topped, _ = funded.opened(NOW).funded_with(euros(50), NOW)
    assert (topped.status, topped.funded, topped.available) == (
        ProgrammeStatus.OPEN,
        euros(150),
        euros(150),
    )


def test_a_programme_opens_only_funded_and_once_its_date_has_come() -> None:
    later = programme(opens_at=NOW + timedelta(days=1), expires_at=NOW + timedelta(days=9))
    with pytest.raises(ProgrammeRuleBroken) as refused:
        later.opened(NOW + timedelta(days=2))
    assert refused.value.field == "status"
    funded, _ = later.funded_with(euros(10), NOW)
    assert not funded.can_open(NOW)
    with pytest.raises(ProgrammeRuleBroken):
        funded.opened(NOW)
    assert funded.can_open(NOW + timedelta(days=1))
    assert funded.opened(NOW + timedelta(days=1)).status is ProgrammeStatus.OPEN


def test_no_dift_is_issued_beyond_the_funded_budget() -> None:
    budget = open_programme(funded=5000)
    budget = budget.reserving(euros(20), NOW).reserving(euros(20), NOW)
    assert budget.available == euros(10)
    with pytest.raises(ProgrammeRuleBroken) as refused:
        budget.reserving(euros(20), NOW)
    assert refused.value.field == "budget"


def test_a_draft_or_funded_programme_issues_no_difts() -> None:
    funded, _ = programme().funded_with(euros(100), NOW)
    for not_open in (programme(), funded):
        with pytest.raises(ProgrammeRuleBroken) as refused:
            not_open.reserving(euros(20), NOW)
        assert refused.value.field == "status"


def test_a_programme_with_a_fixed_value_refuses_another_value_and_one_per_recipient_needs_one() -> (
    None
):
    fixed = open_programme()
    assert fixed.value_of(None) == euros(20)
    with pytest.raises(ProgrammeRuleBroken):
        fixed.value_of(euros(30))
    per_recipient = open_programme(dift_value=None)
    assert per_recipient.value_of(euros(30)) == euros(30)
    with pytest.raises(ProgrammeRuleBroken) as refused:
        per_recipient.value_of(None)
    assert refused.value.field == "value"


def test_crediting_back_takes_only_unused_budget() -> None:
    budget = open_programme(funded=5000).reserving(euros(20), NOW)
    credited, event = budget.crediting_back(euros(10), "wire 42", "cr-1", NOW)
    assert (credited.available, event.reason) == (euros(20), CreditReason.UNUSED_BUDGET)
    with pytest.raises(ProgrammeRuleBroken) as refused:
        credited.crediting_back(euros(21), "", "cr-2", NOW)
    assert refused.value.field == "amount"


def test_closing_credits_back_the_expired_difts_kept_and_the_unused_budget_to_a_zero_balance() -> (
    None
):
    budget = open_programme(funded=10_000, fallback_rule=FallbackRule.CREDIT_BACK)
    budget = budget.reserving(euros(20), NOW).reserving(euros(20), NOW)
    budget = budget.expiring_to_credit(euros(20))  # one of the two expired, kept for the sponsor
    closed, credits = budget.closed(("cr-a", "cr-b"), NOW + timedelta(days=31))
    assert [(c.reason, c.amount) for c in credits] == [
        (CreditReason.EXPIRED_DIFTS, euros(20)),
        (CreditReason.CLOSING, euros(60)),
    ]
    # The ledger's balance: funded - given by difts (one, directed) - credited back = 0.
    given = euros(20)
    assert closed.funded - given - closed.credited_back == Money.zero(EUR)
    assert (closed.status, closed.available) == (ProgrammeStatus.CLOSED, Money.zero(EUR))


def test_a_closed_programme_takes_no_money_and_cannot_close_again() -> None:
    closed, _ = open_programme().closed(("a", "b"), NOW)
    with pytest.raises(ProgrammeRuleBroken):
        closed.funded_with(euros(1), NOW)
    with pytest.raises(ProgrammeRuleBroken):
        closed.closed(("a", "b"), NOW)


def test_only_a_draft_is_edited() -> None:
    assert programme().edited({"name": "New"}, None).name == "New"
    with pytest.raises(ProgrammeRuleBroken) as refused:
        open_programme().edited({"name": "New"}, None)
    assert refused.value.field == "status"


# --- a dift's life ----------------------------------------------------------------------------


def test_a_dift_goes_issued_sent_opened_directed() -> None:
    dift = issued()
    sent, _ = dift.sent(NOW)
    opened, _ = sent.opened(NOW)
    allocations = (Allocation("c-bruz", euros(20)),)
    directed, event = opened.directed(allocations, True, NOW)
    assert [d.state for d in (dift, sent, opened, directed)] == [
        DiftState.ISSUED,
        DiftState.SENT,
        DiftState.OPENED,
        DiftState.DIRECTED,
    ]
    assert event.dift.allocations == allocations and directed.updates_opt_in


def test_a_bounced_invitation_is_recorded_and_leaves_the_dift_issued() -> None:
    bounced, event = issued().sent(NOW, bounced=True)
    assert (bounced.state, bounced.bounced_at, event.bounced) == (DiftState.ISSUED, NOW, True)


def test_a_code_needs_no_recipient_and_an_email_needs_one() -> None:
    assert issued(channel=Channel.CODE).recipient is None
    with pytest.raises(DiftRuleBroken) as refused:
        Dift.issue("d-2", open_programme(), Channel.EMAIL, euros(20), NOW)
    assert refused.value.field == "recipient"


def test_a_dift_expires_past_its_programmes_expiry_into_the_fallback() -> None:
    owner = open_programme()
    expired, event = issued().expired(owner, owner.expires_at)
    assert expired.state is DiftState.EXPIRED and event.rule is FallbackRule.SPLIT_EVENLY
    assert sum(a.amount.amount for a in expired.allocations) == 2000
    with pytest.raises(DiftRuleBroken) as refused:
        issued().expired(owner, owner.expires_at - timedelta(seconds=1))
    assert refused.value.field == "expires_at"


def _moves(dift: Dift) -> dict[str, Any]:
    owner = open_programme()
    allocations = (Allocation("c-bruz", dift.value),)
    return {
        "sent": lambda: dift.sent(NOW),
        "opened": lambda: dift.opened(NOW),
        "directed": lambda: dift.directed(allocations, False, NOW),
        "expired": lambda: dift.expired(owner, owner.expires_at),
    }


# Every state and the transitions it allows; every other one is refused.
LEGAL = {
    DiftState.ISSUED: {"sent", "opened", "directed", "expired"},
    DiftState.SENT: {"opened", "directed", "expired"},
    DiftState.OPENED: {"directed", "expired"},
    DiftState.DIRECTED: set(),
    DiftState.EXPIRED: set(),
}


@given(st.sampled_from(list(DiftState)), st.sampled_from(["sent", "opened", "directed", "expired"]))
def test_the_state_machine_allows_its_transitions_and_refuses_every_other(
    state: DiftState, move: str
) -> None:
    dift = replace(issued(), state=state)
    if move in LEGAL[state]:
        moved, _event = _moves(dift)[move]()
        assert moved.state is not state or move == "sent"
        return
    with pytest.raises(DiftRuleBroken) as refused:
        _moves(dift)[move]()
    assert refused.value.field in ("state", "dift")
    if state is DiftState.DIRECTED:
        assert isinstance(refused.value, DiftAlreadyDirected) or move == "sent"
    if state is DiftState.EXPIRED:
        assert isinstance(refused.value, DiftExpired) or move == "sent"


def test_a_dift_whose_allocations_do_not_sum_to_its_value_is_not_directed() -> None:
    with pytest.raises(DiftRuleBroken) as refused:
        issued().directed((Allocation("c-bruz", euros(19)),), False, NOW)
    assert refused.value.field == "allocations"


# --- allocations ------------------------------------------------------------------------------


def test_all_to_one_gives_the_whole_value_to_a_shortlisted_campaign() -> None:
    owner = open_programme()
    assert direction(owner, euros(20), one_campaign_id="c-bagnolet") == (
        Allocation("c-bagnolet", euros(20)),
    )
    with pytest.raises(DiftRuleBroken) as refused:
        direction(owner, euros(20), one_campaign_id="c-elsewhere")
    assert refused.value.field == "campaign_id"


def test_a_split_is_kept_in_shortlist_order_without_its_zero_shares() -> None:
    owner = open_programme()
    shares = [("c-bruz", euros(5)), ("c-network", euros(15)), ("c-bagnolet", euros(0))]
    assert split(owner, euros(20), shares) == (
        Allocation("c-network", euros(15)),
        Allocation("c-bruz", euros(5)),
    )


def test_a_value_with_cents_splits_its_whole_units_and_the_cents_go_to_the_first_chosen() -> None:
    owner = open_programme(dift_value=None)
    value = Money(1250, EUR)  # 12.50 EUR: 12 whole euros to split, 0.50 to the first chosen
    shares = [("c-bruz", euros(4)), ("c-bagnolet", euros(8))]
    assert split(owner, value, shares) == (
        Allocation("c-bagnolet", Money(850, EUR)),
        Allocation("c-bruz", Money(400, EUR)),
    )
    with pytest.raises(DiftRuleBroken):
        split(owner, value, [("c-bruz", euros(13))])  # 13 > the 12 whole euros


@pytest.mark.parametrize(
    "shares",
    [
        [("c-bruz", euros(10))],  # short of the value
        [("c-bruz", Money(1050, EUR)), ("c-network", Money(950, EUR))],  # cents
        [("c-bruz", euros(25)), ("c-network", euros(-5))],  # negative
        [("c-bruz", euros(10)), ("c-bruz", euros(10))],  # twice
        [("c-elsewhere", euros(20))],  # not shortlisted
        [],  # nothing chosen
        [("c-bruz", Money(2000, "CHF"))],  # another currency
    ],
)
def test_a_split_that_is_not_whole_units_summing_to_the_value_is_refused(
    shares: list[tuple[str, Money]],
) -> None:
    with pytest.raises(DiftRuleBroken) as refused:
        split(open_programme(), euros(20), shares)
    assert refused.value.field == "allocations"


def test_a_direction_is_one_campaign_or_a_split_not_both() -> None:
    with pytest.raises(DiftRuleBroken):
        direction(open_programme(), euros(20), one_campaign_id="c-bruz", shares=[])
    with pytest.raises(DiftRuleBroken):
        direction(open_programme(), euros(20))


@given(
    value=st.integers(min_value=1, max_value=10**7),
    weights=st.lists(st.integers(min_value=0, max_value=50), min_size=3, max_size=3),
)
def test_a_valid_split_always_sums_exactly_to_the_value(value: int, weights: list[int]) -> None:
    owner = open_programme(dift_value=None)
    whole = value // 100
    if not any(weights):
        weights = [1, 0, 0]
    total_weight = sum(weights)
    shares_units = [whole * w // total_weight for w in weights]
    shares_units[weights.index(max(weights))] += whole - sum(shares_units)
    shares = [(cid, euros(units)) for cid, units in zip(owner.shortlist, shares_units, strict=True)]
    money = Money(value, EUR)
    if whole == 0:
        assert direction(owner, money, one_campaign_id="c-bruz") == (Allocation("c-bruz", money),)
        return
    allocations = split(owner, money, shares)
    assert sum(a.amount.amount for a in allocations) == value
    assert all(a.amount.amount > 0 for a in allocations)


@given(
    value=st.integers(min_value=1, max_value=10**7),
    size=st.integers(min_value=1, max_value=6),
)
def test_the_even_fallback_always_sums_exactly_with_the_cents_to_the_first_listed(
    value: int, size: int
) -> None:
    shortlist = [campaign(f"c{i}") for i in range(size)]
    owner = open_programme(dift_value=None, shortlist=shortlist)
    allocations = fallback_allocations(owner, Money(value, EUR))
    assert sum(a.amount.amount for a in allocations) == value
    amounts = [a.amount.amount for a in allocations]
    assert amounts == sorted(amounts, reverse=True) and max(amounts) - min(amounts) <= 1
    assert [a.campaign_id for a in allocations] == list(owner.shortlist[: len(allocations)])


def test_the_even_fallback_of_ten_euros_over_three_gives_the_extra_cent_to_the_first() -> None:
    allocations = fallback_allocations(open_programme(), euros(10))
    assert [(a.campaign_id, a.amount.amount) for a in allocations] == [
        ("c-network", 334),
        ("c-bagnolet", 333),
        ("c-bruz", 333),
    ]


def test_the_other_fallbacks_give_all_to_the_named_campaign_or_nothing() -> None:
    one = open_programme(fallback_rule=FallbackRule.ONE_CAMPAIGN, fallback_campaign_id="c-bruz")
    assert fallback_allocations(one, euros(20)) == (Allocation("c-bruz", euros(20)),)
    back = open_programme(fallback_rule=FallbackRule.CREDIT_BACK)
    assert fallback_allocations(back, euros(20)) == ()


def test_a_receipt_number_is_the_year_and_a_six_digit_sequence() -> None:
    assert receipt_number(2026, 1) == "2026-000001"


def test_an_open_programme_ended_early_expires_now_and_its_difts_go_to_the_fallback() -> None:
    owner = open_programme()
    ended = owner.ended_early(NOW)
    assert ended.expires_at == NOW and ended.is_past_expiry(NOW)
    assert not ended.accepts_directions(NOW)
    expired, _event = issued().expired(ended, NOW)
    assert expired.state is DiftState.EXPIRED


def test_only_an_open_programme_before_its_expiry_is_ended_early() -> None:
    with pytest.raises(ProgrammeRuleBroken) as refused:
        open_programme().ended_early(open_programme().expires_at)
    assert refused.value.field == "expires_at"
    funded = replace(open_programme(), status=ProgrammeStatus.FUNDED)
    with pytest.raises(ProgrammeRuleBroken) as not_open:
        funded.ended_early(NOW)
    assert not_open.value.field == "status"
