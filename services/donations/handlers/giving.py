"""A donor gives: the gift is priced, Stripe opens its checkout, the pending donation is
stored (a Stripe event that came before it applies now); or the donor leaves the checkout
and cancels."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from ..domain.donations import Donation, DonationStatus, donation_id_for_retry
from ..domain.giving import Gift, GiftLimits, ProcessingFee, price_donation
from ..domain.payments import CheckoutRequest
from . import Payments, UnitOfWork
from .campaigns import UnknownCampaign
from .publishing import publish_donation_events
from .webhooks import replay_waiting

log = logging.getLogger(__name__)


class IdempotencyConflict(ValueError):
    """An Idempotency-Key reused for a different request."""


@dataclass(frozen=True)
class GivingRules:
    """What the service is configured to take: the gift limits, the processing fee a donor
    may cover, and the public URL Stripe sends donors back to."""

    limits: GiftLimits
    fee: ProcessingFee
    public_url: str


@dataclass(frozen=True)
class StartDonation:
    """Start a donation: the gift, under the service's giving rules."""

    gift: Gift
    rules: GivingRules


def _first_answer(earlier: Donation | None, fingerprint: str | None) -> Donation:
    """The donation an earlier request with the same Idempotency-Key started, if it asked the
    same."""
    if earlier is None or earlier.request_fingerprint != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was used for another request")
    return earlier


def start_donation(command: StartDonation, uow: UnitOfWork, payments: Payments) -> Donation:
    """Price the gift, open a Stripe Checkout Session, and store the pending donation.

    Stripe is called between two transactions of `uow` (given unopened), before anything is
    stored: a refused gift or an unreachable Stripe leaves no trace, and no lock waits on
    Stripe. The session's idempotency key comes from the donation id; with an
    Idempotency-Key the donation id is derived from it, so a retry finds the first answer."""
    gift, rules = command.gift, command.rules
    key = gift.idempotency_key
    fingerprint = gift.fingerprint()
    donation_id = donation_id_for_retry(key, gift.campaign_slug) if key else str(uuid.uuid4())
    with uow:
        campaign = uow.campaigns.by_slug(gift.campaign_slug)
        earlier = uow.donations.get(donation_id) if key else None
    if campaign is None:
        raise UnknownCampaign(gift.campaign_slug)
    if earlier is not None:
        return _first_answer(earlier, fingerprint)
    priced = price_donation(
        campaign,
        rules.limits,
        rules.fee,
        amount=gift.amount,
        meals=gift.meals,
        currency=gift.currency,
        cover_fee=gift.cover_fee,
    )
    session = payments.create_session(
        CheckoutRequest(
            donation_id=donation_id,
            campaign_id=campaign.id,
            campaign_title=campaign.title,
            gift=priced.total,
            fee_covered=priced.fee_covered,
            donor_email=gift.donor_email,
            success_url=f"{rules.public_url}/donations/{donation_id}/thanks",
            cancel_url=f"{rules.public_url}/donations/{donation_id}/canceled",
        )
    )
    donation = Donation.start(donation_id, campaign, gift, priced, session, datetime.now(UTC))
    with uow:
        if not uow.donations.add(donation):
            # Two requests with one Idempotency-Key raced: the first one's answer stands.
            return _first_answer(uow.donations.get(donation_id), fingerprint)
        # A Stripe event that came before this donation was stored can be applied now.
        replay_waiting(uow, [donation_id], payments, gift.correlation_id)
    log.info("donation started", extra={"donation_id": donation_id, "campaign": campaign.slug})
    return donation


def cancel_donation(donation_id: str, uow: UnitOfWork) -> str | None:
    """The donor left Stripe's page: a still-pending donation becomes canceled (a paid
    checkout that still arrives wins over it). Returns the donation's status, if it exists."""
    donation = uow.donations.get(donation_id, lock=True)
    if donation is None:
        return None
    outcome = donation.end_unpaid(
        DonationStatus.CANCELED, "the donor left the checkout page", datetime.now(UTC)
    )
    if outcome.changed:
        uow.donations.save(donation)
        publish_donation_events(uow, outcome.events, None)
    return donation.status.value
