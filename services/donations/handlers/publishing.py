"""What the donations service publishes: each change as its event of the published language
(services/shared/events.py), put in the unit of work's outbox on the topic of its kind, keyed
by campaign (a payout by its id) so each campaign's events stay in order; a programme's and its
difts' events go on programmes.events keyed by programme id. Event ids derive
from the fact (a donation's success, a refund, a dispute's opening), so producing one twice
publishes one event id."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.shared import events
from services.shared.envelope import new_event

from ..domain.campaigns import Campaign, MealPriceChange, NewsPost
from ..domain.donations import (
    DisputeEnded,
    Donation,
    DonationDisputed,
    DonationEnded,
    DonationEvent,
    DonationRefunded,
    DonationSucceeded,
    RefundReversed,
    derived_event_id,
)
from ..domain.payments import PayoutPaid
from ..domain.programmes import (
    Allocation,
    DiftDirected,
    DiftExpiredEvent,
    DiftIssued,
    Funding,
    Programme,
    ProgrammeCreditedBack,
    ProgrammeFunded,
    Recipient,
    Sponsor,
)
from ..markdown_text import render_markdown
from . import UnitOfWork

SOURCE = "difts/donations"


def publish_donation_events(
    uow: UnitOfWork, changes: tuple[DonationEvent, ...], correlation_id: str | None
) -> None:
    """Queue the events of a donation's change (its request's correlation id, else the one
    that caused the change)."""
    for event in changes:
        donation = event.donation
        campaign = uow.campaigns.get(donation.campaign_id)
        assert campaign is not None  # donations reference campaigns by foreign key
        event_type, data_of = _PUBLISHED[type(event)]
        uow.outbox.add(
            events.DONATIONS_TOPIC,
            donation.campaign_id,
            new_event(
                event_type,
                SOURCE,
                data_of(event, campaign),
                subject=f"donations/{donation.id}",
                correlation_id=donation.correlation_id or correlation_id,
                event_id=event.event_id,
            ),
        )


def _about(donation: Donation, campaign: Campaign) -> dict[str, Any]:
    """What every event about a donation's money names."""
    return {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "campaign_slug": campaign.slug,
    }


def _donor(donation: Donation) -> dict[str, Any]:
    donor = donation.donor
    return {"email": donor.email, "name": donor.name, "locale": donor.locale}


def _succeeded(event: DonationSucceeded, campaign: Campaign) -> dict[str, Any]:
    """difts.donation.succeeded.v1: everything the ledger books and the receipt states."""
    donation = event.donation
    return {
        "donation_id": donation.id,
        "campaign_id": campaign.id,
        "campaign_slug": campaign.slug,
        "campaign_title": campaign.title,
        "campaign_cause": campaign.cause,
        "amount": donation.amount.amount,
        "currency": donation.currency,
        "meal_price": campaign.meal_price.amount,
        "fee_covered": donation.fee_covered.amount,
        "fee": donation.fee,
        "net": donation.net,
        "donor": _donor(donation),
        "anonymous": donation.anonymous,
        "updates_opt_in": donation.updates_opt_in,
        "consent_at": donation.consent_at.isoformat() if donation.consent_at else None,
        "checkout_session_id": event.session_id,
        "payment_intent_id": donation.payment_intent_id,
        "charge_id": donation.charge_id,
        "balance_transaction_id": donation.balance_transaction_id,
        "succeeded_at": event.at.isoformat(),
    }


def _ended(event: DonationEnded, _campaign: Campaign) -> dict[str, Any]:
    """difts.donation.failed.v1: the donation ended unpaid (failed, expired or canceled)."""
    donation = event.donation
    return {
        "donation_id": donation.id,
        "campaign_id": donation.campaign_id,
        "status": donation.status.value,
        "reason": event.reason,
        "failed_at": event.at.isoformat(),
    }


def _reversed(event: RefundReversed, campaign: Campaign) -> dict[str, Any]:
    """difts.donation.refund_failed.v1: a counted refund failed; the total refunded now."""
    return {
        **_about(event.donation, campaign),
        "refund_id": event.record.id,
        "amount": event.record.amount,
        "currency": event.record.currency,
        "total_refunded": event.donation.amount_refunded.amount,
        "balance_transaction_id": event.report.failure_balance_transaction_id,
        "failed_at": event.at.isoformat(),
    }


