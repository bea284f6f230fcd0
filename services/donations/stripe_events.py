"""Verified Stripe payloads as typed facts (domain/payments.py): the only place that reads
Stripe's dictionaries.

A signed body is still untrusted in its shape: Stripe's API versions move fields, and a body
signed with our secret can hold anything. `read_event` parses it with limits (size, depth,
number of values), checks every field the handlers use (type, length, range, no NUL, which
PostgreSQL text refuses), and answers one fact per event type, or raises `UnreadableEvent`
with the reason: the webhook keeps such an event for a person and changes nothing else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .domain.payments import (
    CheckoutAwaitingPayment,
    CheckoutPaid,
    CheckoutUnpaid,
    DisputeClosed,
    DisputeFees,
    DisputeOpened,
    Fact,
    NotHandled,
    PaymentRef,
    PayoutPaid,
    ProgrammeCheckoutPaid,
    RefundReported,
    RefundsListed,
)

# Bigger bodies are refused before their signature is checked (Stripe's events are far
# smaller; a charge listing many refunds is the largest we expect).
MAX_BODY_BYTES = 512 * 1024
MAX_DEPTH = 32
MAX_VALUES = 20_000
# Every amount is stored in an INTEGER column: more than this is not a real payment here.
MAX_MINOR_UNITS = 2**31 - 1
MAX_ID_LENGTH = 255
MAX_TYPE_LENGTH = 100
# Stripe's timestamps are Unix seconds; the last second of year 9999 bounds a datetime.
MAX_TIMESTAMP = 253_402_300_799
_DONATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")

CHECKOUT_COMPLETED = "checkout.session.completed"
CHECKOUT_PAID = "checkout.session.async_payment_succeeded"
CHECKOUT_FAILED = "checkout.session.async_payment_failed"
CHECKOUT_EXPIRED = "checkout.session.expired"
CHARGE_REFUNDED = "charge.refunded"
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
DISPUTE_CREATED = "charge.dispute.created"
DISPUTE_CLOSED = "charge.dispute.closed"
PAYOUT_PAID = "payout.paid"
HANDLED_TYPES = frozenset(
    {
        CHECKOUT_COMPLETED,
        CHECKOUT_PAID,
        CHECKOUT_FAILED,
        CHECKOUT_EXPIRED,
        CHARGE_REFUNDED,
        DISPUTE_CREATED,
        DISPUTE_CLOSED,
        PAYOUT_PAID,
        *REFUND_EVENTS,
    }
)


class UnreadableEvent(ValueError):
    """A signed body that is not a Stripe event we can read; `reason` says what is wrong."""

    def __init__(self, reason: str, event_id: str | None = None, event_type: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.event_type = event_type


@dataclass(frozen=True)
class StripeEvent:
    """A verified, readable Stripe event: its id, its type and what it says."""

    id: str
    type: str
    fact: Fact
    payload: dict[str, Any]


# --- reading --------------------------------------------------------------------------------


def parse_body(payload: bytes) -> Any:
    """The body as JSON, within the size, depth and value-count limits."""
    if len(payload) > MAX_BODY_BYTES:
        raise UnreadableEvent(f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(payload)
    except RecursionError as error:
        raise UnreadableEvent(f"the body is nested more than {MAX_DEPTH} levels deep") from error
    except (UnicodeDecodeError, ValueError) as error:
        raise UnreadableEvent(f"the body is not JSON: {error}") from error
    _check_shape(body)
    return body


def _check_shape(body: Any) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH or holding more than MAX_VALUES values, so no
    later step (storing, logging, reading) walks something unbounded."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if depth > MAX_DEPTH:
            raise UnreadableEvent(f"the body is nested more than {MAX_DEPTH} levels deep")
        if seen > MAX_VALUES:
            raise UnreadableEvent(f"the body holds more than {MAX_VALUES} values")
        if isinstance(value, dict):
            stack.extend((inner, depth + 1) for inner in value.values())
        elif isinstance(value, list):
            stack.extend((inner, depth + 1) for inner in value)


def read_event(payload: bytes) -> StripeEvent:
    """A verified body as a Stripe event and its fact; UnreadableEvent if it cannot be."""
    return read_parsed(parse_body(payload))


def read_parsed(body: Any) -> StripeEvent:
    """An event already parsed from JSON (a kept event, say) as its fact."""
    if not isinstance(body, dict):
        raise UnreadableEvent(f"the body is a JSON {_json_type(body)}, not an event object")
    event_id = _plain_text(body.get("id"), MAX_ID_LENGTH)
    event_type = _plain_text(body.get("type"), MAX_TYPE_LENGTH)
    if event_id is None:
        raise UnreadableEvent("the event has no usable id (a string of 1 to 255 characters)")
    if event_type is None:
        raise UnreadableEvent("the event has no usable type", event_id)
    if event_type not in HANDLED_TYPES:
        return StripeEvent(event_id, event_type, NotHandled(), body)
    try:
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
            raise UnreadableEvent("data.object is not an object")
        fact = _READERS[_reader_of(event_type)](event_type, _Fields(data["object"], "data.object"))
    except UnreadableEvent as error:
        raise UnreadableEvent(error.reason, event_id, event_type) from error
    return StripeEvent(event_id, event_type, fact, body)


def _reader_of(event_type: str) -> str:
    if event_type in REFUND_EVENTS:
        return "refund"
    return event_type


class _Fields:
    """One Stripe object's fields, read with their expected types; a wrong one is named."""

    def __init__(self, obj: dict[str, Any], path: str) -> None:
        self.obj = obj
        self.path = path

    def _wrong(self, name: str, expected: str) -> UnreadableEvent:
        value = self.obj.get(name)
        return UnreadableEvent(f"{self.path}.{name} is a {_json_type(value)}, not {expected}")

    def id(self, name: str, required: bool = False) -> str | None:
        """A Stripe id, given as a string or as an expanded object with an id."""
        value = self.obj.get(name)
        if isinstance(value, dict):
            value = value.get("id")
        if value is None and not required:
            return None
        found = _plain_text(value, MAX_ID_LENGTH)
        if found is None:
            raise self._wrong(name, "an id (1 to 255 characters)")
        return found

    def amount(self, name: str, required: bool = False, minimum: int = 0) -> int | None:
        """An amount in minor units: an integer within what the books store."""
        value = self.obj.get(name)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(name, "an integer of minor units")
        if not minimum <= value <= MAX_MINOR_UNITS:
            raise UnreadableEvent(
                f"{self.path}.{name} is {value}, outside {minimum}..{MAX_MINOR_UNITS}"
            )
        return value

    def signed_amount(self, name: str) -> int:
        """A fee that may be negative (given back), defaulting to 0."""
        value = self.obj.get(name)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(name, "an integer of minor units")
        if abs(value) > MAX_MINOR_UNITS:
            raise UnreadableEvent(f"{self.path}.{name} is {value}, out of range")
        return value

    def currency(self, name: str = "currency", required: bool = False) -> str | None:
        """An ISO 4217 code, upper case (whether difts accepts it is the events' business)."""
        value = self.obj.get(name)
        if value is None or (value == "" and not required):
            if required:
                raise self._wrong(name, "a currency code")
            return None
        if not isinstance(value, str) or not _CURRENCY.match(value):
            raise self._wrong(name, "a three-letter currency code")
        return value.upper()

    def text(self, name: str, limit: int = 500) -> str | None:
        """A short text (a status, a reason), without control characters."""
        value = self.obj.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._wrong(name, "a string")
        return "".join(ch for ch in value[:limit] if ch.isprintable())

    def metadata(self) -> dict[str, Any]:
        """The object's metadata (an object of strings), empty when absent."""
        value = self.obj.get("metadata")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._wrong("metadata", "an object")
        return value

    def donation_id(self, fallback: str | None = None) -> str | None:
        """The difts donation id in the metadata (else in the `fallback` field): a string of
        our ids' shape, so a foreign or forged value never reaches a column it does not fit."""
        candidates = [("metadata.donation_id", self.metadata().get("donation_id"))]
        if fallback:
            candidates.append((fallback, self.obj.get(fallback)))
        for where, value in candidates:
            if value is None or value == "":
                continue
            if not isinstance(value, str) or not _DONATION_ID.match(value):
                raise UnreadableEvent(f"{self.path}.{where} is not a difts donation id")
            return value
        return None

    def objects(self, name: str) -> list[_Fields]:
        """A list of objects (absent: empty)."""
        value = self.obj.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(name, "a list")
        found = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise UnreadableEvent(f"{self.path}.{name}[{index}] is not an object")
            found.append(_Fields(item, f"{self.path}.{name}[{index}]"))
        return found

    def timestamp(self, name: str) -> datetime | None:
        """Unix seconds as an aware datetime."""
        value = self.obj.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(name, "Unix seconds")
        if not 0 <= value <= MAX_TIMESTAMP:
            raise UnreadableEvent(f"{self.path}.{name} is {value}, not a date")
        return datetime.fromtimestamp(value, UTC)


