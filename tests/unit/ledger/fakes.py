"""An in-memory unit of work for the ledger handlers' unit tests: the same repositories
(methods and answers) as services/ledger/store, kept in dictionaries and lists, with the
tables' unique keys and checks, an outbox, the processed event ids and savepoints. The
contract suite (tests/integration/ledger/test_store.py) runs against it too, so it cannot
drift from the real ones; tests/integration/ledger/test_views.py checks that the reads below
answer what views.py answers on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, astuple, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from services.ledger.domain import (
    BANK,
    DISPUTE_FEES,
    DISPUTED_FUNDS,
    DONOR_COVERED_FEES,
    PROCESSING_FEES,
    STRIPE_CLEARING,
    BalanceQuery,
    BookedGift,
    Campaign,
    CampaignTotals,
    DiftAllocation,
    EntryKind,
    EntryReferences,
    FeePolicy,
    JournalEntry,
    JournalLine,
    LedgerMovement,
    Movement,
    PostedEntry,
    PricePeriod,
    ProgrammeFund,
    ProgrammeMovement,
    StripeMovement,
    campaign_fund,
    posting_date,
    programme_fund,
)
from services.shared.db import as_utc
from services.shared.envelope import CloudEvent
from services.shared.events import dump_data
from services.shared.money import Money
from tests.support.in_memory import InMemoryUnitOfWork


class Refused(Exception):
    """What the database would refuse: a unique key or a check broken."""


class FakeCampaigns:
    """Campaigns by id, their totals, price periods (start -> [price, eligible]) and
    milestones reached."""

    def __init__(self) -> None:
        self.rows: dict[str, Campaign] = {}
        self.totals: dict[str, CampaignTotals] = {}
        self.prices: dict[str, dict[datetime, list[int]]] = {}
        self.milestones: dict[tuple[str, str], datetime] = {}

    def get(self, campaign_id: str) -> Campaign | None:
        return self.rows.get(campaign_id)

    def holder_of(self, slug: str) -> str | None:
        return next((c.campaign_id for c in self.rows.values() if c.slug == slug), None)

    def _write(self, campaign: Campaign, overwrite: bool) -> None:
        known = self.rows.get(campaign.campaign_id)
        if known is None or overwrite:
            holder = self.holder_of(campaign.slug)
            if holder not in (None, campaign.campaign_id):
                raise Refused(f"slug {campaign.slug} is taken")
            policy = known.fee_policy if known else FeePolicy.PLATFORM.value
            self.rows[campaign.campaign_id] = replace(campaign, fee_policy=policy)
        self.totals.setdefault(campaign.campaign_id, CampaignTotals(campaign.currency))

    def add(self, campaign: Campaign) -> None:
        self._write(campaign, overwrite=False)

    def save(self, campaign: Campaign) -> None:
        self._write(campaign, overwrite=True)

    def set_meal_price(self, campaign_id: str, meal_price: int) -> None:
        if campaign_id in self.rows:
            self.rows[campaign_id] = replace(self.rows[campaign_id], meal_price=meal_price)

    def set_fee_policy(self, campaign_id: str, policy: str) -> None:
        if campaign_id in self.rows:
            self.rows[campaign_id] = replace(self.rows[campaign_id], fee_policy=policy)

    def lock_totals(self, campaign_id: str) -> CampaignTotals | None:
        return self.totals.get(campaign_id)

    def save_totals(self, campaign_id: str, totals: CampaignTotals) -> None:
        if campaign_id in self.totals:
            self.totals[campaign_id] = totals

    def periods(self, campaign_id: str) -> list[PricePeriod]:
        campaign = self.rows.get(campaign_id)
        if campaign is None:
            return []
        currency = campaign.currency
        return [
            PricePeriod(start, Money(price, currency), Money(eligible, currency))
            for start, (price, eligible) in sorted(self.prices.get(campaign_id, {}).items())
        ]

    def start_period(self, campaign_id: str, starts_at: datetime, meal_price: int) -> None:
        if meal_price <= 0:
            raise Refused("meal_price_positive")
        periods = self.prices.setdefault(campaign_id, {})
        periods.setdefault(as_utc(starts_at), [meal_price, 0])[0] = meal_price

    def add_eligible(self, campaign_id: str, starts_at: datetime, change: Money) -> None:
        period = self.prices.get(campaign_id, {}).get(as_utc(starts_at))
        if period is not None:
            if period[1] + change.amount < 0:
                raise Refused("eligible_not_negative")
            period[1] += change.amount

    def claim_milestones(self, campaign_id: str, names: Sequence[str], when: datetime) -> set[str]:
        fresh = {name for name in names if (campaign_id, name) not in self.milestones}
        for name in fresh:
            self.milestones[(campaign_id, name)] = when
        return fresh


class FakeGifts:
    """Booked gifts by donation id, in booking order."""

    def __init__(self) -> None:
        self.rows: dict[str, BookedGift] = {}

    def get(self, donation_id: str, lock: bool = False) -> BookedGift | None:
        return self.rows.get(donation_id)

    def by_charge(self, charge_id: str) -> BookedGift | None:
        return next((g for g in self.rows.values() if g.charge_id == charge_id), None)

    def _check(self, gift: BookedGift) -> None:
        if not 0 <= gift.returned.amount <= gift.booking.amount.amount:
            raise Refused("returned_within_gift")

    def add(self, gift: BookedGift) -> None:
        if gift.donation_id in self.rows:
            raise Refused(f"gift {gift.donation_id} exists")
        self._check(gift)
        self.rows[gift.donation_id] = gift

    def save(self, gift: BookedGift) -> None:
        known = self.rows.get(gift.donation_id)
        if known is not None:
            self._check(gift)
            self.rows[gift.donation_id] = replace(
                known,
                returned=gift.returned,
                fund_balance=gift.fund_balance,
                fee_back_to_fund=gift.fee_back_to_fund,
            )

    def move_to_period(
        self, campaign_id: str, boundary: datetime, old_start: datetime
    ) -> Money | None:
        moved = [
            gift
            for gift in self.rows.values()
            if gift.campaign_id == campaign_id
            and gift.period_starts_at == as_utc(old_start)
            and gift.effective_at >= as_utc(boundary)
        ]
        if not moved:
            return None
        for gift in moved:
            self.rows[gift.donation_id] = replace(gift, period_starts_at=as_utc(boundary))
        return Money(sum(max(0, g.fund_balance.amount) for g in moved), moved[0].currency)


class FakeProgrammes:
    """Programmes' funds by id, their movements by (movement, reference), and the difts'
    allocations by (dift, campaign), in booking order."""

    def __init__(self) -> None:
        self.funds: dict[str, ProgrammeFund] = {}
        self.movements: dict[tuple[str, str], ProgrammeMovement] = {}
        self.allocations: dict[tuple[str, str], DiftAllocation] = {}

    def lock(self, programme_id: str) -> ProgrammeFund | None:
        return self.funds.get(programme_id)

    def _check(self, fund: ProgrammeFund) -> None:
        if fund.balance.amount < 0:
            raise Refused("fund_not_negative")

    def add(self, fund: ProgrammeFund) -> None:
        if fund.programme_id not in self.funds:
            self._check(fund)
            self.funds[fund.programme_id] = fund

    def save(self, fund: ProgrammeFund) -> None:
        if fund.programme_id in self.funds:
            self._check(fund)
            self.funds[fund.programme_id] = fund

    def booked(self, movement: Movement, reference: str) -> bool:
        return (movement.value, reference) in self.movements

    def record(self, moved: ProgrammeMovement) -> None:
        key = (moved.movement.value, moved.reference)
        if key in self.movements:
            raise Refused(f"{key} is booked already")
        self.movements[key] = replace(moved, at=as_utc(moved.at))

    def add_allocations(self, allocations: Sequence[DiftAllocation]) -> None:
        for part in allocations:
            key = (part.dift_id, part.campaign_id)
            if key in self.allocations:
                raise Refused(f"allocation {key} exists")
            if not part.amount.is_positive():
                raise Refused("amount_positive")
            self.allocations[key] = part

    def move_to_period(
        self, campaign_id: str, boundary: datetime, old_start: datetime
    ) -> Money | None:
        moved = [
            part
            for part in self.allocations.values()
            if part.campaign_id == campaign_id
            and part.period_starts_at == as_utc(old_start)
            and part.effective_at >= as_utc(boundary)
        ]
        if not moved:
            return None
        for part in moved:
            self.allocations[(part.dift_id, part.campaign_id)] = replace(
                part, period_starts_at=as_utc(boundary)
            )
        return Money(sum(part.amount.amount for part in moved), moved[0].amount.currency)


@dataclass
class FakeEntry:
    """One journal entry and its lines, as the tables keep them."""

    id: int
    about: EntryReferences
    kind: str
    description: str
    effective_at: datetime
    original_effective_at: datetime | None
    created_at: datetime
    lines: list[JournalLine] = field(default_factory=list)


class FakeJournal:
    """The journal: entries in posting order, closed months, payout items."""

    def __init__(self) -> None:
        self.entries: list[FakeEntry] = []
        self.closed: dict[str, tuple[datetime, str]] = {}
        self.payout_items: set[tuple[str, str]] = set()

    def post(self, entry: JournalEntry, about: EntryReferences) -> int:
        kind = entry.kind.value
        for known in self.entries:
            same_object = about.stripe_object_id is not None and (
                known.kind,
                known.about.stripe_object_id,
            ) == (kind, about.stripe_object_id)
            same_gift = kind == known.kind == EntryKind.DONATION.value and (
                known.about.donation_id == about.donation_id
            )
            if same_object or same_gift:
                raise Refused(f"{kind} of {about.stripe_object_id or about.donation_id} exists")
        effective_at, original = posting_date(as_utc(entry.effective_at), self.closed_months())
        entry_id = len(self.entries) + 1
        self.entries.append(
            FakeEntry(
                entry_id,
                about,
                kind,
                entry.description,
                effective_at,
                original,
                datetime.now(UTC),
                list(entry.lines),
            )
        )
        return entry_id

    def entry_of(self, kinds: Sequence[EntryKind], stripe_object_id: str) -> PostedEntry | None:
        wanted = {kind.value for kind in kinds}
        for entry in self.entries:
            if entry.kind in wanted and entry.about.stripe_object_id == stripe_object_id:
                about = entry.about
                return PostedEntry(entry.id, entry.kind, about.stripe_object_id, about.charge_id)
        return None

    def has_gift(self, donation_id: str) -> bool:
        return any(
            e.kind == EntryKind.DONATION.value and e.about.donation_id == donation_id
            for e in self.entries
        )

    def lines_of(self, entry_id: int) -> list[JournalLine]:
        return [line for e in self.entries if e.id == entry_id for line in e.lines]

    def closed_months(self) -> set[str]:
        return set(self.closed)

    def close(self, month: str, closed_by: str) -> bool:
        if month in self.closed:
            return False
        self.closed[month] = (datetime.now(UTC), closed_by)
        return True

    def record_payout_items(self, payout_id: str, balance_transaction_ids: list[str]) -> None:
        self.payout_items.update((payout_id, btx) for btx in balance_transaction_ids)

    def clearing_movements(
        self, which: BalanceQuery | None = None, referencing: set[str] | None = None
    ) -> list[LedgerMovement]:
        since, until, payout_id = astuple(which or BalanceQuery())
        settled = {btx for payout, btx in self.payout_items if payout == payout_id}
        found = []
        for entry in sorted(self.entries, key=lambda e: (e.effective_at, e.id)):
            about = entry.about
            dated = entry.original_effective_at or entry.effective_at
            if (since is not None and dated < as_utc(since)) or (
                until is not None and dated >= as_utc(until)
            ):
                continue
            if payout_id is not None and (
                about.balance_transaction_id not in settled or entry.kind == EntryKind.PAYOUT.value
            ):
                continue
            if referencing is not None and not (
                about.balance_transaction_id in referencing or about.stripe_object_id in referencing
            ):
                continue
            nets: dict[str, int] = {}
            for line in entry.lines:
                if line.account == STRIPE_CLEARING:
                    currency = line.amount.currency
                    nets[currency] = nets.get(currency, 0) + line.amount.amount
            found.extend(
                LedgerMovement(
                    entry.id,
                    entry.kind,
                    about.stripe_object_id,
                    about.balance_transaction_id,
                    currency,
                    net,
                    dated,
                )
                for currency, net in nets.items()
            )
        return found

    def booked_to_bank(self, payout_id: str) -> int:
        return sum(
            line.amount.amount
            for entry in self.entries
            if entry.kind == EntryKind.PAYOUT.value and entry.about.stripe_object_id == payout_id
            for line in entry.lines
            if line.account == BANK
        )


class FakeOutbox:
    """The events queued, checked against their schemas as the real outbox does."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, CloudEvent]] = []

    def add(self, topic: str, key: str, event: CloudEvent) -> None:
        dump_data(event.type, event.data)
        if any(queued.id == event.id for _topic, _key, queued in self.events):
            raise Refused(f"event {event.id} is queued already")
        self.events.append((topic, key, event))


