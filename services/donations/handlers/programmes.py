"""A company's side of difts: register a sponsor (with its access token, shown once), write
and edit a programme while it is a draft, fund it (Stripe Checkout, or a bank transfer that
finance staff record; each funding once per source, with its mécénat receipt numbered in the
same transaction), top it up, credit unused budget back, and open it when its date has come.
Closing, after expiry, is in difts.py (it follows the last dift's fallback)."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from services.shared.money import Money

from ..domain.campaigns import Campaign
from ..domain.payments import CheckoutPaid, CheckoutSession, PaymentFacts
from ..domain.programmes import (
    RECEIPT_FORMS,
    CreditBack,
    FallbackRule,
    Funding,
    FundingMethod,
    IssuedReceipt,
    Programme,
    ProgrammeCheckout,
    ProgrammeRuleBroken,
    ProgrammeStatus,
    Sponsor,
)
from . import Payments, UnitOfWork
from .publishing import publish_credited_back, publish_programme_funded

log = logging.getLogger(__name__)

# One issuing organisation per installation: its facts are configuration (RECEIPT_*), its
# receipts are numbered under this key (the tables allow several).
RECEIPT_ISSUER = "difts"
SPONSOR_TOKEN_PREFIX = "dsp_"  # noqa: S105 - a prefix, not a secret


class UnknownSponsor(LookupError):
    """No sponsor has this id."""


class UnknownProgramme(LookupError):
    """No programme has this id (or not for this sponsor)."""


def token_digest(token: str) -> str:
    """What the database keeps of a sponsor's access token: its SHA-256 hex digest."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_sponsor_token() -> str:
    """A fresh sponsor access token (256 random bits, URL-safe, with a recognisable prefix)."""
    return SPONSOR_TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class RegisterSponsor:
    """A company that will fund difts, and the facts its mécénat receipt states."""

    legal_name: str
    legal_form: str
    siren: str
    postal_address: str
    contact_email: str
    brand_name: str = ""
    seed_key: str | None = None


def register_sponsor(command: RegisterSponsor, uow: UnitOfWork) -> tuple[Sponsor, str | None]:
    """Store a sponsor and make its first access token (the sponsor role for the company's
    contact, scoped to this sponsor): returned once, only its digest is kept. With a
    `seed_key` already used, the sponsor stored then and no token."""
    if command.seed_key is not None:
        seeded = uow.sponsors.by_seed_key(command.seed_key)
        if seeded is not None:
            return seeded, None
    now = datetime.now(UTC)
    sponsor = Sponsor.register(
        str(uuid.uuid4()),
        legal_name=command.legal_name,
        legal_form=command.legal_form,
        siren=command.siren,
        postal_address=command.postal_address,
        contact_email=command.contact_email,
        brand_name=command.brand_name,
        now=now,
    )
    uow.sponsors.add(sponsor, seed_key=command.seed_key)
    token = new_sponsor_token()
    uow.sponsors.add_token(token_digest(token), sponsor.id, now)
    return sponsor, token


def require_sponsor(uow: UnitOfWork, sponsor_id: str) -> Sponsor:
    """The sponsor with this id; UnknownSponsor if there is none."""
    sponsor = uow.sponsors.get(sponsor_id)
    if sponsor is None:
        raise UnknownSponsor(sponsor_id)
    return sponsor


def require_programme(uow: UnitOfWork, programme_id: str, lock: bool = False) -> Programme:
    """The programme with this id; UnknownProgramme if there is none."""
    programme = uow.programmes.get(programme_id, lock=lock)
    if programme is None:
        raise UnknownProgramme(programme_id)
    return programme


def _campaigns(uow: UnitOfWork, slugs: Sequence[str], field_name: str) -> list[Campaign]:
    found = []
    for slug in slugs:
        campaign = uow.campaigns.by_slug(slug)
        if campaign is None:
            raise ProgrammeRuleBroken(field_name, f"no campaign {slug!r}")
        found.append(campaign)
    return found


def _fallback_id(uow: UnitOfWork, slug: str | None) -> str | None:
    if slug is None:
        return None
    campaign = uow.campaigns.by_slug(slug)
    if campaign is None:
        raise ProgrammeRuleBroken("fallback_campaign", f"no campaign {slug!r}")
    return campaign.id


@dataclass(frozen=True)
class CreateProgramme:
    """A draft programme of a sponsor: the shortlist and fallback campaign by slug."""

    sponsor_id: str
    name: str
    currency: str
    dift_value: int | None
    shortlist: tuple[str, ...]
    opens_at: datetime
    expires_at: datetime
    fallback_rule: FallbackRule = FallbackRule.SPLIT_EVENLY
    fallback_campaign: str | None = None
    occasion: str = ""
    message_markdown: str = ""
    seed_key: str | None = None