def _programme_checkout(event_type: str, session: _Fields, programme_id: Any) -> Fact:
    """A session that pays a programme's budget: only its payment matters (an unpaid or
    expired one funds nothing, and nothing waits for it)."""
    if not isinstance(programme_id, str) or not _DONATION_ID.match(programme_id):
        raise UnreadableEvent(f"{session.path}.metadata.programme_id is not a difts programme id")
    payment_status = session.text("payment_status", limit=30)
    if event_type not in (CHECKOUT_COMPLETED, CHECKOUT_PAID):
        return NotHandled()
    if event_type == CHECKOUT_COMPLETED and payment_status not in ("paid", "no_payment_required"):
        return NotHandled()  # SEPA debit: async_payment_succeeded follows
    return ProgrammeCheckoutPaid(
        programme_id=programme_id,
        session_id=session.id("id"),
        payment_intent_id=session.id("payment_intent"),
        amount_total=session.amount("amount_total"),
        currency=session.currency(),
    )


def _checkout(event_type: str, session: _Fields) -> Fact:
    programme_id = session.metadata().get("programme_id")
    if programme_id not in (None, ""):
        return _programme_checkout(event_type, session, programme_id)
    donation_id = session.donation_id("client_reference_id")
    payment_status = session.text("payment_status", limit=30)
    if event_type == CHECKOUT_FAILED:
        return CheckoutUnpaid(donation_id, "failed", "payment failed")
    if event_type == CHECKOUT_EXPIRED:
        return CheckoutUnpaid(donation_id, "expired", "checkout session expired")
    if event_type == CHECKOUT_COMPLETED and payment_status not in ("paid", "no_payment_required"):
        # Delayed payment methods: async_payment_succeeded or _failed will follow.
        return CheckoutAwaitingPayment(donation_id)
    return CheckoutPaid(
        donation_id=donation_id,
        session_id=session.id("id"),
        payment_intent_id=session.id("payment_intent"),
        amount_total=session.amount("amount_total"),
        currency=session.currency(),
    )


