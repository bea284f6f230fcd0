"""What a gift does to the books: its entries when it is confirmed, and when money of it goes
back to the donor (a refund, a lost dispute) or Stripe moves it (a dispute, a payout); and
what the ledger remembers of a booked gift for the returns that may follow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.shared.money import Money

from . import accounts
from .journal import EntryKind, JournalEntry, JournalLine, credit, debit, legs


class FeePolicy(StrEnum):
    """Who bears Stripe's processing fee on a campaign's gifts."""

    PLATFORM = "platform"
    """The campaign receives the gross gift; fees are the platform's expense (the default)."""
    CAMPAIGN = "campaign"
    """Fees (beyond what the donor covered) reduce the campaign's fund."""


def donation_entry(
    campaign_id: str, amount: Money, effective_at: datetime, description: str
) -> JournalEntry:
    """A confirmed gift: Stripe now holds the gross amount for us (debit clearing), and the
    campaign's restricted fund owes it to the cause (credit the fund)."""
    return JournalEntry(
        kind=EntryKind.DONATION,
        description=description,
        effective_at=effective_at,
        lines=(
            debit(accounts.STRIPE_CLEARING, amount),
            credit(accounts.campaign_fund(campaign_id), amount),
        ),
    )


def stripe_fee(amount: Money, fee: int | None, net: int | None) -> Money | None:
    """Stripe's fee on a gift of `amount`, from what its balance transaction says (None while
    unknown): the fee, or the gift less the net when only the net is known. Figures that
    cannot both be true are refused (ValueError)."""
    if fee is None and net is not None:
        fee = amount.amount - net
    if fee is not None and net is not None and fee + net != amount.amount:
        raise ValueError(f"fee {fee} and net {net} do not add up to {amount.amount}")
    return Money(fee, amount.currency) if fee is not None else None


@dataclass(frozen=True, slots=True)
class GiftBooking:
    """A confirmed gift as the books see it: what the donor paid, the part they added to cover
    the fee, what Stripe kept (None while unknown) and the campaign's fee policy."""

    amount: Money
    fee_covered: Money
    fee: Money | None
    policy: FeePolicy = FeePolicy.PLATFORM

    def __post_init__(self) -> None:
        if not self.amount.is_positive():
            raise ValueError("a gift is a positive amount")
        if self.fee_covered.amount < 0 or not self.fee_covered < self.amount:
            raise ValueError("the donor-covered fee must be less than the gift")
        if self.fee is not None and self.fee.amount < 0:
            raise ValueError("a processing fee is never negative")

    @property
    def net(self) -> Money:
        """What reaches Stripe clearing: the gift less Stripe's fee (gross while unknown)."""
        return self.amount - self.fee if self.fee is not None else self.amount

    @property
    def for_the_cause(self) -> Money:
        """The gift without the part the donor added to cover the fee."""
        return self.amount - self.fee_covered

    @property
    def charged_to_fund(self) -> Money:
        """The fee the campaign's fund bears: none under the platform policy; under the
        campaign policy, what the donor's cover did not pay."""
        if self.policy is FeePolicy.PLATFORM or self.fee is None:
            return Money.zero(self.amount.currency)
        uncovered = self.fee - self.fee_covered
        return uncovered if uncovered.is_positive() else Money.zero(self.amount.currency)

    @property
    def fund_share(self) -> Money:
        """What the campaign's fund holds from this gift once booked."""
        return self.for_the_cause - self.charged_to_fund


def gift_entries(
    campaign_id: str, gift: GiftBooking, effective_at: datetime, description: str
) -> list[JournalEntry]:
    """A confirmed gift: Stripe holds the net, Stripe's fee is an expense, the donor's cover
    is fee income and the rest goes to the campaign's fund; under the campaign fee policy a
    second entry charges the uncovered fee to the fund."""
    fund = accounts.campaign_fund(campaign_id)
    entries = [
        JournalEntry(
            kind=EntryKind.DONATION,
            description=description,
            effective_at=effective_at,
            lines=legs(
                (accounts.STRIPE_CLEARING, gift.net),
                (accounts.PROCESSING_FEES, gift.fee or Money.zero(gift.amount.currency)),
                (accounts.DONOR_COVERED_FEES, -gift.fee_covered),
                (fund, -gift.for_the_cause),
            ),
        )
    ]
    if gift.charged_to_fund.is_positive():
        entries.append(
            JournalEntry(
                kind=EntryKind.FEE_CHARGED_TO_FUND,
                description=f"Processing fee charged to the fund: {description}",
                effective_at=effective_at,
                lines=legs(
                    (fund, gift.charged_to_fund),
                    (accounts.FEES_CHARGED_TO_CAMPAIGNS, -gift.charged_to_fund),
                ),
            )
        )
    return entries