def _refunded(event: DonationRefunded, campaign: Campaign) -> dict[str, Any]:
    """difts.donation.refunded.v1: one refund counted, and the total refunded now."""
    donation, report = event.donation, event.report
    return {
        **_about(donation, campaign),
        "campaign_title": campaign.title,
        "refund_id": event.record.id,
        "charge_id": report.payment.charge_id or donation.charge_id,
        "amount": event.record.amount,
        "currency": event.record.currency,
        "total_refunded": donation.amount_refunded.amount,
        "fully_refunded": event.fully,
        "fee_refunded": 0,
        "balance_transaction_id": report.balance_transaction_id,
        "donor": _donor(donation),
        "refunded_at": event.at.isoformat(),
    }


def _disputed(event: DonationDisputed, campaign: Campaign) -> dict[str, Any]:
    """difts.donation.dispute_opened.v1: the amount and fee Stripe withdraws."""
    donation, report = event.donation, event.report
    return {
        **_about(donation, campaign),
        "dispute_id": event.record.id,
        "charge_id": report.payment.charge_id or donation.charge_id,
        "amount": event.record.amount,
        "currency": event.record.currency,
        "fee": report.fees.withdrawn,
        "reason": report.reason,
        "balance_transaction_id": report.fees.balance_transaction_id,
        "opened_at": event.at.isoformat(),
    }


def _dispute_ended(event: DisputeEnded, campaign: Campaign) -> dict[str, Any]:
    """difts.donation.dispute_closed.v1: won (what comes back) or lost."""
    donation, report, dispute = event.donation, event.report, event.record
    return {
        **_about(donation, campaign),
        "dispute_id": dispute.id,
        "charge_id": report.charge_id or donation.charge_id,
        "status": dispute.status,
        "amount": dispute.amount,
        "currency": dispute.currency,
        "amount_reinstated": dispute.amount if event.won else 0,
        "fee_reinstated": report.fees.reinstated if event.won else 0,
        "balance_transaction_id": report.fees.balance_transaction_id,
        "closed_at": event.at.isoformat(),
    }


# The one dispatch on what changed: each donation event's type in the published language, and
# its data.
_PUBLISHED: dict[type, tuple[str, Callable[[Any, Campaign], dict[str, Any]]]] = {
    DonationSucceeded: (events.DONATION_SUCCEEDED, _succeeded),
    DonationEnded: (events.DONATION_FAILED, _ended),
    DonationRefunded: (events.DONATION_REFUNDED, _refunded),
    RefundReversed: (events.DONATION_REFUND_FAILED, _reversed),
    DonationDisputed: (events.DISPUTE_OPENED, _disputed),
    DisputeEnded: (events.DISPUTE_CLOSED, _dispute_ended),
}


def publish_payout(
    uow: UnitOfWork,
    payout: PayoutPaid,
    transactions: tuple[str, ...],
    now: datetime,
    correlation_id: str | None,
) -> None:
    """difts.payout.paid.v1: money paid out to the bank and the transactions it settles."""
    data = {
        "payout_id": payout.payout_id,
        "amount": payout.amount,
        "currency": payout.currency,
        "arrival_date": (payout.arrival_at or now).isoformat(),
        "balance_transaction_ids": list(transactions),
        "paid_at": now.isoformat(),
    }
    uow.outbox.add(
        events.DONATIONS_TOPIC,
        payout.payout_id,
        new_event(
            events.PAYOUT_PAID,
            SOURCE,
            data,
            subject=f"payouts/{payout.payout_id}",
            correlation_id=correlation_id,
            event_id=derived_event_id(payout.payout_id, "paid"),
        ),
    )


def _announce(
    uow: UnitOfWork,
    campaign: Campaign,
    event_type: str,
    data: dict[str, Any],
    subject: str = "",
    event_id: str | None = None,
) -> None:
    uow.outbox.add(
        events.CAMPAIGNS_TOPIC,
        campaign.id,
        new_event(
            event_type,
            SOURCE,
            data,
            subject=subject or f"campaigns/{campaign.id}",
            event_id=event_id,
        ),
    )


def announce_campaign(uow: UnitOfWork, campaign: Campaign) -> None:
    """difts.campaign.published.v1: a live campaign's public facts as they are now."""
    data = {
        "campaign_id": campaign.id,
        "slug": campaign.slug,
        "title": campaign.title,
        "cause": campaign.cause,
        "currency": campaign.meal_price.currency,
        "meal_price": campaign.meal_price.amount,
        "goal_meals": campaign.goal_meals,
        "status": campaign.status.value,
        "action_zone": campaign.action_zone,
        "summary": campaign.summary,
    }
    _announce(uow, campaign, events.CAMPAIGN_PUBLISHED, data)


