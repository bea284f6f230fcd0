"""An in-memory unit of work for the donations handlers' unit tests: the same repositories
(methods and answers) as services/donations/store, kept in dictionaries, and Stripe as the
payments port answers. The contract suite (tests/integration/donations/test_store.py) runs
against this fake too, so it cannot drift from the real repositories."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from services.donations.domain.campaigns import Campaign, CampaignStatus, MealPriceChange, NewsPost
from services.donations.domain.donations import Dispute, Donation, Refund
from services.donations.domain.payments import (
    CheckoutRequest,
    CheckoutSession,
    PaymentFacts,
    PayoutPaid,
)
from services.donations.payments import PaymentProviderError
from services.donations.store import RECEIVED, UNREADABLE, KeptEvent, ReceivedEvent
from services.donations.store.donations import LIFECYCLE
from services.shared.envelope import CloudEvent
from services.shared.events import dump_data
from services.shared.money import Money
from tests.support.in_memory import InMemoryUnitOfWork


def _copy(value: Any) -> Any:
    """What a repository hands out is the caller's: changing it changes nothing stored."""
    return copy.deepcopy(value)


class FakeCampaigns:
    """Campaigns by id, with their meal price changes."""

    def __init__(self) -> None:
        self.rows: dict[str, Campaign] = {}
        self.changes: list[MealPriceChange] = []

    def _priced(self, campaign: Campaign) -> Campaign:
        price = self.meal_price_at(campaign.id, datetime.now(UTC))
        if price is None:
            return _copy(campaign)
        return replace(campaign, meal_price=Money(price, campaign.meal_price.currency))

    def get(self, campaign_id: str) -> Campaign | None:
        found = self.rows.get(campaign_id)
        return self._priced(found) if found else None

    def by_slug(self, slug: str) -> Campaign | None:
        found = next((c for c in self.rows.values() if c.slug == slug), None)
        return self._priced(found) if found else None

    def add(self, campaign: Campaign) -> None:
        assert campaign.id not in self.rows and self.by_slug(campaign.slug) is None
        self.rows[campaign.id] = _copy(campaign)

    def save(self, campaign: Campaign) -> None:
        stored = self.rows[campaign.id]
        # As the table keeps it: the base meal price is a draft's to change.
        price = (
            campaign.meal_price if campaign.status is CampaignStatus.DRAFT else stored.meal_price
        )
        self.rows[campaign.id] = replace(_copy(campaign), meal_price=price)

    def meal_price_at(self, campaign_id: str, at: datetime) -> int | None:
        by_then = [
            c for c in self.changes if c.campaign_id == campaign_id and c.effective_from <= at
        ]
        latest = max(by_then, key=lambda c: (c.effective_from, c.created_at), default=None)
        return latest.meal_price.amount if latest else None

    def add_meal_price_change(self, change: MealPriceChange) -> None:
        self.changes.append(change)


class FakeNewsPosts:
    def __init__(self) -> None:
        self.rows: dict[str, NewsPost] = {}

    def get(self, post_id: str, lock: bool = False) -> NewsPost | None:
        return _copy(self.rows.get(post_id))

    def by_seed_key(self, seed_key: str) -> NewsPost | None:
        return _copy(next((p for p in self.rows.values() if p.seed_key == seed_key), None))

    def add(self, post: NewsPost) -> None:
        assert post.id not in self.rows
        self.rows[post.id] = post

    def save(self, post: NewsPost) -> None:
        self.rows[post.id] = replace(self.rows[post.id], published_at=post.published_at)

    def revise(self, post: NewsPost) -> None:
        if self.rows[post.id].published_at is None:
            self.rows[post.id] = replace(
                self.rows[post.id],
                title=post.title,
                body_markdown=post.body_markdown,
                locale=post.locale,
                publish_at=post.publish_at,
            )

    def due(self, now: datetime, limit: int = 100) -> list[str]:
        due = [
            p
            for p in self.rows.values()
            if p.published_at is None and p.publish_at is not None and p.publish_at <= now
        ]
        return [p.id for p in sorted(due, key=lambda p: p.publish_at or now)[:limit]]


