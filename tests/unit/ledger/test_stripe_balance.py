"""The Stripe adapter on a fake of the stripe library's client: balance transactions as the
domain's values (every page, currencies in upper case, expanded sources by their id, times in
UTC) and the library's errors as StripeUnavailable (missing for Stripe's 404)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import stripe

from services.ledger.domain import BalanceQuery, StripeMovement, StripeUnavailable
from services.ledger.stripe_balance import BalanceTransactions

CREATED = 1_768_478_400  # 2026-01-15T12:00:00Z


class Pages:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def auto_paging_iter(self) -> Iterator[Any]:
        return iter(self.items)


def transaction(number: int, source: Any = "ch_1") -> SimpleNamespace:
    return SimpleNamespace(
        id=f"txn_{number}",
        type="charge",
        source=source,
        currency="eur",
        amount=2700,
        fee=64,
        net=2636,
        created=CREATED,
    )


def adapter(**v1: Any) -> BalanceTransactions:
    balance = BalanceTransactions("sk_test_123", "http://127.0.0.1:1")
    balance.client = SimpleNamespace(v1=SimpleNamespace(**v1))  # type: ignore[assignment]
    return balance


def test_balance_transactions_are_read_page_after_page_as_movements() -> None:
    asked: list[dict[str, Any]] = []
    items = [transaction(1, SimpleNamespace(id="ch_expanded"))] + [
        transaction(n) for n in range(2, 202)
    ]

    def listing(params: dict[str, Any]) -> Pages:
        asked.append(params)
        return Pages(items)

    heard: list[int] = []
    balance = adapter(balance_transactions=SimpleNamespace(list=listing))
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)

    found = list(balance.movements(BalanceQuery(since, until), heard.append))

    assert found[0] == StripeMovement(
        "txn_1",
        "charge",
        "ch_expanded",
        "EUR",
        2700,
        64,
        2636,
        datetime.fromtimestamp(CREATED, UTC),
    )
    assert len(found) == 201 and heard == [100, 200]
    assert asked == [
        {"limit": 100, "created": {"gte": int(since.timestamp()), "lt": int(until.timestamp())}}
    ]
    list(balance.movements(BalanceQuery(payout_id="po_1")))
    assert asked[-1] == {"limit": 100, "payout": "po_1"}


def test_stripe_not_knowing_an_object_or_not_answering_is_stripe_unavailable() -> None:
    def missing(_payout_id: str) -> Any:
        raise stripe.InvalidRequestError("No such payout: 'po_x'", "id", http_status=404)

    def down(params: dict[str, Any]) -> Any:
        raise stripe.APIConnectionError("connection refused")

    balance = adapter(
        payouts=SimpleNamespace(retrieve=missing),
        balance_transactions=SimpleNamespace(list=down),
    )

    with pytest.raises(StripeUnavailable) as unknown:
        balance.payout("po_x")
    assert unknown.value.missing and "No such payout" in unknown.value.said
    with pytest.raises(StripeUnavailable) as unreachable:
        list(balance.movements(BalanceQuery()))
    assert not unreachable.value.missing and "connection refused" in unreachable.value.said