def announce_closed(uow: UnitOfWork, campaign: Campaign) -> None:
    """difts.campaign.closed.v1: the campaign takes no more gifts."""
    assert campaign.closed_at is not None
    closed_at = campaign.closed_at.isoformat()
    data = {"campaign_id": campaign.id, "slug": campaign.slug, "closed_at": closed_at}
    _announce(uow, campaign, events.CAMPAIGN_CLOSED, data)


def announce_meal_price(uow: UnitOfWork, campaign: Campaign, change: MealPriceChange) -> None:
    """difts.campaign.meal_price_changed.v1: the price from a date on, and the one before."""
    data = {
        "campaign_id": campaign.id,
        "slug": campaign.slug,
        "currency": change.meal_price.currency,
        "meal_price": change.meal_price.amount,
        "previous_meal_price": change.previous_meal_price,
        "effective_from": change.effective_from.isoformat(),
    }
    _announce(uow, campaign, events.MEAL_PRICE_CHANGED, data)


def announce_post(uow: UnitOfWork, campaign: Campaign, post: NewsPost, url: str) -> None:
    """difts.campaign.update_published.v1: a news post, for the campaign's donors."""
    assert post.published_at is not None
    data = {
        "campaign_id": campaign.id,
        "campaign_slug": campaign.slug,
        "campaign_title": campaign.title,
        "cause": campaign.cause,
        "post_id": post.id,
        "title": post.title,
        "body_markdown": post.body_markdown,
        "body_html": render_markdown(post.body_markdown),
        "url": url,
        "locale": post.locale,
        "published_at": post.published_at.isoformat(),
    }
    subject = f"campaigns/{campaign.id}/news/{post.id}"
    event_id = derived_event_id(post.id, "published")
    _announce(uow, campaign, events.UPDATE_PUBLISHED, data, subject, event_id)


# --- company difts: programmes.events, keyed by programme id ----------------------------------


def _programme_event(
    uow: UnitOfWork,
    programme_id: str,
    event_type: str,
    data: dict[str, Any],
    subject: str,
    event_id: str,
    correlation_id: str | None = None,
) -> None:
    uow.outbox.add(
        events.PROGRAMMES_TOPIC,
        programme_id,
        new_event(
            event_type,
            SOURCE,
            data,
            subject=subject,
            correlation_id=correlation_id,
            event_id=event_id,
        ),
    )


def publish_programme_funded(
    uow: UnitOfWork,
    event: ProgrammeFunded,
    funding: Funding,
    sponsor: Sponsor,
    correlation_id: str | None = None,
) -> None:
    """difts.programme.funded.v1: money arrived for a programme, once per funding."""
    programme = event.programme
    data = {
        "programme_id": programme.id,
        "sponsor_id": sponsor.id,
        "sponsor_name": sponsor.legal_name,
        "funding_id": funding.id,
        "method": funding.method.value,
        "amount": funding.amount.amount,
        "currency": funding.amount.currency,
        "fee": funding.fee,
        "net": funding.net,
        "total_funded": programme.funded.amount,
        "checkout_session_id": funding.checkout_session_id,
        "payment_intent_id": funding.payment_intent_id,
        "charge_id": funding.charge_id,
        "balance_transaction_id": funding.balance_transaction_id,
        "bank_reference": funding.bank_reference,
        "received_on": funding.received_on.isoformat() if funding.received_on else None,
        "funded_at": funding.funded_at.isoformat(),
    }
    _programme_event(
        uow,
        programme.id,
        events.PROGRAMME_FUNDED,
        data,
        f"programmes/{programme.id}/fundings/{funding.id}",
        derived_event_id(funding.id, "funded"),
        correlation_id,
    )


def publish_credited_back(uow: UnitOfWork, event: ProgrammeCreditedBack) -> None:
    """difts.programme.credited_back.v1: money of the programme's fund back to the sponsor."""
    programme = event.programme
    data = {
        "programme_id": programme.id,
        "sponsor_id": programme.sponsor_id,
        "credit_id": event.credit_id,
        "amount": event.amount.amount,
        "currency": event.amount.currency,
        "reason": event.reason.value,
        "reference": event.reference,
        "credited_at": event.at.isoformat(),
    }
    _programme_event(
        uow,
        programme.id,
        events.PROGRAMME_CREDITED_BACK,
        data,
        f"programmes/{programme.id}/credits/{event.credit_id}",
        derived_event_id(event.credit_id, "credited_back"),
    )


