"""Fixtures of the donations unit tests: an in-memory unit of work holding a live campaign
(canteens, 13.50 EUR a meal), Stripe as the payments port answers, and the Stripe events the
webhook records, applied through the handlers as the worker's applier applies them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.donations.domain.donations import Donation, DonationStatus, Donor
from services.donations.domain.giving import Gift, GiftLimits, ProcessingFee
from services.donations.handlers.campaigns import CreateCampaign, publish_campaign
from services.donations.handlers.giving import GivingRules, StartDonation, start_donation
from services.donations.handlers.webhooks import apply_received_events, record_stripe_event
from services.donations.stripe_events import read_parsed
from services.shared.events import CAMPAIGNS_TOPIC
from services.shared.money import Money
from tests.unit.donations.fakes import FakePayments, FakeUnitOfWork

SLUG = "canteens"
RULES = GivingRules(GiftLimits(100, 10**6), ProcessingFee(150, 25), "http://t")


@pytest.fixture
def uow() -> FakeUnitOfWork:
    """An empty donations store but for one live campaign."""
    uow = FakeUnitOfWork()
    texts = {"title": "Canteens", "cause": "Les Petites Cantines", "summary": "", "goal_meals": 100}
    with uow:
        publish_campaign(CreateCampaign(SLUG, Money(1350, "EUR"), texts), uow)
    uow.outbox.queued.clear()
    return uow


@pytest.fixture
def payments() -> FakePayments:
    return FakePayments()


def gift(**changes: Any) -> Gift:
    """Two meals for the canteens, from Ada."""
    values: dict[str, Any] = {
        "campaign_slug": SLUG,
        "amount": None,
        "meals": 2,
        "currency": "EUR",
        "donor_email": "ada@example.org",
        "donor_name": "Ada",
        "locale": "fr",
        "updates_opt_in": False,
        "correlation_id": None,
        **changes,
    }
    return Gift(**values)


def start(uow: FakeUnitOfWork, payments: FakePayments, **changes: Any) -> Donation:
    """Start a donation as the API does."""
    return start_donation(StartDonation(gift(**changes), RULES), uow, payments)


def pending_donation(
    uow: FakeUnitOfWork, amount: int = 2700, donation_id: str | None = None
) -> str:
    """A pending donation of the canteens campaign, as if its checkout had just opened."""
    donation_id = donation_id or str(uuid.uuid4())
    with uow:
        campaign = uow.campaigns.by_slug(SLUG)
        assert campaign is not None
        now = datetime.now(UTC)
        uow.donations.add(
            Donation(
                id=donation_id,
                campaign_id=campaign.id,
                amount=Money(amount, "EUR"),
                fee_covered=Money(0, "EUR"),
                priced_meals=amount // 1350,
                donor=Donor("ada@example.org", "Ada", "fr"),
                updates_opt_in=True,
                consent_at=now,
                status=DonationStatus.PENDING,
                created_at=now,
                amount_refunded=Money(0, "EUR"),
                checkout_session_id=f"cs_{donation_id}",
            )
        )
    return donation_id


def stripe_event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": kind,
        "data": {"object": obj},
    }


def session(
    donation_id: str, amount: int = 2700, paid: str = "paid", pi: str = ""
) -> dict[str, Any]:
    return {
        "id": f"cs_{donation_id}",
        "object": "checkout.session",
        "amount_total": amount,
        "currency": "eur",
        "payment_status": paid,
        "payment_intent": pi or f"pi_{donation_id[:8]}",
        "client_reference_id": donation_id,
        "metadata": {"donation_id": donation_id},
    }


def refund(refund_id: str, amount: int, pi: str, status: str = "succeeded") -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "eur",
        "payment_intent": pi,
        "charge": f"ch_{pi}",
        "status": status,
        "balance_transaction": f"txn_{refund_id}",
    }


def dispute(dispute_id: str, pi: str, status: str, amount: int = 2700) -> dict[str, Any]:
    txns = [{"id": f"txn_{dispute_id}_1", "amount": -amount, "fee": 1500}]
    if status == "won":
        txns.append({"id": f"txn_{dispute_id}_2", "amount": amount, "fee": -1500})
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "currency": "eur",
        "charge": f"ch_{pi}",
        "payment_intent": pi,
        "reason": "fraudulent",
        "status": status,
        "balance_transactions": txns,
    }


def published(uow: FakeUnitOfWork, event_type: str | None = None) -> list[dict[str, Any]]:
    """The donation and payout events queued, as their JSON (what the relay publishes)."""
    events = [json.loads(event.to_json()) for _topic, _key, event in uow.outbox.queued]
    return [
        event
        for event in events
        if event["type"].startswith("difts.donation") or event["type"].startswith("difts.payout")
        if event_type is None or event["type"] == event_type
    ]


def announced(uow: FakeUnitOfWork) -> list[str]:
    """The types of the campaign events queued, in order."""
    return [event.type for topic, _key, event in uow.outbox.queued if topic == CAMPAIGNS_TOPIC]


def stored(uow: FakeUnitOfWork, donation_id: str) -> Donation:
    found = uow.donations.get(donation_id)
    assert found is not None
    return found


def status_of(uow: FakeUnitOfWork, donation_id: str) -> str:
    return stored(uow, donation_id).status.value


def amount_refunded(uow: FakeUnitOfWork, donation_id: str) -> int:
    return stored(uow, donation_id).amount_refunded.amount


def apply(uow: FakeUnitOfWork, event: dict[str, Any], payments: FakePayments | None = None) -> str:
    """What became of a verified event: the webhook records it ("duplicate" if it had), then
    the worker's applier applies it; its outcome as settled."""
    received = record_stripe_event(read_parsed(event), uow.stripe_events, None)
    if received == "duplicate":
        return received
    assert received == "received"
    assert apply_received_events(uow, payments or FakePayments()) == 1
    return str(uow.stripe_events.rows[event["id"]].outcome)
