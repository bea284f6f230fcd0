"""Donations: a donor remembered with their consent, the receipt once the ledger booked the
gift, the confirmation of a refund."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC
from typing import Any

from services.shared.consumer import PoisonEvent
from services.shared.envelope import CloudEvent
from services.shared.money import Money

from ..domain import (
    CONSENT_AT_CHECKOUT,
    CampaignFacts,
    DeliveryStatus,
    Donor,
    Kind,
    ReceiptFacts,
)
from ..emails import Refund, render_receipt, render_refund
from ..messages import mask_email
from .queueing import Email, Stationery, UnitOfWork, queue_email

log = logging.getLogger(__name__)


def donation_succeeded(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """Stripe confirmed a gift: remember its donor for this campaign, with their consent to
    news (domain.Consent). The receipt waits for the ledger's booking (donation_booked)."""
    data = event.data
    given = data["donor"]
    now = stationery.clock()
    known = uow.donors.get(data["campaign_id"], given["email"], lock=True)
    donor = known or Donor(campaign_id=data["campaign_id"], email=given["email"])
    consent_at = data.get("consent_at") or data["succeeded_at"]
    uow.donors.save(
        replace(
            donor,
            name=given["name"],
            locale=given["locale"],
            email_ref=donor.email_ref or stationery.keys.email_ref(given["email"]),
            consent=donor.consent.after_gift(
                data["updates_opt_in"], consent_at.astimezone(UTC), CONSENT_AT_CHECKOUT
            ),
        ),
        now,
    )
    uow.campaigns.record(
        CampaignFacts(
            data["campaign_id"],
            data["campaign_slug"],
            data["campaign_title"],
            data.get("campaign_cause", ""),
        )
    )


def donation_booked(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """The ledger booked a gift: its receipt goes now, exactly once, stating the meals the
    ledger counted for it (the receipt's one trigger). A gift re-synced from Stripe carries no
    receipt facts, and gets none."""
    receipt = ReceiptFacts.from_booked(event.data)
    if receipt is None:
        log.info("donation %s booked without receipt facts: no receipt", event.data["donation_id"])
        return
    email = Email(
        render_receipt(receipt, stationery.letterhead),
        receipt.donor_name,
        receipt.donor_email,
        Kind.RECEIPT,
        receipt.campaign_id,
        donation_id=receipt.donation_id,
    )
    queued = queue_email(uow, stationery, event.id, email)
    recipient = mask_email(receipt.donor_email)
    status = uow.deliveries.status_of(event.id, receipt.donor_email, Kind.RECEIPT.value)
    if not queued:
        log.info("receipt for donation %s to %s already queued", receipt.donation_id, recipient)
    elif status == DeliveryStatus.SKIPPED.value:
        log.warning(
            "receipt for donation %s to %s skipped: unsendable address",
            receipt.donation_id,
            recipient,
        )
    else:
        log.info("receipt for donation %s queued to %s", receipt.donation_id, recipient)


def donation_refunded(event: CloudEvent, uow: UnitOfWork, stationery: Stationery) -> None:
    """Money went back to a donor: confirm it to them (one email per refund). The donor comes
    with the event, or else from the receipt this service sent for that donation."""
    data = event.data
    donor = data.get("donor") or _donor_of_donation(uow, data["campaign_id"], data["donation_id"])
    if donor is None:
        raise PoisonEvent(f"refund of donation {data['donation_id']}: no donor to write to")
    campaign = uow.campaigns.get(data["campaign_id"])
    currency = data["currency"]
    rendered = render_refund(
        Refund(
            donation_id=data["donation_id"],
            campaign_title=data.get("campaign_title")
            or (campaign.title if campaign else data["campaign_slug"]),
            campaign_slug=data["campaign_slug"],
            cause=campaign.cause if campaign else "",
            amount=Money(data["amount"], currency),
            total_refunded=Money(data["total_refunded"], currency),
            fully_refunded=data["fully_refunded"],
            donor_name=donor["name"],
            locale=donor["locale"],
            refunded_at=data["refunded_at"],
        ),
        stationery.letterhead,
    )
    email = Email(
        rendered,
        donor["name"],
        donor["email"],
        Kind.REFUND,
        data["campaign_id"],
        donation_id=data["donation_id"],
    )
    queue_email(uow, stationery, event.id, email)
    log.info("refund confirmation of donation %s queued", data["donation_id"])


def _donor_of_donation(
    uow: UnitOfWork, campaign_id: str, donation_id: str
) -> dict[str, Any] | None:
    """Whom a donation's receipt was sent to, as the refund confirmation names them."""
    address = uow.deliveries.receipt_recipient(donation_id)
    if address is None:
        return None
    donor = uow.donors.get(campaign_id, address)
    return {
        "email": address,
        "name": donor.name if donor else "",
        "locale": donor.locale if donor else "en",
    }