class FakeProcessedEvents:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    def claim(self, event: CloudEvent) -> bool:
        if event.id in self.ids:
            return False
        self.ids.add(event.id)
        return True

    def seen(self, event_id: str) -> bool:
        return event_id in self.ids


class FakeStripe:
    """Stripe's side for the handlers that read it (handlers.StripeRecords): fixed balance
    transactions, whatever the period or payout asked for."""

    def __init__(self, movements: list[StripeMovement]) -> None:
        self.listed = movements
        self.asked: list[BalanceQuery] = []

    def movements(self, which: BalanceQuery, progress: Any = None) -> Iterator[StripeMovement]:
        self.asked.append(which)
        return iter(self.listed)


class FakeUnitOfWork(InMemoryUnitOfWork):
    """The ledger unit of work, in memory (tests/support/in_memory.py: a transaction is a
    snapshot of these parts, restored when it raises, as is a savepoint's), with the
    processed event ids the idempotent consumer claims."""

    PARTS = ("campaigns", "gifts", "journal", "programmes", "outbox", "processed")

    def __init__(self) -> None:
        super().__init__()
        self.campaigns = FakeCampaigns()
        self.gifts = FakeGifts()
        self.journal = FakeJournal()
        self.programmes = FakeProgrammes()
        self.outbox = FakeOutbox()
        self.processed = FakeProcessedEvents()


