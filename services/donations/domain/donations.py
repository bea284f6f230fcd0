"""A donation's lifecycle: pending until Stripe says it was paid (succeeded) or not (failed,
expired, or canceled by the donor); refunds and disputes after it was paid. Each change
returns an Outcome: what the webhook answers, and the events the change causes (none when
nothing happened, with the reason in its name: already_succeeded, refund_mismatch, ...).

The repositories load a donation with a row lock before it changes and save it after, so two
events about one donation apply one after the other."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Generic, TypeVar

from services.shared.money import Money

from .campaigns import Campaign
from .giving import Gift, PricedGift
from .payments import (
    CheckoutPaid,
    CheckoutSession,
    DisputeClosed,
    DisputeOpened,
    PaymentFacts,
    RefundReported,
)

_DONATION_EVENT_NAMESPACE = uuid.UUID("8f5a3c64-2d1e-4b8e-9a55-0d1f7a5e2c01")

WAITING = "waiting"


class DonationStatus(StrEnum):
    """Where a donation is in its life; only a pending donation can succeed."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


# Where a donation may go when Stripe reports an outcome. A paid checkout wins over an earlier
# expiry or cancel (money did move); nothing leaves a final refund.
SUCCEEDS_FROM = (
    DonationStatus.PENDING,
    DonationStatus.EXPIRED,
    DonationStatus.CANCELED,
    DonationStatus.FAILED,
)
ENDS_UNPAID_FROM = (DonationStatus.PENDING,)
REFUNDABLE = (DonationStatus.SUCCEEDED, DonationStatus.DISPUTED, DonationStatus.REFUNDED)


@dataclass(frozen=True)
class Donor:
    """Who gives: where their receipt goes, the name they gave, their language."""

    email: str
    name: str
    locale: str


REFUND_COUNTED = "counted"
REFUND_FAILED = "failed"


@dataclass(frozen=True)
class Refund:
    """A Stripe refund of a donation, remembered once by its id: "counted" (in the donation's
    amount refunded) or "failed" (failed or canceled at Stripe: it counts nothing, now or
    later, whichever order its events come in). In the refund's own currency, as Stripe
    reported it."""

    id: str
    donation_id: str
    amount: int
    currency: str
    created_at: datetime
    status: str = REFUND_COUNTED
    failed_at: datetime | None = None

    @property
    def has_failed(self) -> bool:
        """A failed refund never counts."""
        return self.status == REFUND_FAILED


@dataclass(frozen=True)
class Dispute:
    """A dispute of a donation's charge, remembered once by its id: open, then won or lost."""

    id: str
    donation_id: str
    amount: int
    currency: str
    opened_at: datetime
    status: str = "open"
    closed_at: datetime | None = None


@dataclass(frozen=True)
class DonationSucceeded:
    """Stripe confirmed the payment (`session_id`: the checkout it reported)."""

    donation: Donation
    session_id: str | None
    at: datetime

    @property
    def event_id(self) -> str:
        """One id however often the payment is confirmed."""
        return succeeded_event_id(self.donation.id)


@dataclass(frozen=True)
class DonationEnded:
    """The donation ended unpaid (failed, expired or canceled), for `reason`."""

    donation: Donation
    reason: str
    at: datetime

    @property
    def event_id(self) -> str:
        """One id per way a donation ends."""
        return derived_event_id(self.donation.id, self.donation.status.value)


Reported = TypeVar("Reported", RefundReported, DisputeOpened, DisputeClosed)
Record = TypeVar("Record", Refund, Dispute)


@dataclass(frozen=True)
class _Reported(Generic[Reported, Record]):
    """A change of a donation that Stripe reported (`report`), about one refund or dispute
    (`record`): one event id per record and what happened to it (FACT), however often Stripe
    says so."""

    FACT: ClassVar[str] = ""

    donation: Donation
    report: Reported
    at: datetime
    record: Record

    @property
    def event_id(self) -> str:
        """One id per record and what happened to it."""
        return derived_event_id(self.record.id, self.FACT)


class DonationRefunded(_Reported[RefundReported, Refund]):
    """A refund was counted: `donation.amount_refunded` is the total now."""

    FACT = "refunded"

    @property
    def fully(self) -> bool:
        """Whether the whole gift is refunded now."""
        return self.donation.amount_refunded.amount >= self.donation.amount.amount


class RefundReversed(_Reported[RefundReported, Refund]):
    """A counted refund failed at Stripe: the money never went back; it counts no more."""

    FACT = "refund_failed"


class DonationDisputed(_Reported[DisputeOpened, Dispute]):
    """The donor's bank disputes the donation's charge."""

    FACT = "opened"


