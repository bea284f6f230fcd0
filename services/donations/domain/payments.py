"""What the donations service asks of the payment processor and what it hears back, as typed
values: a checkout to open, what a balance transaction says about a payment, and the facts a
verified Stripe event reports (stripe_events.py reads Stripe's payloads into these; nothing
else looks inside Stripe's dictionaries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.shared.money import Money

# --- asking -----------------------------------------------------------------------------------


class PaymentProviderError(RuntimeError):
    """Stripe could not be reached or refused the request; nothing was charged (or, asked
    about a payment, nothing could be learnt now: ask again later)."""


@dataclass(frozen=True)
class CheckoutRequest:
    """A donation to pay on Stripe Checkout: `gift` is what the donor pays (the fee they cover
    included), `fee_covered` that fee; the URLs are where Stripe sends the donor back."""

    donation_id: str
    campaign_id: str
    campaign_title: str
    gift: Money
    fee_covered: Money
    donor_email: str
    success_url: str
    cancel_url: str


@dataclass(frozen=True)
class CheckoutSession:
    """What the donor's browser needs to pay, and the id Stripe's events will name."""

    id: str
    url: str


@dataclass(frozen=True)
class PaymentFacts:
    """What Stripe's balance transaction says about a payment: the charge, the processor's
    fee and what is left for the cause (minor units of the payment's currency)."""

    charge_id: str | None
    balance_transaction_id: str | None
    fee: int | None
    net: int | None
    # What the balance transaction itself is for, to check it describes this payment.
    amount: int | None = None
    currency: str | None = None

    def describes(self, payment: Money) -> bool:
        """False when the balance transaction is another payment's (stripe-mock answers every
        question with one fixture): its fee must not be booked against this gift."""
        return self.amount is None or (
            self.amount == payment.amount and self.currency == payment.currency
        )


NO_FACTS = PaymentFacts(None, None, None, None)


# --- what a verified Stripe event reports -----------------------------------------------------


@dataclass(frozen=True)
class PaymentRef:
    """How a refund or dispute names the payment it is about."""

    payment_intent_id: str | None
    charge_id: str | None
    donation_id: str | None = None

    @property
    def key(self) -> str | None:
        """What an event about this payment waits for while its donation is unknown."""
        return self.payment_intent_id or self.charge_id


@dataclass(frozen=True)
class CheckoutPaid:
    """A Checkout Session was paid (at once, or later for a delayed method)."""

    donation_id: str | None
    session_id: str | None
    payment_intent_id: str | None
    amount_total: int | None
    currency: str | None


@dataclass(frozen=True)
class ProgrammeCheckoutPaid:
    """A Checkout Session that pays a programme's budget (its metadata names the programme)
    was paid."""

    programme_id: str
    session_id: str | None
    payment_intent_id: str | None
    amount_total: int | None
    currency: str | None


@dataclass(frozen=True)
class CheckoutAwaitingPayment:
    """A Checkout Session completed with a delayed payment method: the outcome comes later."""

    donation_id: str | None


@dataclass(frozen=True)
class CheckoutUnpaid:
    """A Checkout Session ended without payment: `status` is "failed" or "expired"."""

    donation_id: str | None
    status: str
    reason: str


@dataclass(frozen=True)
class RefundReported:
    """One refund as Stripe describes it now (its status may still change)."""

    refund_id: str
    amount: int
    currency: str | None
    status: str | None
    payment: PaymentRef
    balance_transaction_id: str | None
    failure_balance_transaction_id: str | None

    @property
    def failed(self) -> bool:
        """A failed or canceled refund never gave the money back."""
        return self.status in ("failed", "canceled")

    @property
    def counts(self) -> bool:
        """A succeeded or pending refund (or one of an API version without a status)."""
        return self.status in (None, "succeeded", "pending")


@dataclass(frozen=True)
class RefundsListed:
    """charge.refunded: the refunds a charge lists (empty on API versions that omit them)."""

    refunds: tuple[RefundReported, ...]


@dataclass(frozen=True)
class DisputeFees:
    """What a dispute's balance transactions say: the fee withdrawn, the fee given back, and
    the latest transaction."""

    withdrawn: int
    reinstated: int
    balance_transaction_id: str | None


@dataclass(frozen=True)
class DisputeOpened:
    """The donor's bank disputes a charge."""

    dispute_id: str
    amount: int
    currency: str | None
    payment: PaymentRef
    fees: DisputeFees
    reason: str


@dataclass(frozen=True)
class DisputeClosed:
    """A dispute ended, or changed to a status that is not an end (`status` says which)."""

    dispute_id: str
    status: str
    charge_id: str | None
    fees: DisputeFees

    @property
    def ended(self) -> bool:
        """Won or lost: the other statuses (under review, ...) change nothing."""
        return self.status in ("won", "lost")


@dataclass(frozen=True)
class PayoutPaid:
    """Stripe paid money out to the bank."""

    payout_id: str
    amount: int
    currency: str
    arrival_at: datetime | None


@dataclass(frozen=True)
class NotHandled:
    """An event type difts does not act on."""


Fact = (
    CheckoutPaid
    | ProgrammeCheckoutPaid
    | CheckoutAwaitingPayment
    | CheckoutUnpaid
    | RefundReported
    | RefundsListed
    | DisputeOpened
    | DisputeClosed
    | PayoutPaid
    | NotHandled
)