# --- what views.py reads from the tables, read from the fake -------------------------------------


def campaign_of(uow: FakeUnitOfWork, slug: str) -> Campaign | None:
    found = uow.campaigns.holder_of(slug)
    return uow.campaigns.get(found) if found else None


def campaign_summary(uow: FakeUnitOfWork, slug: str = "petites-cantines") -> dict[str, Any]:
    """views.campaign_summary: a campaign's money and meals."""
    campaign = campaign_of(uow, slug)
    assert campaign is not None, f"no campaign {slug}"
    totals = uow.campaigns.totals[campaign.campaign_id]
    return {
        "campaign": campaign.slug,
        "campaign_id": campaign.campaign_id,
        "title": campaign.title,
        "currency": totals.currency,
        "meal_price": campaign.meal_price,
        "goal_meals": campaign.goal_meals,
        "donated": totals.donated,
        "refunded": totals.refunded,
        "donations": totals.donations,
        "meals_funded": totals.meals_funded,
        "remainder": totals.remainder,
        "gift_meals": totals.gift_meals,
        "difts_amount": totals.difts_amount,
        "difts_received": totals.difts_received,
        "dift_meals": totals.dift_meals,
    }


def programme_balance(uow: FakeUnitOfWork, programme_id: str) -> dict[str, Any] | None:
    """views.programme_balance: a programme's fund and what each campaign received of it."""
    fund = uow.programmes.funds.get(programme_id)
    if fund is None:
        return None
    account = programme_fund(programme_id)
    by_campaign: dict[str, dict[str, Any]] = {}
    for part in uow.programmes.allocations.values():
        if part.programme_id != programme_id:
            continue
        campaign = uow.campaigns.get(part.campaign_id)
        assert campaign is not None
        found = by_campaign.setdefault(
            part.campaign_id,
            {
                "campaign_id": part.campaign_id,
                "campaign_slug": campaign.slug,
                "amount": 0,
                "meals": 0,
                "difts": 0,
            },
        )
        found["amount"] += part.amount.amount
        found["meals"] += part.meals
        found["difts"] += 1
    return {
        **asdict(fund),
        "balance": fund.balance.amount,
        "fund_balance": -sum(
            line.amount.amount
            for entry in uow.journal.entries
            for line in entry.lines
            if line.account == account
        ),
        "campaigns": [by_campaign[key] for key in sorted(by_campaign)],
    }


