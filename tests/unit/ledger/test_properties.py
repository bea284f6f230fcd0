"""Properties of the books over random histories, on an in-memory unit of work: gifts (with
fees and donor cover), partial refunds, refunds that fail afterwards, disputes won and lost,
and replays of any event already seen; and a programme's fundings, difts directed and expired
(split or not) and credits back, redelivered or announced again. Whatever the history, every
entry balances, no money appears or vanishes, a programme's fund never goes below zero, and
the meals are the formula's."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ledger import handlers
from services.shared.consumer import IdempotentConsumer
from services.shared.envelope import CloudEvent
from services.shared.money import Money, split_evenly
from tests.unit.ledger.conftest import (
    CAMPAIGN,
    FUND,
    PROGRAMME,
    SLUG,
    allocation,
    consumer_of,
    credited_back,
    directed,
    dispute_closed,
    dispute_opened,
    expired,
    funded,
    gift,
    published,
    refund,
    refund_failed,
)
from tests.unit.ledger.fakes import (
    FakeUnitOfWork,
    balances,
    campaign_summary,
    finance_summary,
    programme_balance,
    trial_totals,
    unbalanced_entries,
)

MEAL_PRICE = 1350


@dataclass(eq=False)  # two gifts of the same figures are still two gifts
class Gift:
    """What the test itself expects of one gift, computed without the ledger."""

    amount: int
    covered: int
    fee: int
    policy: str = "platform"
    returned: int = 0
    fee_back_to_fund: int = 0
    covered_back: int = 0  # what the returns still standing took from the donor's cover
    dispute: str | None = None  # "open", "won" or "lost"
    # Refunds still standing, by id: amount, cover part, fee back to the fund, fee refunded.
    refunds: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def charged_to_fund(self) -> int:
        return max(0, self.fee - self.covered) if self.policy == "campaign" else 0

    def give_back(self, amount: int) -> int:
        """Return `amount` to the donor; the part of it taken from the cover: the cumulative
        formula, steered back to it after a return in the middle was reversed."""
        target = (self.returned + amount) * self.covered // self.amount
        part = min(max(0, target - self.covered_back), amount)
        self.returned += amount
        self.covered_back += part
        return part

    def kept_by_fund(self) -> int:
        """What the fund holds of this gift (below zero when it bore a fee and gave all back)."""
        given_back = self.returned - self.covered_back
        return (
            self.amount - self.covered - self.charged_to_fund - given_back + self.fee_back_to_fund
        )


@dataclass
class History:
    gifts: list[Gift] = field(default_factory=list)
    events: list[CloudEvent] = field(default_factory=list)
    clearing: int = 0
    disputed: int = 0
    policy: str = "platform"


steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("gift"),
            st.integers(min_value=100, max_value=50_000),
            st.integers(min_value=0, max_value=500),
            st.integers(min_value=0, max_value=400),
        ),
        st.tuples(st.just("refund"), st.integers(0, 50), st.floats(0.05, 1.0), st.integers(0, 1)),
        st.tuples(st.just("dispute"), st.integers(0, 50), st.sampled_from(["won", "lost"])),
        st.tuples(st.just("refund fails"), st.integers(0, 50), st.integers(0, 50)),
        st.tuples(st.just("replay"), st.integers(0, 200)),
    ),
    max_size=25,
)


def run(history: History, ledger: IdempotentConsumer, step: tuple[Any, ...]) -> None:
    kind = step[0]
    number = len(history.events)
    if kind == "gift":
        _, amount, covered, fee = step
        covered = min(covered, amount - 1)
        history.gifts.append(Gift(amount, covered, fee, history.policy))
        event = gift(f"d-{len(history.gifts)}", amount, fee=fee, fee_covered=covered)
        history.clearing += amount - fee
    elif kind == "refund" and history.gifts:
        _, which, share, fee_back = step
        target = history.gifts[which % len(history.gifts)]
        left = target.amount - target.returned
        if left == 0 or target.dispute in ("open", "lost"):
            return
        amount = max(1, int(left * share))
        fee_refunded = min(target.fee, amount) if fee_back and amount == left else 0
        part = target.give_back(amount)
        to_fund = min(fee_refunded, target.charged_to_fund - target.fee_back_to_fund)
        target.fee_back_to_fund += to_fund
        target.refunds[f"re_{number}"] = (amount, part, to_fund, fee_refunded)
        donation = f"d-{history.gifts.index(target) + 1}"
        event = refund(donation, f"re_{number}", amount, target.returned, fee_refunded)
        history.clearing -= amount - fee_refunded
    elif kind == "refund fails" and history.gifts:
        _, which, pick = step
        target = history.gifts[which % len(history.gifts)]
        if not target.refunds:
            return
        refund_id = sorted(target.refunds)[pick % len(target.refunds)]
        amount, part, to_fund, fee_refunded = target.refunds.pop(refund_id)
        target.returned -= amount
        target.covered_back -= part
        target.fee_back_to_fund -= to_fund
        donation = f"d-{history.gifts.index(target) + 1}"
        event = refund_failed(donation, refund_id, amount, target.returned)
        history.clearing += amount - fee_refunded
    elif kind == "dispute" and history.gifts:
        _, which, outcome = step
        target = history.gifts[which % len(history.gifts)]
        donation = f"d-{history.gifts.index(target) + 1}"
        amount = target.amount - target.returned
        if target.dispute is not None or amount == 0:
            return
        opened = dispute_opened(donation, f"dp_{donation}", amount, fee=1500)
        assert ledger.apply(opened.to_json().encode()).status == "applied"
        history.events.append(opened)
        history.clearing -= amount + 1500
        event = dispute_closed(donation, f"dp_{donation}", outcome, amount)
        target.dispute = outcome
        if outcome == "won":
            history.clearing += amount
        else:
            target.give_back(amount)
    elif kind == "replay" and history.events:
        event = history.events[step[1] % len(history.events)]
        assert ledger.apply(event.to_json().encode()).status == "duplicate"
        return
    else:
        return
    outcome = ledger.apply(event.to_json().encode())
    assert outcome.status == "applied", outcome.reason
    history.events.append(event)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(history_steps=steps, policy=st.sampled_from(["platform", "campaign"]))
def test_any_history_balances_conserves_money_and_counts_meals_by_the_formula(
    history_steps: list[tuple[Any, ...]], policy: str
) -> None:
    uow = FakeUnitOfWork()
    ledger = consumer_of(uow)
    history = History(policy=policy)
    assert ledger.apply(published(meal_price=MEAL_PRICE).to_json().encode()).status
    with uow:
        handlers.set_fee_policy(handlers.SetFeePolicy(SLUG, policy), uow)
    for step in history_steps:
        run(history, ledger, step)

    assert unbalanced_entries(uow) == []
    found = finance_summary(uow, SLUG)
    assert all(total == 0 for total in trial_totals(uow).values())  # the trial balance balances
    books = balances(uow)
    assert found is not None

    # No money appears or vanishes: Stripe's side and the fund's side add up.
    assert books.get("assets:stripe-clearing", 0) == history.clearing
    assert -books.get(FUND, 0) == sum(g.kept_by_fund() for g in history.gifts)
    eligible = sum(max(0, g.kept_by_fund()) for g in history.gifts)
    charged = sum(g.charged_to_fund - g.fee_back_to_fund for g in history.gifts)
    assert -books.get("income:fees-charged-to-campaigns", 0) == charged
    covered = sum(g.covered - g.covered_back for g in history.gifts)
    assert -books.get("income:donor-covered-fees", 0) == covered
    # A gift that went back whole gave back the donor's cover to the cent.
    for whole in (g for g in history.gifts if g.returned == g.amount):
        assert whole.covered_back == whole.covered
    assert found["refunded"] == sum(
        amount for g in history.gifts for amount, *_ in g.refunds.values()
    )
    # Meals are the formula, with the remainder carried, never below zero.
    assert found["meals_funded"] == eligible // MEAL_PRICE >= 0
    assert found["remainder"] == eligible % MEAL_PRICE
    assert found["donated"] == sum(g.amount for g in history.gifts)
    assert CAMPAIGN == found["campaign_id"]


# --- a company's programme of difts ------------------------------------------------------------

SHORTLIST = [
    (CAMPAIGN, SLUG, MEAL_PRICE),
    ("c-2", "cantine-c-2", 1000),
    ("c-3", "cantine-c-3", 1200),
]

programme_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("fund"),
            st.integers(min_value=1, max_value=20_000),
            st.sampled_from(["stripe", "bank_transfer"]),
        ),
        st.tuples(
            st.just("direct"),
            st.integers(min_value=1, max_value=8_000),
            st.lists(st.integers(0, 2), min_size=1, max_size=3),
        ),
        st.tuples(
            st.just("expire"),
            st.integers(min_value=1, max_value=8_000),
            st.sampled_from(["split_evenly", "one_campaign", "credit_back"]),
        ),
        st.tuples(st.just("credit back"), st.integers(min_value=1, max_value=20_000)),
        st.tuples(st.just("replay"), st.integers(0, 200)),
        st.tuples(st.just("again"), st.integers(0, 200)),
    ),
    max_size=30,
)


def _parts(value: int, chosen: list[int]) -> list[dict[str, Any]]:
    """A dift's value split over the chosen shortlist entries, as the donations service
    splits it (the remainder cents to the first shares)."""
    shares = split_evenly(Money(value, "EUR"), len(chosen))
    return [
        allocation(SHORTLIST[index][0], share.amount)
        for index, share in zip(chosen, shares, strict=True)
        if share.amount
    ]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(history_steps=programme_steps)
def test_any_programme_history_keeps_the_fund_at_or_above_zero_and_gives_what_it_allocated(
    history_steps: list[tuple[Any, ...]],
) -> None:
    uow = FakeUnitOfWork()
    ledger = consumer_of(uow)
    for campaign_id, slug, price in SHORTLIST:
        published_event = published(campaign_id=campaign_id, slug=slug, meal_price=price)
        assert ledger.apply(published_event.to_json().encode()).status == "applied"
    held = 0
    funded_yet = False
    given_to: dict[str, int] = {campaign_id: 0 for campaign_id, _slug, _price in SHORTLIST}
    difts: dict[str, set[str]] = {campaign_id: set() for campaign_id in given_to}
    seen: list[CloudEvent] = []
    for number, step in enumerate(history_steps):
        kind = step[0]
        if kind in ("replay", "again"):
            if not seen:
                continue
            earlier = seen[step[1] % len(seen)]
            # The same event redelivered, or the same funding/dift/credit under a new id.
            again = earlier if kind == "replay" else replace(earlier, id=f"again-{number}")
            status = ledger.apply(again.to_json().encode()).status
            assert status == ("duplicate" if kind == "replay" else "applied")
            continue
        # What the test expects without the ledger: booked, or refused (never funded, or more
        # than the fund holds).
        if kind == "fund":
            event = funded(f"f-{number}", step[1], method=step[2], fee=step[1] // 50)
            fits = True
            held += step[1]
            funded_yet = True
        elif kind == "direct" or (kind == "expire" and step[2] != "credit_back"):
            chosen = step[2] if kind == "direct" else [0, 1, 2]
            if kind == "expire" and step[2] == "one_campaign":
                chosen = [1]
            parts = _parts(step[1], chosen)
            dift_id = f"d-{number}"
            event = (
                directed(dift_id, step[1], parts)
                if kind == "direct"
                else expired(dift_id, step[1], parts, rule=step[2])
            )
            fits = funded_yet and step[1] <= held
            if fits:
                held -= step[1]
                for part in parts:
                    given_to[part["campaign_id"]] += part["amount"]
                    difts[part["campaign_id"]].add(dift_id)
        elif kind == "expire":
            event = expired(f"d-{number}", step[1], [], rule="credit_back")
            fits = funded_yet
        else:
            event = credited_back(f"cb-{number}", step[1])
            fits = funded_yet and step[1] <= held
            held -= step[1] if fits else 0
        outcome = ledger.apply(event.to_json().encode())
        assert outcome.status == ("applied" if fits else "dead_lettered"), outcome.reason
        if fits:
            seen.append(event)

        fund = programme_balance(uow, PROGRAMME)
        if fund is not None:
            assert fund["balance"] == fund["fund_balance"] == held >= 0
    assert unbalanced_entries(uow) == []
    assert all(total == 0 for total in trial_totals(uow).values())
    books = balances(uow)
    for campaign_id, slug, price in SHORTLIST:
        # Each campaign's fund holds exactly what the difts allocated to it, and counts it once.
        assert -books.get(f"funds:campaign:{campaign_id}", 0) == given_to[campaign_id]
        summary = campaign_summary(uow, slug)
        assert summary["difts_amount"] == given_to[campaign_id]
        assert summary["difts_received"] == len(difts[campaign_id])
        assert summary["meals_funded"] == summary["dift_meals"] == given_to[campaign_id] // price
        assert summary["remainder"] == given_to[campaign_id] % price
    fund = programme_balance(uow, PROGRAMME)
    if fund is not None:
        given = fund["directed"] + fund["expired_given"]
        assert given == sum(given_to.values())
        assert fund["funded"] - given - fund["credited_back"] == held
        assert sum(part["amount"] for part in fund["campaigns"]) == given
