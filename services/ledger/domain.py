"""The ledger's rules, with no I/O: the chart of accounts, balanced journal entries, and how
money becomes meals.

Sign convention: a journal line carries a signed amount in integer minor units of one
currency. Debits are positive, credits are negative, so an entry balances when its lines sum
to zero in every currency. An asset account (money Stripe holds for us) grows with debits; a
fund account (what donors gave to a campaign, restricted to it) grows with credits, so its
balance is negative in the journal and shown positive in reports.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.shared.money import Money

# --- chart of accounts -------------------------------------------------------------------
# Account names are "<type>:<name>[:<id>]" so reports can group by type with a prefix.
# Fees ("expenses:processor-fees"), refunds and disputes (reversing entries on the same
# accounts) and payouts ("assets:bank") slot in here when those flows are booked.

STRIPE_CLEARING = "assets:stripe-clearing"
"""Money Stripe has collected for us and not yet paid out to the bank."""

_CAMPAIGN_FUND_PREFIX = "funds:campaign:"


def campaign_fund(campaign_id: str) -> str:
    """The restricted fund of one campaign: what donors gave to it and only it may spend."""
    if not campaign_id or ":" in campaign_id:
        raise ValueError(f"not a usable campaign id for an account name: {campaign_id!r}")
    return f"{_CAMPAIGN_FUND_PREFIX}{campaign_id}"


class EntryKind(StrEnum):
    """Why a journal entry was posted; one kind per business event, as finance staff name it."""

    DONATION = "donation"


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


def donation_entry(
    campaign_id: str, amount: Money, effective_at: datetime, description: str
) -> JournalEntry:
    """A confirmed gift: Stripe now holds the gross amount for us (debit clearing), and the
    campaign's restricted fund owes it to the cause (credit the fund)."""
    return JournalEntry(
        kind=EntryKind.DONATION,
        description=description,
        effective_at=effective_at,
        lines=(debit(STRIPE_CLEARING, amount), credit(campaign_fund(campaign_id), amount)),
    )


# --- meals ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MealTally:
    """A campaign's eligible cumulative amount and the meals it funds.

    meals funded = floor(eligible / meal price); the remainder is carried to the next gift,
    never rounded. The eligible amount is what was given minus what was given back.
    """

    eligible: Money
    meal_price: Money

    def __post_init__(self) -> None:
        if self.eligible.currency != self.meal_price.currency:
            raise ValueError("eligible amount and meal price must share a currency")
        if not self.meal_price.is_positive():
            raise ValueError("a meal price must be positive")

    @classmethod
    def empty(cls, meal_price: Money) -> MealTally:
        """A campaign nobody has given to yet."""
        return cls(Money.zero(meal_price.currency), meal_price)

    @property
    def meals_funded(self) -> int:
        """Whole meals the eligible amount pays for."""
        return self.eligible.divmod(self.meal_price)[0]

    @property
    def remainder(self) -> Money:
        """What is left towards the next meal."""
        return self.eligible.divmod(self.meal_price)[1]

    def add_gift(self, amount: Money) -> tuple[MealTally, int]:
        """The tally after a gift, and how many meals this gift moved the counter by.

        A gift completes meals together with the remainder carried before it: with 10.00
        carried at 13.50 a meal, a 27.00 gift takes the counter from 0 to 2 (37.00 = 2 meals
        + 10.00 carried), so that gift funded 2 meals. Summed over gifts, these per-gift
        counts equal the counter.
        """
        if not amount.is_positive():
            raise ValueError("a gift is a positive amount")
        after = MealTally(self.eligible + amount, self.meal_price)
        return after, after.meals_funded - self.meals_funded
