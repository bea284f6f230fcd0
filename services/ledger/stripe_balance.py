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

from .domain import StripeCharge, StripeMovement, StripePayout, StripeRefund, StripeUnavailable

Progress = Callable[[int], None]


def _moment(timestamp: Any) -> datetime:
    return datetime.fromtimestamp(int(timestamp), tz=UTC)


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

    def movements(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        payout_id: str | None = None,
        progress: Progress | None = None,
    ) -> Iterator[StripeMovement]:
        """Every balance transaction created in [since, until), or settled by a payout, page
        after page (`progress` hears every hundredth)."""
        params: dict[str, Any] = {"limit": 100}
        created: dict[str, int] = {}
        if since is not None:
            created["gte"] = int(since.timestamp())
        if until is not None:
            created["lt"] = int(until.timestamp())
        if created:
            params["created"] = created
        if payout_id is not None:
            params["payout"] = payout_id
        with _asking_stripe():
            page = self.client.v1.balance_transactions.list(params=params)  # type: ignore[arg-type]
            for count, txn in enumerate(page.auto_paging_iter(), start=1):
                if progress is not None and count % 100 == 0:
                    progress(count)
                yield self._movement(txn)

    def movement(self, balance_transaction_id: str) -> StripeMovement:
        """One balance transaction."""
        with _asking_stripe():
            return self._movement(
                self.client.v1.balance_transactions.retrieve(balance_transaction_id)
            )

    @staticmethod
    def _movement(txn: Any) -> StripeMovement:
        return StripeMovement(
            id=txn.id,
            type=txn.type,
            source=_id_of(txn.source),
            currency=str(txn.currency).upper(),
            amount=int(txn.amount),
            fee=int(txn.fee),
            net=int(txn.net),
            created=_moment(txn.created),
        )

    def charge(self, charge_id: str) -> StripeCharge:
        """One charge, with the metadata Checkout put on it."""
        with _asking_stripe():
            charge = self.client.v1.charges.retrieve(charge_id)
        return StripeCharge(
            id=charge_id,
            amount=int(charge.amount),
            currency=str(charge.currency).upper(),
            metadata=charge.metadata.to_dict() if charge.metadata else {},
            email=charge.receipt_email or getattr(charge.billing_details, "email", None),
            payment_intent=charge.payment_intent
            if isinstance(charge.payment_intent, str)
            else None,
            created=_moment(charge.created),
        )

    def refund(self, refund_id: str) -> StripeRefund:
        """One refund, and the charge it gives back."""
        with _asking_stripe():
            refund = self.client.v1.refunds.retrieve(refund_id)
        charge = refund.charge if isinstance(refund.charge, str) else None
        return StripeRefund(id=refund_id, amount=int(refund.amount), charge_id=charge)

    def payout(self, payout_id: str) -> StripePayout:
        """One payout to the bank."""
        with _asking_stripe():
            payout = self.client.v1.payouts.retrieve(payout_id)
        return StripePayout(
            id=payout_id,
            amount=int(payout.amount),
            currency=str(payout.currency).upper(),
            arrival_date=_moment(payout.arrival_date),
        )