def _refund(refund: _Fields, charge: _Fields | None = None) -> RefundReported:
    donation_id = refund.donation_id() or (charge.donation_id() if charge else None)
    return RefundReported(
        refund_id=str(refund.id("id", required=True)),
        amount=int(refund.amount("amount", required=True, minimum=1) or 0),
        currency=refund.currency() or (charge.currency() if charge else None),
        status=refund.text("status", limit=30),
        payment=PaymentRef(
            payment_intent_id=refund.id("payment_intent")
            or (charge.id("payment_intent") if charge else None),
            charge_id=refund.id("charge") or (charge.id("id") if charge else None),
            donation_id=donation_id,
        ),
        balance_transaction_id=refund.id("balance_transaction"),
        failure_balance_transaction_id=refund.id("failure_balance_transaction"),
    )


def _refund_event(_event_type: str, refund: _Fields) -> Fact:
    return _refund(refund)


def _charge_refunded(_event_type: str, charge: _Fields) -> Fact:
    refunds = charge.obj.get("refunds")
    if refunds is None:
        # Newer API versions leave the list out; every refund also arrives as refund.created.
        return RefundsListed(())
    if not isinstance(refunds, dict):
        raise charge._wrong("refunds", "a list object")
    listed = _Fields(refunds, f"{charge.path}.refunds").objects("data")
    return RefundsListed(tuple(_refund(item, charge) for item in listed))


def _dispute_fees(dispute: _Fields) -> DisputeFees:
    withdrawn = reinstated = 0
    latest = None
    for txn in dispute.objects("balance_transactions"):
        fee = txn.signed_amount("fee")
        if fee > 0:
            withdrawn += fee
        else:
            reinstated -= fee
        latest = txn.id("id")
    return DisputeFees(withdrawn, reinstated, latest)


def _dispute_created(_event_type: str, dispute: _Fields) -> Fact:
    return DisputeOpened(
        dispute_id=str(dispute.id("id", required=True)),
        amount=int(dispute.amount("amount", required=True, minimum=1) or 0),
        currency=dispute.currency(),
        payment=PaymentRef(
            payment_intent_id=dispute.id("payment_intent"),
            charge_id=dispute.id("charge"),
            donation_id=dispute.donation_id(),
        ),
        fees=_dispute_fees(dispute),
        reason=dispute.text("reason") or "",
    )


def _dispute_closed(_event_type: str, dispute: _Fields) -> Fact:
    return DisputeClosed(
        dispute_id=str(dispute.id("id", required=True)),
        status=dispute.text("status", limit=30) or "",
        charge_id=dispute.id("charge"),
        fees=_dispute_fees(dispute),
    )


def _payout_paid(_event_type: str, payout: _Fields) -> Fact:
    return PayoutPaid(
        payout_id=str(payout.id("id", required=True)),
        amount=int(payout.amount("amount", required=True) or 0),
        currency=str(payout.currency(required=True)),
        arrival_at=payout.timestamp("arrival_date"),
    )


_READERS = {
    CHECKOUT_COMPLETED: _checkout,
    CHECKOUT_PAID: _checkout,
    CHECKOUT_FAILED: _checkout,
    CHECKOUT_EXPIRED: _checkout,
    CHARGE_REFUNDED: _charge_refunded,
    "refund": _refund_event,
    DISPUTE_CREATED: _dispute_created,
    DISPUTE_CLOSED: _dispute_closed,
    PAYOUT_PAID: _payout_paid,
}


def _plain_text(value: Any, limit: int) -> str | None:
    """A non-empty string of at most `limit` printable characters, else None."""
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isprintable():
        return None
    return value


def _json_type(value: Any) -> str:
    """What JSON calls the value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def body_to_keep(payload: bytes) -> str:
    """A body as text a database column can keep for a person to read: undecodable bytes
    escaped, NUL written out (PostgreSQL text cannot hold it)."""
    return payload.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