def _line_sum(uow: FakeUnitOfWork, campaign_id: str, account: str, *kinds: str) -> int:
    return sum(
        line.amount.amount
        for entry in uow.journal.entries
        if entry.about.campaign_id == campaign_id and (not kinds or entry.kind in kinds)
        for line in entry.lines
        if line.account == account
    )


def finance_summary(uow: FakeUnitOfWork, slug: str = "petites-cantines") -> dict[str, Any]:
    """views.campaign_finance_summary: the summary plus fees, net, disputes and payouts."""
    summary = campaign_summary(uow, slug)
    campaign_id = summary["campaign_id"]
    campaign = uow.campaigns.get(campaign_id)
    assert campaign is not None
    fund = campaign_fund(campaign_id)
    paid_out = sum(
        line.amount.amount
        for entry in uow.journal.entries
        if entry.about.campaign_id == campaign_id
        for _payout, btx in uow.journal.payout_items
        if btx == entry.about.balance_transaction_id
        for line in entry.lines
        if line.account == STRIPE_CLEARING
    )
    return {
        **summary,
        "fee_policy": campaign.fee_policy,
        "fees": _line_sum(uow, campaign_id, PROCESSING_FEES),
        "fee_covered": -_line_sum(uow, campaign_id, DONOR_COVERED_FEES, EntryKind.DONATION),
        "net": _line_sum(uow, campaign_id, STRIPE_CLEARING),
        "disputed": _line_sum(uow, campaign_id, DISPUTED_FUNDS),
        "dispute_fees": _line_sum(uow, campaign_id, DISPUTE_FEES),
        "dispute_lost": _line_sum(uow, campaign_id, fund, EntryKind.DISPUTE_LOST),
        "fund_balance": -_line_sum(uow, campaign_id, fund),
        "paid_out": paid_out,
    }