def create_programme(command: CreateProgramme, uow: UnitOfWork) -> Programme:
    """Write a draft programme; nothing is announced until it is funded."""
    if command.seed_key is not None:
        seeded = uow.programmes.by_seed_key(command.seed_key)
        if seeded is not None:
            return seeded
    sponsor = require_sponsor(uow, command.sponsor_id)
    programme = Programme.draft(
        str(uuid.uuid4()),
        sponsor,
        _campaigns(uow, command.shortlist, "shortlist"),
        name=command.name,
        currency=command.currency,
        dift_value=command.dift_value,
        opens_at=command.opens_at,
        expires_at=command.expires_at,
        fallback_rule=command.fallback_rule,
        fallback_campaign_id=_fallback_id(uow, command.fallback_campaign),
        occasion=command.occasion,
        message_markdown=command.message_markdown,
        now=datetime.now(UTC),
    )
    uow.programmes.add(programme, seed_key=command.seed_key)
    return programme


@dataclass(frozen=True)
class EditProgramme:
    """New texts, value, dates, shortlist (slugs) or fallback of a draft programme."""

    programme_id: str
    changes: Mapping[str, Any] = field(default_factory=dict)


def edit_programme(command: EditProgramme, uow: UnitOfWork) -> Programme:
    """Change a draft programme; its rules are checked again as a whole."""
    programme = require_programme(uow, command.programme_id, lock=True)
    changes = dict(command.changes)
    shortlist = None
    if "shortlist" in changes:
        shortlist = _campaigns(uow, changes.pop("shortlist"), "shortlist")
    if "fallback_campaign" in changes:
        changes["fallback_campaign_id"] = _fallback_id(uow, changes.pop("fallback_campaign"))
    edited = programme.edited(changes, shortlist)
    if shortlist is None:
        found = [uow.campaigns.get(cid) for cid in edited.shortlist]
        shortlist = [c for c in found if c is not None]
    edited.check(shortlist)
    uow.programmes.save(edited)
    return edited


# --- funding ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartFunding:
    """Pay (part of) a programme's budget through Stripe Checkout."""

    programme_id: str
    amount: Money
    public_url: str
    request_id: str


def start_funding(command: StartFunding, uow: UnitOfWork, payments: Payments) -> CheckoutSession:
    """Open a Stripe Checkout Session (mode=payment, card or SEPA debit, the programme id in
    its metadata) for the sponsor to pay; the programme is funded when Stripe's webhook says
    it was paid. Stripe is called outside any transaction (`uow` given unopened)."""
    with uow:
        programme = require_programme(uow, command.programme_id)
        sponsor = require_sponsor(uow, programme.sponsor_id)
    if programme.status is ProgrammeStatus.CLOSED:
        raise ProgrammeRuleBroken("status", "a closed programme takes no more money")
    if command.amount.currency != programme.currency or command.amount.amount < 1:
        raise ProgrammeRuleBroken("amount", f"a positive amount in {programme.currency}")
    page = f"{command.public_url}/sponsor/programmes/{programme.id}"
    return payments.create_programme_session(
        ProgrammeCheckout(
            programme_id=programme.id,
            sponsor_id=sponsor.id,
            programme_name=programme.name,
            amount=command.amount,
            contact_email=sponsor.contact_email,
            success_url=f"{page}?funded=1",
            cancel_url=f"{page}?funded=0",
            request_id=command.request_id,
        )
    )


@dataclass(frozen=True)
class RecordBankTransfer:
    """A bank transfer that finance staff saw arrive for a programme."""

    programme_id: str
    amount: Money
    received_on: date
    reference: str


def record_bank_transfer(
    command: RecordBankTransfer, uow: UnitOfWork
) -> tuple[Funding, IssuedReceipt | None, bool]:
    """Fund a programme with a bank transfer received, once per reference: returns the
    funding, its mécénat receipt and whether it was recorded now (False: the same reference
    was recorded before, nothing changes)."""
    if not command.reference.strip():
        raise ProgrammeRuleBroken("reference", "a bank transfer has a reference")
    now = datetime.now(UTC)
    funding = Funding(
        id=str(uuid.uuid4()),
        programme_id=command.programme_id,
        source=f"bank:{command.reference.strip()}",
        method=FundingMethod.BANK_TRANSFER,
        amount=command.amount,
        funded_at=now,
        bank_reference=command.reference.strip(),
        received_on=command.received_on,
    )
    return fund_programme(uow, funding)


