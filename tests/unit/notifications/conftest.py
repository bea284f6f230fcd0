"""Fixtures of the notifications unit tests: an in-memory unit of work, the stationery the
handlers write with (its clock at NOW), and the events the service consumes."""

from __future__ import annotations

import email
import email.policy
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifications.consent import ConsentKeys
from services.notifications.domain import ImpactBudget
from services.notifications.handlers import Stationery, event_handlers
from services.notifications.messages import Letterhead
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    DONATION_BOOKED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    MILESTONE_REACHED,
    UPDATE_PUBLISHED,
    load_data,
)
from tests.unit.notifications.fakes import FakeDelivery, FakeUnitOfWork

NOW = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
SECRET = "unit-test-signing-secret"


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stationery(clock: Clock) -> Stationery:
    return Stationery(
        Letterhead.from_settings(
            "difts <thanks@difts.localhost>",
            "http://127.0.0.1:8001",
            "Europe/Paris",
            "http://127.0.0.1:8003",
        ),
        ConsentKeys(SECRET),
        ImpactBudget(timedelta(days=7)),
        clock,
    )


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


class Deliver:
    """Hand events to the service's handlers as the consumer does: data loaded with its
    type's schema (so a test event that breaks the published language fails here)."""

    def __init__(self, uow: FakeUnitOfWork, stationery: Stationery) -> None:
        self.uow = uow
        self.handlers = event_handlers(stationery)

    def __call__(self, *events: CloudEvent) -> None:
        for event in events:
            loaded = replace(event, data=load_data(event.type, event.data))
            self.handlers[event.type](loaded, self.uow)


@pytest.fixture
def deliver(uow: FakeUnitOfWork, stationery: Stationery) -> Deliver:
    return Deliver(uow, stationery)


def gift(
    address: str,
    opt_in: bool,
    campaign: str = "camp_1",
    at: datetime = NOW,
    locale: str = "en",
    donation_id: str | None = None,
) -> CloudEvent:
    """difts.donation.succeeded.v1 of a 27.00 EUR gift."""
    body = {
        "donation_id": donation_id or f"don_{uuid.uuid4().hex[:8]}",
        "campaign_id": campaign,
        "campaign_slug": f"slug-{campaign}",
        "campaign_title": "Les Petites Cantines",
        "campaign_cause": "Les Petites Cantines",
        "amount": 2700,
        "currency": "EUR",
        "meal_price": 1350,
        "donor": {"email": address, "name": "Ada", "locale": locale},
        "updates_opt_in": opt_in,
        "succeeded_at": at.isoformat(),
    }
    return new_event(DONATION_SUCCEEDED, "difts/donations", body)


def booked(
    donation_id: str,
    address: str,
    meals: int = 2,
    remainder: int = 0,
    campaign: str = "camp_1",
    locale: str = "en",
    amount: int = 2700,
    receipt: bool = True,
    name: str = "Ada",
) -> CloudEvent:
    """difts.ledger.donation_booked.v1 of one gift, with its receipt facts."""
    body: dict[str, Any] = {
        "donation_id": donation_id,
        "campaign_id": campaign,
        "campaign_slug": f"slug-{campaign}",
        "amount": amount,
        "currency": "EUR",
        "meal_price": 1350,
        "meals": meals,
        "meals_funded": meals,
        "remainder": remainder,
    }
    if receipt:
        body["receipt"] = {
            "donor": {"email": address, "name": name, "locale": locale},
            "campaign_title": "Les Petites Cantines",
            "campaign_cause": "Les Petites Cantines",
            "succeeded_at": NOW.isoformat(),
        }
    return new_event(DONATION_BOOKED, "difts/ledger", body)


def news(
    campaign: str = "camp_1", post_id: str = "post_1", event_id: str | None = None
) -> CloudEvent:
    body = {
        "campaign_id": campaign,
        "campaign_slug": f"slug-{campaign}",
        "campaign_title": "Les Petites Cantines",
        "cause": "Les Petites Cantines",
        "post_id": post_id,
        "title": "Opening of Petites Cantines Bagnolet",
        "body_markdown": "We **open** in Bagnolet on Monday.",
        "body_html": "<p>We <strong>open</strong> in Bagnolet on Monday.</p>"
        "<script>alert(1)</script>",
        "url": f"http://127.0.0.1:8001/campaigns/slug-{campaign}/news/{post_id}",
        "published_at": NOW.isoformat(),
    }
    return new_event(UPDATE_PUBLISHED, "difts/donations", body, event_id=event_id)


def milestone(campaign: str = "camp_1", count: int = 500, **extra: Any) -> CloudEvent:
    """difts.ledger.milestone_reached.v1 of the `count`th meal (or what `extra` says)."""
    body = {
        "campaign_id": campaign,
        "campaign_slug": f"slug-{campaign}",
        "milestone": f"meals-{count}",
        "kind": "meals",
        "value": count,
        "meals_funded": count,
        "reached_at": NOW.isoformat(),
        **extra,
    }
    return new_event(MILESTONE_REACHED, "difts/ledger", body)


def refund(
    donation_id: str, refund_id: str, amount: int, total: int, campaign: str = "camp_1"
) -> CloudEvent:
    body = {
        "donation_id": donation_id,
        "campaign_id": campaign,
        "campaign_slug": f"slug-{campaign}",
        "refund_id": refund_id,
        "amount": amount,
        "currency": "EUR",
        "total_refunded": total,
        "fully_refunded": total == 2700,
        "refunded_at": NOW.isoformat(),
    }
    return new_event(DONATION_REFUNDED, "difts/donations", body)


def published(campaign: str, slug: str, title: str, cause: str) -> CloudEvent:
    body = {
        "campaign_id": campaign,
        "slug": slug,
        "title": title,
        "cause": cause,
        "currency": "EUR",
        "meal_price": 1350,
    }
    return new_event(CAMPAIGN_PUBLISHED, "difts/donations", body)


def rows(uow: FakeUnitOfWork, kind: str | None = None) -> list[FakeDelivery]:
    """The delivery log, oldest first."""
    return [row for row in uow.deliveries.rows if kind is None or row.kind == kind]


def parsed(row: FakeDelivery) -> email.message.EmailMessage:
    assert row.message is not None
    message = email.message_from_string(row.message, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def text_of(row: FakeDelivery) -> str:
    part = parsed(row).get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]