class DisputeEnded(_Reported[DisputeClosed, Dispute]):
    """A dispute of the donation's charge was won or lost."""

    FACT = "closed"

    @property
    def won(self) -> bool:
        """A won dispute gives the amount (and the fee Stripe says) back."""
        return self.record.status == "won"


DonationEvent = (
    DonationSucceeded
    | DonationEnded
    | DonationRefunded
    | RefundReversed
    | DonationDisputed
    | DisputeEnded
)


@dataclass(frozen=True)
class Outcome:
    """What a change did: `name` is what the webhook answers; `events` what it publishes (none
    when nothing changed); `refund` and `dispute` the record it adds or changes, if any."""

    name: str
    events: tuple[DonationEvent, ...] = ()
    refund: Refund | None = None
    dispute: Dispute | None = None

    @property
    def changed(self) -> bool:
        """Whether the donation changed (and is to be saved)."""
        return bool(self.events)


@dataclass
class Donation:
    """One gift to one campaign, from the checkout to its refunds and disputes."""

    id: str
    campaign_id: str
    # What the donor pays: the gift, plus the fee they chose to cover (fee_covered).
    amount: Money
    fee_covered: Money
    # The giving form's pricing, shown back to the donor: the meals they chose, or the whole
    # meals the amount pays at the meal price in force when they gave. Not a count of meals
    # funded: the ledger counts those (the campaign page shows its campaign_meals).
    priced_meals: int
    donor: Donor
    updates_opt_in: bool
    consent_at: datetime | None
    status: DonationStatus
    created_at: datetime
    amount_refunded: Money
    checkout_session_id: str | None = None
    checkout_url: str | None = None
    correlation_id: str | None = None
    anonymous: bool = False
    public_message: str | None = None
    show_message: bool = False
    # What an Idempotency-Key request asked for, so a retry with other content is refused.
    request_fingerprint: str | None = None
    payment_intent_id: str | None = None
    charge_id: str | None = None
    balance_transaction_id: str | None = None
    fee: int | None = None
    net: int | None = None
    succeeded_at: datetime | None = None
    ended_at: datetime | None = None

    @classmethod
    def start(
        cls,
        donation_id: str,
        campaign: Campaign,
        gift: Gift,
        priced: PricedGift,
        session: CheckoutSession,
        now: datetime,
    ) -> Donation:
        """A pending donation, once Stripe opened its checkout: consent is dated now when the
        donor asked for news, a message is shown only if there is one, and a request with an
        Idempotency-Key keeps what it asked for (so a retry that asks otherwise is refused)."""
        return cls(
            id=donation_id,
            campaign_id=campaign.id,
            amount=priced.total,
            fee_covered=priced.fee_covered,
            priced_meals=priced.priced_meals,
            donor=Donor(gift.donor_email, gift.donor_name, gift.locale),
            updates_opt_in=gift.updates_opt_in,
            consent_at=now if gift.updates_opt_in else None,
            status=DonationStatus.PENDING,
            created_at=now,
            amount_refunded=Money.zero(priced.total.currency),
            checkout_session_id=session.id,
            checkout_url=session.url,
            correlation_id=gift.correlation_id,
            anonymous=gift.anonymous,
            public_message=gift.public_message or None,
            show_message=bool(gift.show_message and gift.public_message),
            request_fingerprint=gift.fingerprint(),
        )

    @property
    def currency(self) -> str:
        """The currency of the gift (the campaign's)."""
        return self.amount.currency

    @property
    def is_pending(self) -> bool:
        """Still waiting for Stripe's word on the payment."""
        return self.status is DonationStatus.PENDING

    def _event_copy(self) -> Donation:
        return replace(self)

    def succeed(self, paid: CheckoutPaid, payment: PaymentFacts, now: datetime) -> Outcome:
        """Stripe says the checkout was paid: the donation succeeds once, with the charge, fee
        and net its balance transaction states (none of another payment's). A paid checkout
        wins over an earlier expiry or cancel: money did move."""
        if not self._amount_matches(paid):
            return Outcome("amount_mismatch")
        if self.status not in SUCCEEDS_FROM:
            return Outcome(f"already_{self.status.value}")
        described = payment.describes(self.amount)
        self.status = DonationStatus.SUCCEEDED
        self.succeeded_at = now
        self.payment_intent_id = paid.payment_intent_id
        self.charge_id = payment.charge_id
        self.balance_transaction_id = payment.balance_transaction_id
        self.fee, self.net = (payment.fee, payment.net) if described else (None, None)
        event = DonationSucceeded(self._event_copy(), paid.session_id, now)
        return Outcome(DonationStatus.SUCCEEDED.value, (event,))

    def _amount_matches(self, paid: CheckoutPaid) -> bool:
        total = paid.amount_total
        return total is None or (
            total == self.amount.amount and paid.currency in (None, self.currency)
        )

    def end_unpaid(self, status: DonationStatus, reason: str, now: datetime) -> Outcome:
        """A pending donation ends failed, expired or canceled; any other stays as it is."""
        if self.status not in ENDS_UNPAID_FROM:
            return Outcome(f"already_{self.status.value}")
        self.status = status
        self.ended_at = now
        return Outcome(status.value, (DonationEnded(self._event_copy(), reason, now),))

    def refund(self, report: RefundReported, now: datetime, counted_before: bool) -> Outcome:
        """Count a refund once (`counted_before`: its id is already counted), within what is
        left of the gift and in its currency; the whole gift refunded, it is refunded. A
        donation not paid yet makes the refund wait."""
        if self.status not in REFUNDABLE:
            return Outcome(WAITING)
        if counted_before:
            # charge.refunded and refund.* describe the same refund: counted once, by its id.
            return Outcome("already_refunded")
        currency = report.currency or self.currency
        total = self.amount_refunded.amount + report.amount
        if currency != self.currency or total > self.amount.amount:
            return Outcome("refund_mismatch")
        refund = Refund(report.refund_id, self.id, report.amount, currency, now)
        self.amount_refunded = Money(total, currency)
        fully = total >= self.amount.amount
        if fully:
            self.status = DonationStatus.REFUNDED
        event = DonationRefunded(self._event_copy(), report, now, record=refund)
        return Outcome("refunded" if fully else "partially_refunded", (event,), refund=refund)

    def refuse_refund(self, report: RefundReported, now: datetime) -> Refund:
        """A refund that failed before it was counted: remembered, so that it never counts."""
        currency = report.currency or self.currency
        return Refund(report.refund_id, self.id, report.amount, currency, now, REFUND_FAILED, now)

    def reverse_refund(self, refund: Refund, report: RefundReported, now: datetime) -> Outcome:
        """A counted refund failed or was canceled at Stripe: it is undone once (the amount
        refunded, a refunded donation back to succeeded)."""
        if refund.has_failed:
            return Outcome("refund_already_failed")
        failed = replace(refund, status=REFUND_FAILED, failed_at=now)
        left = max(0, self.amount_refunded.amount - refund.amount)
        self.amount_refunded = Money(left, self.currency)
        if self.status is DonationStatus.REFUNDED:
            self.status = DonationStatus.SUCCEEDED
        event = RefundReversed(self._event_copy(), report, now, record=failed)
        return Outcome("refund_reversed", (event,), refund=failed)

    def open_dispute(self, report: DisputeOpened, now: datetime) -> Outcome:
        """The donor's bank disputes the charge: the donation is disputed. A donation not paid
        yet makes the dispute wait."""
        if self.status not in REFUNDABLE:
            return Outcome(WAITING)
        currency = report.currency or self.currency
        dispute = Dispute(report.dispute_id, self.id, report.amount, currency, now)
        self.status = DonationStatus.DISPUTED
        event = DonationDisputed(self._event_copy(), report, now, record=dispute)
        return Outcome("dispute_opened", (event,), dispute=dispute)

    def close_dispute(self, dispute: Dispute, report: DisputeClosed, now: datetime) -> Outcome:
        """A dispute ends once, won or lost; won, the donation is back to what it was
        (refunded if the whole gift was refunded, else succeeded)."""
        if dispute.status != "open":
            return Outcome("already_closed")
        closed = replace(dispute, status=report.status, closed_at=now)
        if closed.status == "won" and self.status is DonationStatus.DISPUTED:
            whole = self.amount_refunded.amount >= self.amount.amount
            self.status = DonationStatus.REFUNDED if whole else DonationStatus.SUCCEEDED
        event = DisputeEnded(self._event_copy(), report, now, record=closed)
        return Outcome(f"dispute_{closed.status}", (event,), dispute=closed)


def succeeded_event_id(donation_id: str) -> str:
    """The id of a donation's succeeded event, the same however often it is produced, so
    that even a duplicated confirmation cannot be counted twice downstream."""
    return str(uuid.uuid5(_DONATION_EVENT_NAMESPACE, f"{donation_id}:succeeded"))


def derived_event_id(*parts: str) -> str:
    """A stable event id for one fact (a refund, a dispute's opening, a payout), so producing
    it twice publishes the same event id and consumers count it once."""
    return str(uuid.uuid5(_DONATION_EVENT_NAMESPACE, ":".join(parts)))


def donation_id_for_retry(idempotency_key: str, campaign_slug: str) -> str:
    """The donation id a retried request with the same Idempotency-Key gets again."""
    return str(
        uuid.uuid5(_DONATION_EVENT_NAMESPACE, f"idempotency:{campaign_slug}:{idempotency_key}")
    )
