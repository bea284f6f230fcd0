"""Reconciliation: Stripe's balance transactions against the journal.

`reconcile` matches each Stripe balance transaction to the journal entry that booked it (by
balance transaction id, else by the Stripe object it moved money for: charge, refund, dispute
or payout) and compares what each side says moved through the Stripe balance. Both sides come
in as values: Stripe's through stripe_balance.py, the ledger's from the journal's repository.
What Stripe says of the objects behind its movements (charges, refunds, payouts) is here too,
for re-sync to rebuild what the ledger missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StripeMovement:
    """One Stripe balance transaction: its net effect on our Stripe balance."""

    id: str
    type: str
    source: str | None
    """The charge, refund, dispute or payout it moved money for."""
    currency: str
    amount: int
    fee: int
    net: int
    """What reached (or left) the balance: the amount less Stripe's fee."""
    created: datetime


@dataclass(frozen=True)
class LedgerMovement:
    """One journal entry's effect on Stripe clearing (the ledger's view of the balance)."""

    entry_id: int
    kind: str
    stripe_object_id: str | None
    balance_transaction_id: str | None
    currency: str
    net: int
    effective_at: datetime


@dataclass
class ReconciliationReport:
    """What matched, what differs, and what only one side knows; balanced only when nothing
    is off."""

    scope: str
    matched: list[dict[str, Any]] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    only_in_stripe: list[dict[str, Any]] = field(default_factory=list)
    only_in_ledger: list[dict[str, Any]] = field(default_factory=list)
    stripe_total: dict[str, int] = field(default_factory=dict)
    ledger_total: dict[str, int] = field(default_factory=dict)
    # For a payout: the amount the ledger booked to the bank against what it settled.
    payout: dict[str, Any] | None = None

    @property
    def balanced(self) -> bool:
        """True only when every movement matched to the cent on both sides (and, for a
        payout, the payout the ledger booked equals the total it settled)."""
        payout_off = self.payout is not None and self.payout["difference"] != 0
        return not (
            self.mismatched or self.only_in_stripe or self.only_in_ledger or payout_off
        ) and (self.stripe_total == self.ledger_total)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON types."""
        body = asdict(self)
        body["balanced"] = self.balanced
        body["summary"] = {
            "matched": len(self.matched),
            "mismatched": len(self.mismatched),
            "mismatched_difference": sum(m["difference"] for m in self.mismatched),
            "only_in_stripe": len(self.only_in_stripe),
            "only_in_stripe_total": sum(m["net"] for m in self.only_in_stripe),
            "only_in_ledger": len(self.only_in_ledger),
            "only_in_ledger_total": sum(m["net"] for m in self.only_in_ledger),
        }
        return _jsonable(body)

    def to_text(self) -> str:
        """The report as finance staff read it in a terminal."""
        body = self.to_dict()
        lines = [
            f"Reconciliation of {self.scope}: {'BALANCED' if self.balanced else 'NOT BALANCED'}"
        ]
        for currency in sorted(set(self.stripe_total) | set(self.ledger_total)):
            stripe_side = self.stripe_total.get(currency, 0)
            ledger_side = self.ledger_total.get(currency, 0)
            lines.append(
                f"  {currency}: Stripe {stripe_side}, ledger {ledger_side}, "
                f"difference {stripe_side - ledger_side} (minor units)"
            )
        if self.payout is not None:
            lines.append(
                f"  payout booked to the bank: {self.payout['booked']}, settled by it: "
                f"{self.payout['settled']}, difference {self.payout['difference']}"
            )
        lines.append(f"  matched: {len(self.matched)}")
        for title, rows in (
            ("amount mismatches", self.mismatched),
            ("only in Stripe (never booked)", self.only_in_stripe),
            ("only in the ledger (unknown to Stripe)", self.only_in_ledger),
        ):
            lines.append(f"  {title}: {len(rows)}")
            lines.extend(f"    {row}" for row in body[_KEYS[title]])
        return "\n".join(lines)


_KEYS = {
    "amount mismatches": "mismatched",
    "only in Stripe (never booked)": "only_in_stripe",
    "only in the ledger (unknown to Stripe)": "only_in_ledger",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


@dataclass(frozen=True)
class BalanceQuery:
    """Which balance transactions, on Stripe's side and on the journal's: those created (or
    dated) in [since, until), or those a payout settled; all of them when nothing is said."""

    since: datetime | None = None
    until: datetime | None = None
    payout_id: str | None = None


def reconcile(
    scope: str, stripe_side: Iterable[StripeMovement], ledger_side: Iterable[LedgerMovement]
) -> ReconciliationReport:
    """Match Stripe's movements to the ledger's: first by balance transaction id, then by the
    Stripe object (a charge, refund, dispute or payout; a dispute's withdrawal and
    reinstatement are told apart by their sign). Compare the nets of each match."""
    report = ReconciliationReport(scope)
    ledger = list(ledger_side)
    by_txn = {m.balance_transaction_id: m for m in ledger if m.balance_transaction_id}
    used: set[int] = set()
    for movement in stripe_side:
        report.stripe_total[movement.currency] = (
            report.stripe_total.get(movement.currency, 0) + movement.net
        )
        found = by_txn.get(movement.id)
        if found is None or found.entry_id in used:
            found = next(
                (
                    m
                    for m in ledger
                    if m.entry_id not in used
                    and m.stripe_object_id == movement.source
                    and m.currency == movement.currency
                    and (m.net >= 0) == (movement.net >= 0)
                ),
                None,
            )
        row = {
            "balance_transaction": movement.id,
            "type": movement.type,
            "source": movement.source,
            "currency": movement.currency,
            "net": movement.net,
            "created": movement.created,
        }
        if found is None:
            report.only_in_stripe.append(row)
            continue
        used.add(found.entry_id)
        row |= {"entry_id": found.entry_id, "kind": found.kind, "ledger_net": found.net}
        if found.net != movement.net or found.currency != movement.currency:
            report.mismatched.append(row | {"difference": movement.net - found.net})
        else:
            report.matched.append(row)
    for booked in ledger:
        report.ledger_total[booked.currency] = (
            report.ledger_total.get(booked.currency, 0) + booked.net
        )
        if booked.entry_id not in used:
            report.only_in_ledger.append(
                {
                    "entry_id": booked.entry_id,
                    "kind": booked.kind,
                    "stripe_object_id": booked.stripe_object_id,
                    "balance_transaction": booked.balance_transaction_id,
                    "currency": booked.currency,
                    "net": booked.net,
                    "effective_at": booked.effective_at,
                }
            )
    return report


def settle_payout(report: ReconciliationReport, payout_id: str, booked: int) -> None:
    """Add to a payout's report the amount the ledger booked to the bank for it against the
    total of the balance transactions it settled (Stripe's side of the report)."""
    settled = sum(report.stripe_total.values())
    report.payout = {
        "payout_id": payout_id,
        "booked": booked,
        "settled": settled,
        "difference": settled - booked,
    }


# --- what Stripe says of the objects behind its movements --------------------------------------


class StripeUnavailable(Exception):
    """Stripe could not be asked, or refused: `said` is its message for people, `missing` that
    it knows no such object."""

    def __init__(self, message: str, said: str, missing: bool = False) -> None:
        super().__init__(message)
        self.said = said
        self.missing = missing


@dataclass(frozen=True)
class StripeCharge:
    """A charge: what the donor paid, the metadata Checkout put on it (donation and campaign
    ids, the donor-covered fee), the donor's address and payment intent, when it was made."""

    id: str
    amount: int
    currency: str
    metadata: dict[str, Any]
    email: str | None
    payment_intent: str | None
    created: datetime


@dataclass(frozen=True)
class StripeRefund:
    """A refund: how much, of which charge."""

    id: str
    amount: int
    charge_id: str | None


@dataclass(frozen=True)
class StripePayout:
    """A payout: how much went to the bank, when it arrives."""

    id: str
    amount: int
    currency: str
    arrival_date: datetime
