"""Balanced journal entries: lines with a signed amount (debit positive, credit negative),
refused at construction unless they sum to zero in every currency.

Sign convention: a journal line carries a signed amount in integer minor units of one
currency. Debits are positive, credits are negative, so an entry balances when its lines sum
to zero in every currency. An asset account (money Stripe holds for us) grows with debits; a
fund account (what donors gave to a campaign, restricted to it) grows with credits, so its
balance is negative in the journal and shown positive in reports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.shared.money import Money


class EntryKind(StrEnum):
    """Why a journal entry was posted; one kind per business event, as finance staff name it."""

    DONATION = "donation"
    FEE_CHARGED_TO_FUND = "fee_charged_to_fund"
    REFUND = "refund"
    REFUND_FAILED = "refund_failed"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"
    PAYOUT = "payout"
    PROGRAMME_FUNDED = "programme_funded"
    DIFT_DIRECTED = "dift_directed"
    DIFT_EXPIRED = "dift_expired"
    PROGRAMME_CREDITED_BACK = "programme_credited_back"


class UnbalancedEntry(ValueError):
    """A journal entry whose debits and credits differ in some currency."""


@dataclass(frozen=True, slots=True)
class JournalLine:
    """One leg of an entry: a signed amount (debit positive, credit negative) on an account."""

    account: str
    amount: Money

    def __post_init__(self) -> None:
        if not self.account:
            raise ValueError("a journal line needs an account")
        if self.amount.amount == 0:
            raise ValueError("a journal line of zero moves nothing; leave it out")

    @property
    def is_debit(self) -> bool:
        """True for a debit (positive) line."""
        return self.amount.amount > 0


def debit(account: str, amount: Money) -> JournalLine:
    """A debit of a positive `amount` on `account`."""
    if not amount.is_positive():
        raise ValueError("debit a positive amount")
    return JournalLine(account, amount)


def credit(account: str, amount: Money) -> JournalLine:
    """A credit of a positive `amount` on `account` (stored as a negative line)."""
    if not amount.is_positive():
        raise ValueError("credit a positive amount")
    return JournalLine(account, -amount)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A balanced set of lines posted together; refused at construction if unbalanced."""

    kind: EntryKind
    description: str
    effective_at: datetime
    lines: tuple[JournalLine, ...]

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise UnbalancedEntry("an entry needs at least two lines")
        totals: dict[str, int] = defaultdict(int)
        for line in self.lines:
            totals[line.amount.currency] += line.amount.amount
        off = {currency: total for currency, total in totals.items() if total != 0}
        if off:
            raise UnbalancedEntry(f"debits and credits differ by {off} (minor units)")


def legs(*amounts: tuple[str, Money]) -> tuple[JournalLine, ...]:
    """Signed legs (debit positive) as journal lines, leaving out the legs of zero."""
    return tuple(JournalLine(account, amount) for account, amount in amounts if amount.amount != 0)


def reversal_entry(
    kind: EntryKind,
    reversed_lines: Sequence[JournalLine],
    effective_at: datetime,
    description: str,
) -> JournalEntry:
    """An entry that undoes another one (the journal is append-only): each of its lines with
    the sign turned, so the two together move nothing."""
    return JournalEntry(
        kind=kind,
        description=description,
        effective_at=effective_at,
        lines=tuple(JournalLine(line.account, -line.amount) for line in reversed_lines),
    )


@dataclass(frozen=True, slots=True)
class EntryReferences:
    """What a journal entry is about, for finance staff to find it and reconciliation to match
    it: the event that caused it, the campaign and gift, the payment finance staff reconcile
    against (`stripe_reference`: payment intent, else checkout session), and Stripe's objects:
    the one the entry books (charge, refund, dispute or payout), the charge it belongs to and
    the balance transaction."""

    event_id: str
    campaign_id: str | None
    donation_id: str | None = None
    stripe_reference: str | None = None
    stripe_object_id: str | None = None
    charge_id: str | None = None
    balance_transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class PostedEntry:
    """An entry as the journal holds it: its id, its kind and the Stripe objects it booked."""

    id: int
    kind: str
    stripe_object_id: str | None
    charge_id: str | None