def _recipient(recipient: Recipient | None) -> dict[str, Any] | None:
    if recipient is None:
        return None
    return {"email": recipient.email, "name": recipient.name, "locale": recipient.locale}


def shortlist_entry(campaign: Campaign) -> dict[str, Any]:
    """One shortlisted cause as an event names it."""
    return {
        "campaign_id": campaign.id,
        "campaign_slug": campaign.slug,
        "campaign_title": campaign.title,
        "cause": campaign.cause,
        "summary": campaign.summary,
        "meal_price": campaign.meal_price.amount,
    }


def publish_dift_issued(
    uow: UnitOfWork,
    event: DiftIssued,
    programme: Programme,
    sponsor: Sponsor,
    shortlist: list[Campaign],
    redeem_url: str | None,
) -> None:
    """difts.dift.issued.v1: a dift for a recipient (an email's invitation carries its
    secret link; a code carries no recipient and no link)."""
    dift = event.dift
    data = {
        "dift_id": dift.id,
        "programme_id": programme.id,
        "programme_name": programme.name,
        "occasion": programme.occasion,
        "sponsor_id": sponsor.id,
        "brand_name": sponsor.brand_name,
        "message_markdown": programme.message_markdown,
        "message_html": render_markdown(programme.message_markdown),
        "value": dift.value.amount,
        "currency": dift.value.currency,
        "channel": dift.channel.value,
        "recipient": _recipient(dift.recipient),
        "redeem_url": redeem_url,
        "sponsor_reference": dift.sponsor_reference,
        "shortlist": [shortlist_entry(campaign) for campaign in shortlist],
        "expires_at": programme.expires_at.isoformat(),
        "issued_at": event.at.isoformat(),
    }
    _programme_event(
        uow,
        programme.id,
        events.DIFT_ISSUED,
        data,
        f"difts/{dift.id}",
        derived_event_id(dift.id, "issued"),
    )


def _allocations(uow: UnitOfWork, allocations: tuple[Allocation, ...]) -> list[dict[str, Any]]:
    listed = []
    for allocation in allocations:
        campaign = uow.campaigns.get(allocation.campaign_id)
        assert campaign is not None  # allocations reference campaigns by foreign key
        listed.append(
            {
                "campaign_id": campaign.id,
                "campaign_slug": campaign.slug,
                "campaign_title": campaign.title,
                "amount": allocation.amount.amount,
                # So a ledger that has not read the campaign's own events yet still counts it.
                "meal_price": campaign.meal_price.amount,
            }
        )
    return listed


def publish_dift_directed(
    uow: UnitOfWork, event: DiftDirected, programme: Programme, sponsor: Sponsor
) -> None:
    """difts.dift.directed.v1: where its recipient sent a dift (allocations summing to it)."""
    dift = event.dift
    data = {
        "dift_id": dift.id,
        "programme_id": programme.id,
        "sponsor_id": sponsor.id,
        "brand_name": sponsor.brand_name,
        "value": dift.value.amount,
        "currency": dift.value.currency,
        "allocations": _allocations(uow, dift.allocations),
        "recipient": _recipient(dift.recipient),
        "updates_opt_in": dift.updates_opt_in,
        "consent_at": event.at.isoformat() if dift.updates_opt_in else None,
        "directed_at": event.at.isoformat(),
    }
    _programme_event(
        uow,
        programme.id,
        events.DIFT_DIRECTED,
        data,
        f"difts/{dift.id}",
        derived_event_id(dift.id, "directed"),
    )


def publish_dift_expired(uow: UnitOfWork, event: DiftExpiredEvent, programme: Programme) -> None:
    """difts.dift.expired.v1: nobody directed a dift; the fallback rule's allocations."""
    dift = event.dift
    data = {
        "dift_id": dift.id,
        "programme_id": programme.id,
        "sponsor_id": programme.sponsor_id,
        "value": dift.value.amount,
        "currency": dift.value.currency,
        "rule": event.rule.value,
        "allocations": _allocations(uow, dift.allocations),
        "expired_at": event.at.isoformat(),
    }
    _programme_event(
        uow,
        programme.id,
        events.DIFT_EXPIRED,
        data,
        f"difts/{dift.id}",
        derived_event_id(dift.id, "expired"),
    )
