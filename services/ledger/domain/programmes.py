"""What a company's programme of difts does to the books: its funding (from Stripe clearing or
the bank) into the programme's fund, each dift moved from that fund to the campaigns its
recipient (or the fallback rule) chose, and the credit back of what is left to the sponsor.

The programme's fund never goes below zero: a booking that would take it there is refused
(FundTooLow), as is a dift whose allocations do not sum to its value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.shared.money import Money

from . import accounts
from .journal import EntryKind, JournalEntry, legs


class FundTooLow(ValueError):
    """A booking that would take a programme's fund below zero."""


class Movement(StrEnum):
    """What moved money of a programme's fund, each booked once per id: a funding, a dift,
    a credit back."""

    FUNDING = "funding"
    DIFT = "dift"
    CREDIT = "credit"


class DiftOutcome(StrEnum):
    """How a dift left its programme's fund."""

    DIRECTED = "directed"
    """Its recipient chose the campaigns."""
    EXPIRED = "expired"
    """Nobody chose before the expiry: the programme's fallback rule gave it."""


@dataclass(frozen=True, slots=True)
class ProgrammeFund:
    """A programme's fund as the ledger keeps it (minor units of `currency`): funded in all,
    the Stripe fees on its fundings (the platform's expense: the fund holds the gross),
    directed by recipients, given by the fallback rule of expired difts, credited back to the
    sponsor, and how many difts were directed and expired."""

    programme_id: str
    sponsor_id: str
    currency: str
    funded: int = 0
    fees: int = 0
    directed: int = 0
    expired_given: int = 0
    credited_back: int = 0
    difts_directed: int = 0
    difts_expired: int = 0

    @property
    def balance(self) -> Money:
        """What the fund holds: funded - directed - given by the fallback - credited back."""
        held = self.funded - self.directed - self.expired_given - self.credited_back
        return Money(held, self.currency)

    def _holding(self, amount: Money) -> None:
        if amount.currency != self.currency:
            raise ValueError(
                f"programme {self.programme_id} is funded in {self.currency}, not {amount.currency}"
            )
        if not amount.is_positive():
            raise ValueError("a programme's money moves in positive amounts")

    def with_funding(self, amount: Money, fee: Money | None) -> ProgrammeFund:
        """The fund once `amount` more is paid in (Stripe keeping `fee` of it, if known)."""
        self._holding(amount)
        return replace(
            self,
            funded=self.funded + amount.amount,
            fees=self.fees + (fee.amount if fee is not None else 0),
        )

    def with_dift(self, outcome: DiftOutcome, given: Money) -> ProgrammeFund:
        """The fund once a dift gives `given` to campaigns (zero for an expired dift whose
        value stays for the credit back); refused below zero."""
        if given.currency != self.currency:
            raise ValueError(
                f"programme {self.programme_id} is funded in {self.currency}, not {given.currency}"
            )
        if self.balance < given:
            raise FundTooLow(
                f"programme {self.programme_id} holds {self.balance.amount} {self.currency}: "
                f"a dift of {given.amount} would take its fund below zero"
            )
        if outcome is DiftOutcome.DIRECTED:
            return replace(
                self,
                directed=self.directed + given.amount,
                difts_directed=self.difts_directed + 1,
            )
        return replace(
            self,
            expired_given=self.expired_given + given.amount,
            difts_expired=self.difts_expired + 1,
        )

    def with_credit_back(self, amount: Money) -> ProgrammeFund:
        """The fund once `amount` goes back to the sponsor; refused below zero."""
        self._holding(amount)
        if self.balance < amount:
            raise FundTooLow(
                f"programme {self.programme_id} holds {self.balance.amount} {self.currency}: "
                f"{amount.amount} cannot be credited back"
            )
        return replace(self, credited_back=self.credited_back + amount.amount)


@dataclass(frozen=True, slots=True)
class ProgrammeMovement:
    """One funding, dift or credit back booked on a programme's fund (`kind`: funded, directed,
    expired, credited_back), by its id: what makes each booked once."""

    movement: Movement
    reference: str
    programme_id: str
    kind: str
    amount: Money
    at: datetime


@dataclass(frozen=True, slots=True)
class DiftAllocation:
    """The part of a dift booked to one campaign: the meals it moved the campaign's counter by
    and the price period it counts in (so a later price change moves it like a gift)."""

    dift_id: str
    campaign_id: str
    programme_id: str
    outcome: DiftOutcome
    amount: Money
    meals: int
    effective_at: datetime
    period_starts_at: datetime


def dift_shares(value: Money, allocations: Sequence[tuple[str, Money]]) -> list[tuple[str, Money]]:
    """A dift's allocations by campaign, in their order, two parts to the same campaign made
    one; refused (ValueError) unless each is positive, in the dift's currency, and they sum to
    the value exactly."""
    shares: dict[str, Money] = {}
    for campaign_id, amount in allocations:
        if amount.currency != value.currency:
            raise ValueError(f"an allocation in {amount.currency} of a dift in {value.currency}")
        if not amount.is_positive():
            raise ValueError("an allocation is a positive amount")
        shares[campaign_id] = shares.get(campaign_id, Money.zero(value.currency)) + amount
    total = sum(shares.values(), Money.zero(value.currency))
    if total != value:
        raise ValueError(
            f"allocations sum to {total.amount}, the dift is worth {value.amount} {value.currency}"
        )
    return list(shares.items())


def funding_entry(
    programme_id: str,
    amount: Money,
    fee: Money | None,
    by_bank_transfer: bool,
    effective_at: datetime,
    description: str,
) -> JournalEntry:
    """A programme funded: by Stripe, clearing holds the net and Stripe's fee is the
    platform's processing-fee expense (as a gift's under the default fee policy); by bank
    transfer, the bank holds the amount. The programme's fund holds the gross either way."""
    zero = Money.zero(amount.currency)
    fund = accounts.programme_fund(programme_id)
    if by_bank_transfer:
        lines = legs((accounts.BANK, amount), (fund, -amount))
    else:
        fee = fee or zero
        lines = legs(
            (accounts.STRIPE_CLEARING, amount - fee),
            (accounts.PROCESSING_FEES, fee),
            (fund, -amount),
        )
    return JournalEntry(EntryKind.PROGRAMME_FUNDED, description, effective_at, lines)


def dift_entry(
    programme_id: str,
    outcome: DiftOutcome,
    campaign_id: str,
    amount: Money,
    effective_at: datetime,
    description: str,
) -> JournalEntry:
    """One allocation of a dift booked: the programme's fund gives `amount` to the campaign's
    fund (an entry per campaign, so each campaign's journal shows its part)."""
    kind = EntryKind.DIFT_DIRECTED if outcome is DiftOutcome.DIRECTED else EntryKind.DIFT_EXPIRED
    lines = legs(
        (accounts.programme_fund(programme_id), amount),
        (accounts.campaign_fund(campaign_id), -amount),
    )
    return JournalEntry(kind, description, effective_at, lines)


def credit_back_entry(
    programme_id: str, amount: Money, effective_at: datetime, description: str
) -> JournalEntry:
    """Money of a programme's fund credited back: owed to the sponsor until it is paid."""
    return JournalEntry(
        EntryKind.PROGRAMME_CREDITED_BACK,
        description,
        effective_at,
        legs((accounts.programme_fund(programme_id), amount), (accounts.SPONSOR_CREDITS, -amount)),
    )