def balances(uow: FakeUnitOfWork) -> dict[str, int]:
    """views.trial_balance's balances that are not zero, by account."""
    found: dict[str, int] = {}
    for entry in uow.journal.entries:
        for line in entry.lines:
            found[line.account] = found.get(line.account, 0) + line.amount.amount
    return {account: balance for account, balance in found.items() if balance}


def trial_totals(uow: FakeUnitOfWork) -> dict[str, int]:
    """views.trial_balance's totals per currency (every one 0 when the books balance)."""
    totals: dict[str, int] = {}
    for entry in uow.journal.entries:
        for line in entry.lines:
            currency = line.amount.currency
            totals[currency] = totals.get(currency, 0) + line.amount.amount
    return totals


def unbalanced_entries(uow: FakeUnitOfWork) -> list[tuple[int, str, int]]:
    """views.unbalanced_entries: every (entry, currency, difference) that does not balance,
    and every entry of fewer than two lines."""
    found = []
    for entry in uow.journal.entries:
        sums: dict[str, int] = {}
        for line in entry.lines:
            sums[line.amount.currency] = sums.get(line.amount.currency, 0) + line.amount.amount
        found += [(entry.id, currency, off) for currency, off in sums.items() if off]
        if len(entry.lines) < 2:
            found.append((entry.id, "", 0))
    return found


def journal(
    uow: FakeUnitOfWork,
    *,
    campaign: str | None = None,
    stripe_id: str | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """views.journal (the filters the tests use): entries oldest first, with their lines."""
    wanted = {campaign, uow.campaigns.holder_of(campaign)} - {None} if campaign else set()
    found = []
    for entry in sorted(uow.journal.entries, key=lambda e: (e.effective_at, e.id)):
        about = entry.about
        ids = (
            about.stripe_object_id,
            about.charge_id,
            about.balance_transaction_id,
            about.stripe_reference,
        )
        if campaign and about.campaign_id not in wanted:
            continue
        if stripe_id and stripe_id not in ids:
            continue
        if until and entry.effective_at >= as_utc(until):
            continue
        found.append(
            {
                "id": entry.id,
                "kind": entry.kind,
                "description": entry.description,
                "effective_at": entry.effective_at,
                "original_effective_at": entry.original_effective_at,
                "created_at": entry.created_at,
                **asdict(about),
                "lines": [
                    {
                        "account": line.account,
                        "currency": line.amount.currency,
                        "amount": line.amount.amount,
                    }
                    for line in entry.lines
                ],
            }
        )
    return found


def outbox(uow: FakeUnitOfWork, event_type: str) -> list[dict[str, Any]]:
    """The queued events of one type, as the outbox's payloads (JSON)."""
    return [
        json.loads(e.to_json()) for _topic, _key, e in uow.outbox.events if e.type == event_type
    ]
