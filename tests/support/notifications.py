"""What the notifications tests and the mail benchmark feed the service: donors who asked for
news, a news post and a gift's booking as events, handed to the consumer's handlers."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from services.notifications import handlers, store
from services.notifications.config import Settings
from services.notifications.consumer import stationery
from services.notifications.domain import Consent, Donor
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import DONATION_BOOKED, UPDATE_PUBLISHED, load_data


def loaded(event: CloudEvent) -> CloudEvent:
    """The event as the consumer hands it to a handler: data loaded with its type's schema."""
    return replace(event, data=load_data(event.type, event.data))


def save_consenting_donors(engine: Engine, campaign: str, donors: int) -> None:
    """`donors` donors of `campaign` (donor-<n>@example.org) who asked for its news."""
    now = datetime.now(UTC)
    with NotificationsUnitOfWork(engine) as uow:
        for n in range(donors):
            donor = Donor(
                campaign,
                f"donor-{n}@example.org",
                "Camille",
                "en",
                consent=Consent(now, "checkout"),
            )
            uow.donors.save(donor, now)


def news_post(campaign: str, post_id: str | None = None) -> CloudEvent:
    """A news post of `campaign` as donations publishes it."""
    post_id = post_id or f"post_{uuid.uuid4().hex[:8]}"
    return new_event(
        UPDATE_PUBLISHED,
        "difts/donations",
        {
            "campaign_id": campaign,
            "campaign_slug": campaign,
            "campaign_title": "Les Petites Cantines",
            "cause": "Les Petites Cantines",
            "post_id": post_id,
            "title": "Opening of Petites Cantines Bagnolet",
            "body_markdown": "The doors open on Monday at noon.",
            "body_html": "<p>The doors open on Monday at noon.</p>",
            "url": f"http://127.0.0.1:8001/campaigns/{campaign}/news/{post_id}",
            "published_at": datetime.now(UTC).isoformat(),
        },
        subject=f"campaigns/{campaign}",
    )


def gift_booked(campaign: str, donor: str, meals_funded: int = 2) -> CloudEvent:
    """The ledger's booking of a 27.00 EUR gift of `donor`, with what its receipt states."""
    donation_id = f"don_{uuid.uuid4().hex[:10]}"
    return new_event(
        DONATION_BOOKED,
        "difts/ledger",
        {
            "donation_id": donation_id,
            "campaign_id": campaign,
            "campaign_slug": campaign,
            "amount": 2700,
            "currency": "EUR",
            "meal_price": 1350,
            "meals": 2,
            "meals_funded": meals_funded,
            "remainder": 0,
            "receipt": {
                "donor": {"email": donor, "name": "Ada", "locale": "en"},
                "campaign_title": "Les Petites Cantines",
                "campaign_cause": "Les Petites Cantines",
                "succeeded_at": datetime.now(UTC).isoformat(),
            },
        },
        subject=f"donations/{donation_id}",
    )


def queue_news(settings: Settings, engine: Engine, post: CloudEvent) -> None:
    """The consumer's handler queues `post` to its campaign's donors (and commits)."""
    with NotificationsUnitOfWork(engine) as uow:
        handlers.update_published(loaded(post), uow, stationery(settings))


def queue_receipt(settings: Settings, engine: Engine, booked: CloudEvent) -> None:
    """The consumer's handler queues the receipt of a booked gift (and commits)."""
    with NotificationsUnitOfWork(engine) as uow:
        handlers.donation_booked(loaded(booked), uow, stationery(settings))


def count_deliveries(engine: Engine, kind: str, status: str) -> int:
    """Delivery-log rows of `kind` in `status`."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    store.deliveries.c.kind == kind, store.deliveries.c.status == status
                )
            ).scalar_one()
        )