def fund_programme(
    uow: UnitOfWork, funding: Funding, correlation_id: str | None = None
) -> tuple[Funding, IssuedReceipt | None, bool]:
    """Book money received for a programme once per source: the programme is funded (or
    topped up), its mécénat receipt numbered, and PROGRAMME_FUNDED queued, all in this
    transaction. A source seen before changes nothing."""
    programme = require_programme(uow, funding.programme_id, lock=True)
    known = uow.fundings.by_source(funding.source)
    if known is not None:
        receipts = [r for r in uow.receipts.of_programme(programme.id) if r.funding_id == known.id]
        return known, (receipts[0] if receipts else None), False
    funded, event = programme.funded_with(funding.amount, funding.funded_at)
    if not uow.fundings.add(funding):
        raise ProgrammeRuleBroken("reference", "this funding was recorded meanwhile")
    uow.programmes.save(funded)
    sponsor = require_sponsor(uow, programme.sponsor_id)
    received_on = funding.received_on or funding.funded_at.date()
    receipt = uow.receipts.issue(
        str(uuid.uuid4()),
        RECEIPT_ISSUER,
        funding,
        sponsor.id,
        RECEIPT_FORMS[funding.method],
        received_on,
        funding.funded_at.date(),
    )
    publish_programme_funded(uow, event, funding, sponsor, correlation_id)
    log.info("programme funded", extra={"programme_id": programme.id, "method": funding.method})
    return funding, receipt, True


def programme_paid(
    uow: UnitOfWork,
    paid: CheckoutPaid,
    programme_id: str,
    payment: PaymentFacts,
    now: datetime,
    correlation_id: str | None,
) -> str:
    """A paid Checkout Session whose metadata names a programme funds it once (by session
    id), with the fee and net of its balance transaction as a gift's; what the webhook's
    event is settled with ("funded", "already_funded", "unknown_programme", ...)."""
    programme = uow.programmes.get(programme_id)
    if programme is None:
        log.error("stripe paid a checkout for an unknown programme")
        return "unknown_programme"
    if paid.amount_total is None or paid.currency != programme.currency:
        log.error("stripe paid a programme's checkout in another currency; not booked")
        return "amount_mismatch"
    amount = Money(paid.amount_total, programme.currency)
    describes = payment.describes(amount)
    funding = Funding(
        id=str(uuid.uuid4()),
        programme_id=programme.id,
        source=f"stripe:{paid.session_id or paid.payment_intent_id}",
        method=FundingMethod.STRIPE,
        amount=amount,
        funded_at=now,
        fee=payment.fee if describes else None,
        net=payment.net if describes else None,
        checkout_session_id=paid.session_id,
        payment_intent_id=paid.payment_intent_id,
        charge_id=payment.charge_id,
        balance_transaction_id=payment.balance_transaction_id if describes else None,
    )
    try:
        _funding, _receipt, fresh = fund_programme(uow, funding, correlation_id)
    except ProgrammeRuleBroken as refused:
        log.error("a programme's payment could not be booked: %s", refused.message)
        return "programme_refused"
    return "funded" if fresh else "already_funded"


@dataclass(frozen=True)
class CreditBackUnused:
    """Give unused budget of a programme back to its sponsor."""

    programme_id: str
    amount: Money
    reference: str = ""


def credit_back(command: CreditBackUnused, uow: UnitOfWork) -> CreditBack:
    """Credit back budget no dift uses (never more than is available), and announce it."""
    programme = require_programme(uow, command.programme_id, lock=True)
    credited, event = programme.crediting_back(
        command.amount, command.reference, str(uuid.uuid4()), datetime.now(UTC)
    )
    uow.programmes.save(credited)
    return keep_credit(uow, event)


def keep_credit(uow: UnitOfWork, event: Any) -> CreditBack:
    """Store a credit back and queue PROGRAMME_CREDITED_BACK."""
    credit = CreditBack(
        event.credit_id, event.programme.id, event.amount, event.reason, event.reference, event.at
    )
    uow.credits.add(credit)
    publish_credited_back(uow, event)
    return credit


def end_programme_now(programme_id: str, uow: UnitOfWork, now: datetime | None = None) -> Programme:
    """End an open programme early: it expires now, and the worker's next expiry round gives
    its undirected difts by the fallback rule and closes it."""
    programme = require_programme(uow, programme_id, lock=True)
    ended = programme.ended_early(now or datetime.now(UTC))
    uow.programmes.save(ended)
    return ended


def open_due_programmes(uow: UnitOfWork, now: datetime | None = None) -> int:
    """Open every funded programme whose opening date has come; how many."""
    now = now or datetime.now(UTC)
    opened = 0
    for programme_id in uow.programmes.due_to_open(now):
        programme = require_programme(uow, programme_id, lock=True)
        if programme.can_open(now):
            uow.programmes.save(programme.opened(now))
            opened += 1
    return opened
