"""One function per event the service reacts to: update the projection, decide what to send,
and queue it in the delivery log, all in the consumer's transaction (which also records the
event id). Nothing here talks to SMTP: the sender does, from the delivery log."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection

from services.shared.consumer import Handler
from services.shared.envelope import CloudEvent
from services.shared.events import DONATION_SUCCEEDED
from services.shared.money import Money

from . import store
from .messages import (
    Letterhead,
    Receipt,
    UnsendableAddress,
    build_message,
    mask_email,
    render_receipt,
    serialize,
)

log = logging.getLogger(__name__)


def donation_succeeded(
    conn: Connection, event: CloudEvent, data: dict[str, Any], letterhead: Letterhead
) -> None:
    """Stripe confirmed a gift: remember its donor for this campaign and queue exactly one
    receipt to them. A receipt that cannot be addressed is logged as skipped, with why."""
    donor = data["donor"]
    currency = data["currency"]
    store.record_donor(
        conn,
        store.DonorFacts(
            campaign_id=data["campaign_id"],
            email=donor["email"],
            name=donor["name"],
            locale=donor["locale"],
            updates_opt_in=data["updates_opt_in"],
            given_at=data["succeeded_at"],
        ),
    )
    rendered = render_receipt(
        Receipt(
            donation_id=data["donation_id"],
            campaign_title=data["campaign_title"],
            campaign_slug=data["campaign_slug"],
            cause=data["campaign_cause"],
            amount=Money(data["amount"], currency),
            meal_price=Money(data["meal_price"], currency),
            donor_name=donor["name"],
            locale=donor["locale"],
            given_at=data["succeeded_at"],
        ),
        letterhead,
    )
    now = datetime.now(UTC)
    wire: str | None = None
    message_id: str | None = None
    skipped_because: str | None = None
    try:
        message = build_message(rendered, donor["name"], donor["email"], letterhead, now)
        wire = serialize(message)
        message_id = str(message["Message-ID"])
    except UnsendableAddress as error:
        skipped_because = str(error)
    queued = store.add_delivery(
        conn,
        store.NewDelivery(
            event_id=event.id,
            recipient=donor["email"],
            kind=store.RECEIPT,
            campaign_id=data["campaign_id"],
            donation_id=data["donation_id"],
            subject=rendered.subject,
            message_id=message_id,
            message=wire,
            skipped_because=skipped_because,
        ),
        now,
    )
    recipient = mask_email(donor["email"])
    if not queued:
        log.info("receipt for donation %s to %s already queued", data["donation_id"], recipient)
    elif skipped_because:
        log.warning(
            "receipt for donation %s to %s skipped: unsendable address",
            data["donation_id"],
            recipient,
        )
    else:
        log.info("receipt for donation %s queued to %s", data["donation_id"], recipient)


def event_handlers(letterhead: Letterhead) -> dict[str, Handler]:
    """The events this service acts on, by type; every other type is skipped."""
    return {
        DONATION_SUCCEEDED: partial(donation_succeeded, letterhead=letterhead),
    }