@dataclass(frozen=True, slots=True)
class ReturnToDonor:
    """Money of one gift going back to the donor (a refund or a lost dispute), split between
    the campaign's fund and the donor-covered fee income in the gift's own proportion."""

    from_fund: Money
    from_covered_fees: Money

    @property
    def total(self) -> Money:
        """The whole amount going back."""
        return self.from_fund + self.from_covered_fees


def return_to_donor(
    gift: GiftBooking,
    returned_before: Money,
    returning: Money,
    covered_back_before: Money | None = None,
) -> ReturnToDonor:
    """Split `returning` so that, summed over every return of the gift, the covered-fee part is
    exactly the donor's cover when the whole gift went back (no cent appears or vanishes).

    `covered_back_before` is what earlier returns still standing took from the cover; it is
    ⌊returned_before × cover / amount⌋ unless a return in the middle was reversed (a refund
    that failed), and the split then steers back to the formula instead of drifting."""
    if not returning.is_positive():
        raise ValueError("a return is a positive amount")
    after = returned_before + returning
    if gift.amount < after:
        raise ValueError(
            f"{after.amount} returned of a gift of {gift.amount.amount} {gift.amount.currency}"
        )
    covered = gift.fee_covered.amount
    before = (
        returned_before.amount * covered // gift.amount.amount
        if covered_back_before is None
        else covered_back_before.amount
    )
    part = min(max(0, after.amount * covered // gift.amount.amount - before), returning.amount)
    from_covered = Money(part, gift.amount.currency)
    return ReturnToDonor(returning - from_covered, from_covered)


@dataclass(frozen=True, slots=True)
class RefundTaken:
    """What a refund's entry took: from the campaign's fund (net of the fee it gave back to
    the fund), from the donor-covered fee income, and the fee it gave back to the fund."""

    from_fund: Money
    from_covered_fees: Money
    fee_back_to_fund: Money

    @property
    def total(self) -> Money:
        """The whole amount the refund gave back to the donor."""
        return self.from_fund + self.from_covered_fees + self.fee_back_to_fund


def refund_taken(campaign_id: str, lines: Sequence[JournalLine], currency: str) -> RefundTaken:
    """What the refund posted as `lines` took, read back from its lines (so a refund that fails
    undoes exactly what was booked, whatever the event announcing the failure says)."""

    def on(account: str) -> Money:
        return sum((line.amount for line in lines if line.account == account), Money.zero(currency))

    return RefundTaken(
        on(accounts.campaign_fund(campaign_id)),
        on(accounts.DONOR_COVERED_FEES),
        on(accounts.FEES_CHARGED_TO_CAMPAIGNS),
    )


@dataclass(frozen=True, slots=True)
class BookedGift:
    """A gift the ledger booked, and what went back of it since: what its refunds and disputes
    need to book their part. `returned` is what was refunded or lost in disputes;
    `fund_balance` what the campaign's fund holds from it now (below zero when the fund bore a
    fee and gave everything back); `fee_back_to_fund` what of the fund's fee charge Stripe gave
    back; `period_starts_at` the price period it counts in."""

    donation_id: str
    campaign_id: str
    booking: GiftBooking
    charge_id: str | None
    effective_at: datetime
    period_starts_at: datetime
    fund_balance: Money
    returned: Money
    fee_back_to_fund: Money
    meals: int = 0

    @classmethod
    def booked(
        cls,
        donation_id: str,
        campaign_id: str,
        booking: GiftBooking,
        charge_id: str | None,
        effective_at: datetime,
        period_starts_at: datetime,
        meals: int,
    ) -> BookedGift:
        """A gift just booked: the fund holds its share, nothing went back yet; `meals` is how
        many meals it moved the campaign's counter by."""
        zero = Money.zero(booking.amount.currency)
        return cls(
            donation_id,
            campaign_id,
            booking,
            charge_id,
            effective_at,
            period_starts_at,
            fund_balance=booking.fund_share,
            returned=zero,
            fee_back_to_fund=zero,
            meals=meals,
        )

    @property
    def currency(self) -> str:
        """The gift's currency."""
        return self.booking.amount.currency

    @property
    def eligible(self) -> Money:
        """What of the gift counts towards meals: what the fund holds of it, never below zero."""
        return Money(max(0, self.fund_balance.amount), self.currency)

    def give_back(self, amount: Money) -> ReturnToDonor:
        """Split money going back to the donor (a refund, a lost dispute); more than the gift
        can never go back (ValueError)."""
        # What earlier returns still standing took from the donor's cover: the rest of what
        # went back came out of the fund (whose share the fee given back to it tops up).
        given_back_by_fund = self.booking.fund_share + self.fee_back_to_fund - self.fund_balance
        covered_back = self.returned - given_back_by_fund
        return return_to_donor(self.booking, self.returned, amount, covered_back)

    def fee_back_on_refund(self, fee_refunded: Money) -> Money:
        """What of the fee Stripe returns on a refund goes back to the fund: under the campaign
        policy, up to what the fund still bears of the fee; otherwise none (it reduces the
        fee expense)."""
        if self.booking.policy is not FeePolicy.CAMPAIGN:
            return Money.zero(self.currency)
        still_charged = self.booking.charged_to_fund - self.fee_back_to_fund
        return Money(min(fee_refunded.amount, max(0, still_charged.amount)), self.currency)

    def refunded(self, back: ReturnToDonor, fee_back_to_fund: Money) -> BookedGift:
        """The gift after a refund of `back`, the fund getting `fee_back_to_fund` back."""
        return replace(
            self,
            returned=self.returned + back.total,
            fund_balance=self.fund_balance - back.from_fund + fee_back_to_fund,
            fee_back_to_fund=self.fee_back_to_fund + fee_back_to_fund,
        )

    def refund_failed(self, taken: RefundTaken) -> BookedGift:
        """The gift after a refund that took `taken` failed: as if it had never happened."""
        return replace(
            self,
            returned=self.returned - taken.total,
            fund_balance=self.fund_balance + taken.from_fund,
            fee_back_to_fund=self.fee_back_to_fund - taken.fee_back_to_fund,
        )

    def lost_in_dispute(self, back: ReturnToDonor) -> BookedGift:
        """The gift after a dispute lost `back` to the donor's bank."""
        return replace(
            self,
            returned=self.returned + back.total,
            fund_balance=self.fund_balance - back.from_fund,
        )


def refund_entry(
    campaign_id: str,
    back: ReturnToDonor,
    fee_refunded: Money,
    fee_back_to_fund: Money,
    effective_at: datetime,
    description: str,
) -> JournalEntry:
    """A refund: the fund (and the covered-fee income, in proportion) gives the money back;
    Stripe clearing pays it less the fee Stripe returns, which reduces the fee expense (or,
    where the fund bore the fee, goes back to the fund)."""
    fund = accounts.campaign_fund(campaign_id)
    return JournalEntry(
        kind=EntryKind.REFUND,
        description=description,
        effective_at=effective_at,
        lines=legs(
            (fund, back.from_fund),
            (accounts.DONOR_COVERED_FEES, back.from_covered_fees),
            (accounts.STRIPE_CLEARING, -(back.total - fee_refunded)),
            (accounts.PROCESSING_FEES, -fee_refunded),
            (accounts.FEES_CHARGED_TO_CAMPAIGNS, fee_back_to_fund),
            (fund, -fee_back_to_fund),
        ),
    )


def dispute_opened_entry(
    amount: Money, fee: Money, effective_at: datetime, description: str
) -> JournalEntry:
    """A dispute opened: Stripe withdraws the disputed amount (held as disputed funds until
    the dispute ends) and charges its dispute fee."""
    return JournalEntry(
        kind=EntryKind.DISPUTE_OPENED,
        description=description,
        effective_at=effective_at,
        lines=legs(
            (accounts.DISPUTED_FUNDS, amount),
            (accounts.DISPUTE_FEES, fee),
            (accounts.STRIPE_CLEARING, -(amount + fee)),
        ),
    )


def dispute_won_entry(
    reinstated: Money, fee_reinstated: Money, effective_at: datetime, description: str
) -> JournalEntry:
    """A dispute won: Stripe puts the amount back (and the fee, where it says so)."""
    return JournalEntry(
        kind=EntryKind.DISPUTE_WON,
        description=description,
        effective_at=effective_at,
        lines=legs(
            (accounts.STRIPE_CLEARING, reinstated + fee_reinstated),
            (accounts.DISPUTED_FUNDS, -reinstated),
            (accounts.DISPUTE_FEES, -fee_reinstated),
        ),
    )


def dispute_lost_entry(
    campaign_id: str,
    back: ReturnToDonor,
    was_withdrawn: bool,
    effective_at: datetime,
    description: str,
) -> JournalEntry:
    """A dispute lost: the withdrawn money went to the donor's bank for good, so the fund
    (and the covered-fee income, in proportion) gives it up like a refund. If the ledger never
    saw the dispute open, the money leaves Stripe clearing now."""
    return JournalEntry(
        kind=EntryKind.DISPUTE_LOST,
        description=description,
        effective_at=effective_at,
        lines=legs(
            (accounts.campaign_fund(campaign_id), back.from_fund),
            (accounts.DONOR_COVERED_FEES, back.from_covered_fees),
            (accounts.DISPUTED_FUNDS if was_withdrawn else accounts.STRIPE_CLEARING, -back.total),
        ),
    )


def payout_entry(amount: Money, effective_at: datetime, description: str) -> JournalEntry:
    """A payout: Stripe moved money from our Stripe balance to the bank."""
    return JournalEntry(
        kind=EntryKind.PAYOUT,
        description=description,
        effective_at=effective_at,
        lines=legs((accounts.BANK, amount), (accounts.STRIPE_CLEARING, -amount)),
    )
