"""Stripe, as the donations service uses it: Checkout Sessions, what the balance says about a
payment or a payout (StripePayments, the handlers' payments port), and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

import stripe

from .domain.payments import (
    NO_FACTS,
    CheckoutRequest,
    CheckoutSession,
    PaymentFacts,
    PaymentProviderError,
)
from .domain.programmes import ProgrammeCheckout

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses


# Stripe's answers that say "not now" (unreachable, overloaded, failing): asking again later
# may get the facts. Any other refusal is an answer: the facts stay unknown.
TRANSIENT_ERRORS = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)

__all__ = [
    "TRANSIENT_ERRORS",
    "InvalidWebhook",
    "PaymentProviderError",
    "StripePayments",
    "checkout_session_params",
    "verify_signature",
]


class InvalidWebhook(ValueError):
    """A webhook whose signature, timestamp or body is not Stripe's."""


def checkout_session_params(checkout: CheckoutRequest) -> dict[str, Any]:
    """What we ask Stripe Checkout for: a donation (`submit_type=donate`) of the gift, with the
    donation and campaign ids (and the donor-covered fee) on the session and on the payment
    intent, hence on its charge: a finance re-sync can then book a payment whose webhook never
    arrived."""
    metadata = {
        "donation_id": checkout.donation_id,
        "campaign_id": checkout.campaign_id,
        "fee_covered": str(checkout.fee_covered.amount),
    }
    return {
        "mode": "payment",
        "submit_type": "donate",
        "client_reference_id": checkout.donation_id,
        "customer_email": checkout.donor_email,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": checkout.gift.currency.lower(),
                    "unit_amount": checkout.gift.amount,
                    "product_data": {"name": f"Donation to {checkout.campaign_title}"},
                },
            }
        ],
        "success_url": checkout.success_url,
        "cancel_url": checkout.cancel_url,
    }


def programme_session_params(checkout: ProgrammeCheckout) -> dict[str, Any]:
    """What we ask Stripe Checkout for to fund a programme: a payment by card or SEPA debit
    of the amount, with the programme id on the session and on the payment intent (so the
    webhook and a finance re-sync know which programme it funds)."""
    metadata = {"programme_id": checkout.programme_id, "sponsor_id": checkout.sponsor_id}
    return {
        "mode": "payment",
        "payment_method_types": ["card", "sepa_debit"],
        "customer_email": checkout.contact_email,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": checkout.amount.currency.lower(),
                    "unit_amount": checkout.amount.amount,
                    "product_data": {"name": f"Difts programme: {checkout.programme_name}"},
                },
            }
        ],
        "success_url": checkout.success_url,
        "cancel_url": checkout.cancel_url,
    }


def _id_of(value: Any) -> str | None:
    """The id of an expandable Stripe field: the string itself, or the object's id."""
    if value is None or isinstance(value, str):
        return value
    return str(getattr(value, "id", "")) or None


