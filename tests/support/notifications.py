"""What the notifications tests and the mail benchmark feed the service: donors who asked for
news, a news post and a gift's booking as events, handed to the consumer's handlers; and a
company's difts as donations announces them (issued, directed, expired)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from services.notifications import handlers, store
from services.notifications.config import Settings
from services.notifications.consumer import stationery
from services.notifications.domain import Consent, Donor
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import (
    DIFT_DIRECTED,
    DIFT_EXPIRED,
    DIFT_ISSUED,
    DONATION_BOOKED,
    UPDATE_PUBLISHED,
    load_data,
)


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


# --- company difts --------------------------------------------------------------------------

# Two canteens of the network: 20 EUR funds 1 meal at Bagnolet (13.50 EUR a meal) and 74 % of
# one at Bruz (27.00 EUR a meal, say).
SHORTLIST = (
    {
        "campaign_id": "camp_bagnolet",
        "campaign_slug": "petites-cantines-bagnolet",
        "campaign_title": "Les Petites Cantines Bagnolet",
        "cause": "Les Petites Cantines",
        "meal_price": 1350,
    },
    {
        "campaign_id": "camp_bruz",
        "campaign_slug": "petites-cantines-bruz",
        "campaign_title": "Les Petites Cantines Bruz",
        "cause": "Les Petites Cantines",
        "meal_price": 2700,
    },
)


def dift_issued(
    now: datetime,
    *,
    dift_id: str | None = None,
    programme_id: str = "prog_1",
    email: str | None = "lea@example.org",
    locale: str = "fr",
    value: int = 2000,
    expires_in: timedelta = timedelta(days=30),
    channel: str = "email",
    event_id: str | None = None,
) -> CloudEvent:
    """difts.dift.issued.v1 of a 20 EUR dift of Acme's programme, sent to `email` (None: an
    anonymous code, with no recipient and no link)."""
    dift_id = dift_id or f"dift_{uuid.uuid4().hex[:10]}"
    data: dict[str, Any] = {
        "dift_id": dift_id,
        "programme_id": programme_id,
        "programme_name": "Vœux 2026",
        "occasion": "new year",
        "sponsor_id": "spon_acme",
        "brand_name": "Acme",
        "message_markdown": "Merci pour cette **belle année** !",
        "message_html": "<p>Merci pour cette <strong>belle année</strong> !</p>"
        "<script>alert(1)</script>",
        "value": value,
        "currency": "EUR",
        "channel": channel if email is not None else "code",
        "recipient": {"email": email, "name": "Léa", "locale": locale} if email else None,
        "redeem_url": f"http://127.0.0.1:8001/difts/redeem/tok-{dift_id}" if email else None,
        "shortlist": [dict(entry) for entry in SHORTLIST],
        "expires_at": (now + expires_in).isoformat(),
        "issued_at": now.isoformat(),
    }
    return new_event(
        DIFT_ISSUED, "difts/donations", data, subject=f"difts/{dift_id}", event_id=event_id
    )


def dift_directed(
    issued: CloudEvent,
    now: datetime,
    *,
    allocations: tuple[tuple[str, int], ...] = (("camp_bagnolet", 2000),),
    updates_opt_in: bool = False,
    with_recipient: bool = True,
) -> CloudEvent:
    """difts.dift.directed.v1 of an issued dift: its value to these (campaign, amount)s."""
    given = issued.data
    entries = {entry["campaign_id"]: entry for entry in SHORTLIST}
    data: dict[str, Any] = {
        "dift_id": given["dift_id"],
        "programme_id": given["programme_id"],
        "sponsor_id": given["sponsor_id"],
        "brand_name": given["brand_name"],
        "value": given["value"],
        "currency": "EUR",
        "allocations": [
            {
                "campaign_id": campaign,
                "campaign_slug": entries[campaign]["campaign_slug"],
                "campaign_title": entries[campaign]["campaign_title"],
                "amount": amount,
            }
            for campaign, amount in allocations
        ],
        "recipient": given["recipient"] if with_recipient else None,
        "updates_opt_in": updates_opt_in,
        "consent_at": now.isoformat() if updates_opt_in else None,
        "directed_at": now.isoformat(),
    }
    return new_event(DIFT_DIRECTED, "difts/donations", data, subject=f"difts/{given['dift_id']}")


def dift_expired(issued: CloudEvent, now: datetime) -> CloudEvent:
    """difts.dift.expired.v1 of an issued dift, split evenly across the shortlist."""
    given = issued.data
    half = given["value"] // 2
    data: dict[str, Any] = {
        "dift_id": given["dift_id"],
        "programme_id": given["programme_id"],
        "sponsor_id": given["sponsor_id"],
        "value": given["value"],
        "currency": "EUR",
        "rule": "split_evenly",
        "allocations": [
            {"campaign_id": e["campaign_id"], "campaign_slug": e["campaign_slug"], "amount": a}
            for e, a in zip(SHORTLIST, (given["value"] - half, half), strict=True)
        ],
        "expired_at": now.isoformat(),
    }
    return new_event(DIFT_EXPIRED, "difts/donations", data, subject=f"difts/{given['dift_id']}")
