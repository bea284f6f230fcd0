"""Stripe's side of the books, read through the stripe library (stripe-mock in tests): the
balance transactions of a period or a payout, every page, and the charges, refunds and
payouts behind them, as the domain's values (domain.reconciliation). The only module of the
ledger that talks to Stripe; the library's errors leave it as StripeUnavailable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import stripe

from .config import Settings
from .domain import (
    BalanceQuery,
    StripeCharge,
    StripeMovement,
    StripePayout,
    StripeRefund,
    StripeUnavailable,
)

Progress = Callable[[int], None]


def _moment(timestamp: Any) -> datetime:
    return datetime.fromtimestamp(int(timestamp), tz=UTC)


def _currency(code: Any) -> str:
    return str(code).upper()


def _id_of(value: Any) -> str | None:
    """A Stripe reference as its id, whether Stripe sent the id or the expanded object."""
    return value if isinstance(value, str) else getattr(value, "id", None)


@contextmanager
def _asking_stripe() -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as error:
        said = error.user_message or str(error)
        missing = isinstance(error, stripe.InvalidRequestError) and error.http_status == 404
        raise StripeUnavailable(str(error), said, missing=missing) from error


class BalanceTransactions:
    """Stripe's balance transactions, and what they moved money for, of one Stripe account."""

    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        base: Any = {"api": api_base} if api_base else None
        self.client = stripe.StripeClient(api_key, base_addresses=base, max_network_retries=2)

    @classmethod
    def of(cls, settings: Settings) -> BalanceTransactions:
        """The Stripe account the ledger's settings name (stripe-mock locally)."""
        return cls(settings.stripe_api_key, settings.stripe_api_base or None)

    def movements(
        self, which: BalanceQuery, progress: Progress | None = None
    ) -> Iterator[StripeMovement]:
        """Every balance transaction created in [since, until), or settled by a payout, page
        after page (`progress` hears every hundredth)."""
        params: dict[str, Any] = {"limit": 100}
        created: dict[str, int] = {}
        if which.since is not None:
            created["gte"] = int(which.since.timestamp())
        if which.until is not None:
            created["lt"] = int(which.until.timestamp())
        if created:
            params["created"] = created
        if which.payout_id is not None:
            params["payout"] = which.payout_id
        with _asking_stripe():
            page = self.client.v1.balance_transactions.list(params=params)  # type: ignore[arg-type]
            for count, txn in enumerate(page.auto_paging_iter(), start=1):
                if progress is not None and count % 100 == 0:
                    progress(count)
                yield self._movement(txn)

    def movement(self, balance_transaction_id: str) -> StripeMovement:
        """One balance transaction."""
        return self._movement(self._retrieve("balance_transactions", balance_transaction_id))

    def _retrieve(self, resource: str, object_id: str) -> Any:
        with _asking_stripe():
            return getattr(self.client.v1, resource).retrieve(object_id)

    @staticmethod
    def _movement(txn: Any) -> StripeMovement:
        return StripeMovement(
            id=txn.id,
            type=txn.type,
            source=_id_of(txn.source),
            currency=_currency(txn.currency),
            amount=int(txn.amount),
            fee=int(txn.fee),
            net=int(txn.net),
            created=_moment(txn.created),
        )

    def charge(self, charge_id: str) -> StripeCharge:
        """One charge, with the metadata Checkout put on it."""
        charge = self._retrieve("charges", charge_id)
        return StripeCharge(
            id=charge_id,
            amount=int(charge.amount),
            currency=_currency(charge.currency),
            metadata=charge.metadata.to_dict() if charge.metadata else {},
            email=charge.receipt_email or getattr(charge.billing_details, "email", None),
            payment_intent=charge.payment_intent
            if isinstance(charge.payment_intent, str)
            else None,
            created=_moment(charge.created),
        )

    def refund(self, refund_id: str) -> StripeRefund:
        """One refund, and the charge it gives back."""
        refund = self._retrieve("refunds", refund_id)
        charge = refund.charge if isinstance(refund.charge, str) else None
        return StripeRefund(refund_id, int(refund.amount), charge)

    def payout(self, payout_id: str) -> StripePayout:
        """One payout to the bank."""
        payout = self._retrieve("payouts", payout_id)
        arrival = _moment(payout.arrival_date)
        return StripePayout(payout_id, int(payout.amount), _currency(payout.currency), arrival)