class StripePayments:
    """Stripe through the stripe library (stripe-mock locally): opens Checkout Sessions, and
    reads what balance transactions say about a payment or a payout (stripe-mock answers with
    its fixture values: fee 0, net 100, whatever the payment)."""

    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        base: BaseAddresses | None = {"api": api_base} if api_base else None
        self.client = stripe.StripeClient(api_key, base_addresses=base, max_network_retries=2)

    def create_session(self, checkout: CheckoutRequest) -> CheckoutSession:
        """A one-off donation payment; Stripe's idempotency key is derived from the donation
        id, so a retried request never opens a second session."""
        try:
            session = self.client.v1.checkout.sessions.create(
                params=checkout_session_params(checkout),  # type: ignore[arg-type]
                options={"idempotency_key": f"checkout-{checkout.donation_id}"},
            )
        except stripe.StripeError as error:
            raise PaymentProviderError(str(error.user_message or error)) from error
        return CheckoutSession(id=session.id, url=session.url or "")

    def create_programme_session(self, checkout: ProgrammeCheckout) -> CheckoutSession:
        """A payment of a programme's budget; the idempotency key comes from the request, so
        a retried request never opens a second session."""
        try:
            session = self.client.v1.checkout.sessions.create(
                params=programme_session_params(checkout),  # type: ignore[arg-type]
                options={
                    "idempotency_key": f"programme-{checkout.programme_id}-{checkout.request_id}"
                },
            )
        except stripe.StripeError as error:
            raise PaymentProviderError(str(error.user_message or error)) from error
        return CheckoutSession(id=session.id, url=session.url or "")

    def payment_facts(self, payment_intent_id: str | None) -> PaymentFacts:
        """The charge and balance transaction of a paid payment intent; unknown parts are None.
        PaymentProviderError when Stripe cannot answer now (the applier asks again later)."""
        if not payment_intent_id:
            return NO_FACTS
        try:
            intent = self.client.v1.payment_intents.retrieve(
                payment_intent_id, params={"expand": ["latest_charge.balance_transaction"]}
            )
        except TRANSIENT_ERRORS as error:
            raise PaymentProviderError(str(error.user_message or error)) from error
        except stripe.StripeError:
            return NO_FACTS
        charge = intent.latest_charge
        if charge is None or isinstance(charge, str):
            return PaymentFacts(charge, None, None, None)
        if _id_of(getattr(charge, "payment_intent", None)) != payment_intent_id:
            # Not this payment's own charge (stripe-mock answers every intent with one fixture
            # charge): booking it would make every later gift look like a duplicate charge.
            return NO_FACTS
        txn = charge.balance_transaction
        if txn is None or isinstance(txn, str):
            return PaymentFacts(charge.id, txn, None, None)
        return PaymentFacts(
            charge.id,
            txn.id,
            int(txn.fee),
            int(txn.net),
            int(txn.amount),
            str(txn.currency).upper(),
        )

    def payout_transactions(self, payout_id: str) -> list[str]:
        """The balance transactions a payout settles (every page); PaymentProviderError when
        Stripe cannot answer now."""
        try:
            page = self.client.v1.balance_transactions.list(
                params={"payout": payout_id, "limit": 100}
            )
            return [txn.id for txn in page.auto_paging_iter()]
        except TRANSIENT_ERRORS as error:
            raise PaymentProviderError(str(error.user_message or error)) from error
        except stripe.StripeError:
            return []


def verify_signature(payload: bytes, signature: str | None, secret: str, tolerance: int) -> None:
    """Check the `Stripe-Signature` header over the raw body exactly as Stripe specifies
    (HMAC-SHA256 with the endpoint secret, timestamp within `tolerance` seconds), with the
    verification `stripe.Webhook.construct_event` runs before it parses. The body itself is
    read afterwards by stripe_events, which survives any shape a signed body may have."""
    if not signature:
        raise InvalidWebhook("missing Stripe-Signature header")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        # The stripe library verifies text only; a body that is not UTF-8 is still checked,
        # on its bytes, so a signed one can be kept as unreadable rather than refused.
        _verify_bytes(payload, signature, secret, tolerance)
        return
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as error:
        raise InvalidWebhook(
            f"signature verification failed: {error.user_message or error}"
        ) from error
    except (TypeError, ValueError) as error:
        raise InvalidWebhook("the Stripe-Signature header cannot be read") from error


def _verify_bytes(payload: bytes, signature: str, secret: str, tolerance: int) -> None:
    """Stripe's scheme on raw bytes: some v1 is HMAC-SHA256(secret, "<t>." + body)."""
    parts = [item.split("=", 1) for item in signature.split(",") if "=" in item]
    stamps = [value for key, value in parts if key.strip() == "t"]
    if not stamps or not stamps[0].strip().isdigit():
        raise InvalidWebhook("the Stripe-Signature header cannot be read")
    timestamp = int(stamps[0])
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    if not any(
        key.strip() == "v1" and hmac.compare_digest(value.strip(), expected) for key, value in parts
    ):
        raise InvalidWebhook("signature verification failed: no signature matches the body")
    if tolerance and timestamp < time.time() - tolerance:
        raise InvalidWebhook("signature verification failed: the timestamp is too old")