class FakeCampaignMeals:
    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def record(self, campaign_id: str, meals_funded: int, now: datetime) -> None:
        self.rows[campaign_id] = meals_funded


class FakeDonations:
    def __init__(self) -> None:
        self.rows: dict[str, Donation] = {}

    def get(self, donation_id: str, lock: bool = False) -> Donation | None:
        return _copy(self.rows.get(donation_id))

    def by_payment(self, payment_intent_id: str | None, charge_id: str | None) -> Donation | None:
        for name, value in (("payment_intent_id", payment_intent_id), ("charge_id", charge_id)):
            if value:
                found = next((d for d in self.rows.values() if getattr(d, name) == value), None)
                if found is not None:
                    return _copy(found)
        return None

    def add(self, donation: Donation) -> bool:
        if donation.id in self.rows:
            return False
        self.rows[donation.id] = _copy(donation)
        return True

    def save(self, donation: Donation) -> None:
        changed = {name: getattr(donation, name) for name in LIFECYCLE}
        self.rows[donation.id] = replace(self.rows[donation.id], **_copy(changed))


class _Once:
    """Records kept once by id, as insert-if-absent keeps them."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        return self.rows.get(key)

    def add(self, record: Refund | Dispute) -> bool:
        if record.id in self.rows:
            return False
        self.rows[record.id] = record
        return True

    def save(self, record: Refund | Dispute) -> None:
        self.rows[record.id] = record


class FakeRefunds(_Once):
    """Refunds by Stripe refund id."""


class FakeDisputes(_Once):
    """Disputes by Stripe dispute id."""


class FakePayouts:
    def __init__(self) -> None:
        self.rows: dict[str, PayoutPaid] = {}

    def add(self, payout: PayoutPaid, paid_at: datetime) -> bool:
        if payout.payout_id in self.rows:
            return False
        self.rows[payout.payout_id] = payout
        return True


class FakeStripeEvents:
    """Rows of the stripe_events table (id, type, outcome, donation_id, payload, received_at,
    waiting_for, problem), and the order they came in."""

    def __init__(self) -> None:
        self.rows: dict[str, SimpleNamespace] = {}

    def record(self, event_id: str, event_type: str, when: datetime) -> bool:
        if event_id in self.rows:
            return False
        self.rows[event_id] = SimpleNamespace(
            id=event_id,
            type=event_type,
            outcome=RECEIVED,
            received_at=when,
            order=len(self.rows),
            correlation_id=None,
        )
        self.settle(event_id, RECEIVED, None)
        return True

    def receive(
        self,
        event_id: str,
        event_type: str,
        payload: str,
        when: datetime,
        correlation_id: str | None = None,
    ) -> bool:
        if not self.record(event_id, event_type, when):
            return False
        self.rows[event_id].payload = payload
        self.rows[event_id].correlation_id = correlation_id
        return True

    def record_unreadable(
        self, event_id: str, event_type: str, payload: str, problem: str, when: datetime
    ) -> bool:
        if not self.record(event_id, event_type, when):
            return False
        self.keep_unreadable(event_id, payload, problem)
        return True

    def _claimable(self, now: datetime) -> list[SimpleNamespace]:
        return [
            row
            for row in self._kept((RECEIVED,))
            if row.claimed_until is None or row.claimed_until < now
        ]

    def claim_received(self, now: datetime, until: datetime, limit: int) -> list[ReceivedEvent]:
        claimed = self._claimable(now)[:limit]
        for row in claimed:
            row.claimed_until = until
        return [self._received(row) for row in claimed]

    def any_claimable(self, now: datetime) -> bool:
        return bool(self._claimable(now))

    def lock_received(self, event_id: str) -> ReceivedEvent | None:
        row = self.rows.get(event_id)
        if row is None or row.outcome != RECEIVED:
            return None
        return self._received(row)

    def release(self, event_id: str, until: datetime) -> None:
        row = self.rows.get(event_id)
        if row is not None and row.outcome == RECEIVED:
            row.claimed_until = until

    @staticmethod
    def _received(row: SimpleNamespace) -> ReceivedEvent:
        return ReceivedEvent(row.id, row.payload or "", row.received_at, row.correlation_id)

    def settle(
        self, event_id: str, outcome: str, donation_id: str | None, kept: KeptEvent | None = None
    ) -> None:
        row = self.rows[event_id]
        row.outcome, row.donation_id, row.problem = outcome, donation_id, None
        row.payload, row.waiting_for = (kept.payload, kept.waiting_for) if kept else (None, None)
        row.claimed_until = None

    def keep_unreadable(self, event_id: str, payload: str, problem: str) -> None:
        row = self.rows[event_id]
        row.outcome, row.donation_id, row.payload = UNREADABLE, None, payload
        row.waiting_for, row.problem = None, problem[:2000]
        row.claimed_until = None

    def _kept(self, outcomes: tuple[str, ...]) -> list[SimpleNamespace]:
        kept = [row for row in self.rows.values() if row.outcome in outcomes]
        return sorted(kept, key=lambda row: (row.received_at, row.order))

    def waiting_for(self, keys: list[str], outcomes: tuple[str, ...]) -> list[KeptEvent]:
        wanted = {key for key in keys if key}
        return [
            KeptEvent(row.id, row.payload or "", row.waiting_for)
            for row in self._kept(outcomes)
            if row.waiting_for in wanted
        ]

    def kept_ids(self, outcomes: tuple[str, ...], limit: int) -> list[str]:
        return [row.id for row in self._kept(outcomes)[:limit]]

    def lock_kept(self, event_id: str, outcomes: tuple[str, ...]) -> KeptEvent | None:
        row = self.rows.get(event_id)
        if row is None or row.outcome not in outcomes:
            return None
        return KeptEvent(row.id, row.payload or "", row.waiting_for)


@dataclass
class FakeOutbox:
    """The outbox: what a change queued, checked against the published language as the real
    outbox checks it."""

    queued: list[tuple[str, str, CloudEvent]] = field(default_factory=list)

    def add(self, topic: str, key: str, event: CloudEvent) -> None:
        dump_data(event.type, event.data)
        self.queued.append((topic, key, event))


class FakeUnitOfWork(InMemoryUnitOfWork):
    """The donations unit of work, in memory (tests/support/in_memory.py: a transaction is a
    snapshot of its repositories and outbox, restored when it raises)."""

    # Each fake under the name of the repository it stands for (handlers.Repositories).
    FAKES: dict[str, type] = {
        "campaigns": FakeCampaigns,
        "news": FakeNewsPosts,
        "meals": FakeCampaignMeals,
        "donations": FakeDonations,
        "refunds": FakeRefunds,
        "disputes": FakeDisputes,
        "payouts": FakePayouts,
        "stripe_events": FakeStripeEvents,
        "outbox": FakeOutbox,
    }

    def __init__(self) -> None:
        super().__init__()
        for name, fake in self.FAKES.items():
            setattr(self, name, fake())


class FakePayments:
    """Stripe as the payments port answers: pretend Checkout Sessions (no network), fixed
    balance facts, and a record of the questions."""

    def __init__(self, facts: PaymentFacts | None = None, down: bool = False) -> None:
        self.facts = facts
        self.down = down
        self.asked: list[str] = []
        self.sessions: list[CheckoutRequest] = []

    def create_session(self, checkout: CheckoutRequest) -> CheckoutSession:
        if self.down:
            raise PaymentProviderError("Stripe is not answering")
        self.sessions.append(checkout)
        return CheckoutSession(f"cs_test_{checkout.donation_id}", "https://checkout.test/pay")

    def payment_facts(self, payment_intent_id: str | None) -> PaymentFacts:
        self.asked.append(f"payment:{payment_intent_id}")
        if self.down:
            raise PaymentProviderError("Stripe is not answering")
        if self.facts is not None:
            return self.facts
        return PaymentFacts(
            f"ch_{payment_intent_id}", f"txn_{payment_intent_id}", 66, 2634, 2700, "EUR"
        )

    def payout_transactions(self, payout_id: str) -> list[str]:
        self.asked.append(f"payout:{payout_id}")
        if self.down:
            raise PaymentProviderError("Stripe is not answering")
        return ["txn_a", "txn_b"]
