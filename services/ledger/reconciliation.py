"""Reconciliation: Stripe's balance transactions against the journal.

`reconcile` is pure: it matches each Stripe balance transaction to the journal entries that
booked it (by balance transaction id, else by the Stripe object it moved money for: charge,
refund, dispute or payout) and compares what each side says moved through the Stripe balance.
`StripeBalance` lists the balance transactions through the stripe library, every page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy import Connection, func, select

from .domain import BANK, STRIPE_CLEARING
from .store import journal_entries, journal_lines, payout_items, utc

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class StripeMovement:
    """One Stripe balance transaction: its net effect on our Stripe balance."""

    id: str
    type: str
    source: str | None
    currency: str
    amount: int
    fee: int
    net: int
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


# --- the two sides -------------------------------------------------------------------------------


def ledger_movements(
    conn: Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    payout_id: str | None = None,
    referencing: set[str] | None = None,
) -> list[LedgerMovement]:
    """The journal entries that moved Stripe clearing, in a period (by effective date, or the
    original date of a late entry), settled by a payout (its balance transactions), or that
    reference some Stripe ids (balance transactions or objects)."""
    net = func.sum(journal_lines.c.amount).label("net")
    statement = (
        select(
            journal_entries.c.id,
            journal_entries.c.kind,
            journal_entries.c.stripe_object_id,
            journal_entries.c.balance_transaction_id,
            journal_entries.c.effective_at,
            journal_entries.c.original_effective_at,
            journal_lines.c.currency,
            net,
        )
        .join(journal_lines, journal_lines.c.entry_id == journal_entries.c.id)
        .where(journal_lines.c.account == STRIPE_CLEARING)
        .group_by(journal_entries.c.id, journal_lines.c.currency)
        .order_by(journal_entries.c.effective_at, journal_entries.c.id)
    )
    dated = func.coalesce(journal_entries.c.original_effective_at, journal_entries.c.effective_at)
    if since is not None:
        statement = statement.where(dated >= utc(since))
    if until is not None:
        statement = statement.where(dated < utc(until))
    if payout_id is not None:
        settled = select(payout_items.c.balance_transaction_id).where(
            payout_items.c.payout_id == payout_id
        )
        statement = statement.where(
            journal_entries.c.balance_transaction_id.in_(settled),
            journal_entries.c.kind != "payout",
        )
    if referencing is not None:
        ids = sorted(referencing)
        statement = statement.where(
            journal_entries.c.balance_transaction_id.in_(ids)
            | journal_entries.c.stripe_object_id.in_(ids)
        )
    return [
        LedgerMovement(
            entry_id=row.id,
            kind=row.kind,
            stripe_object_id=row.stripe_object_id,
            balance_transaction_id=row.balance_transaction_id,
            currency=row.currency,
            net=int(row.net),
            effective_at=utc(row.original_effective_at or row.effective_at),
        )
        for row in conn.execute(statement)
    ]


class StripeBalance:
    """Stripe's balance transactions through the stripe library (stripe-mock in tests)."""

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
        """Every balance transaction of a period or a payout, page after page."""
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
        page = self.client.v1.balance_transactions.list(params=params)  # type: ignore[arg-type]
        for count, txn in enumerate(page.auto_paging_iter(), start=1):
            if progress is not None and count % 100 == 0:
                progress(count)
            source: Any = txn.source
            yield StripeMovement(
                id=txn.id,
                type=txn.type,
                source=source if isinstance(source, str) else getattr(source, "id", None),
                currency=str(txn.currency).upper(),
                amount=int(txn.amount),
                fee=int(txn.fee),
                net=int(txn.net),
                created=datetime.fromtimestamp(int(txn.created), tz=UTC),
            )


def reconcile_period(
    conn: Connection,
    stripe_balance: StripeBalance,
    since: datetime,
    until: datetime,
    progress: Progress | None = None,
) -> ReconciliationReport:
    """Reconcile every Stripe balance transaction created in [since, until) with the entries
    dated in it."""
    stripe_side = list(stripe_balance.movements(since=since, until=until, progress=progress))
    ledger_side = ledger_movements(conn, since=since, until=until)
    return reconcile(f"{since.isoformat()} to {until.isoformat()}", stripe_side, ledger_side)


def reconcile_payout(
    conn: Connection,
    stripe_balance: StripeBalance,
    payout_id: str,
    progress: Progress | None = None,
) -> ReconciliationReport:
    """Reconcile the balance transactions Stripe says a payout settled with the entries the
    ledger booked for them and for the payout."""
    stripe_side = [
        movement
        for movement in stripe_balance.movements(payout_id=payout_id, progress=progress)
        if movement.type != "payout"
    ]
    ledger_side = ledger_movements(conn, payout_id=payout_id)
    found = reconcile(f"payout {payout_id}", stripe_side, ledger_side)
    booked = conn.execute(
        select(func.coalesce(func.sum(journal_lines.c.amount), 0))
        .join(journal_entries, journal_entries.c.id == journal_lines.c.entry_id)
        .where(
            journal_entries.c.kind == "payout",
            journal_entries.c.stripe_object_id == payout_id,
            journal_lines.c.account == BANK,
        )
    ).scalar_one()
    settled = sum(found.stripe_total.values())
    found.payout = {
        "payout_id": payout_id,
        "booked": int(booked),
        "settled": settled,
        "difference": settled - int(booked),
    }
    return found
