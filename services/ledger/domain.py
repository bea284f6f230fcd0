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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from services.shared.money import Money

# --- chart of accounts -------------------------------------------------------------------
# Account names are "<type>:<name>[:<id>]" so reports can group by type with a prefix.
# Assets grow with debits; funds, income and the contra side of expenses with credits.

STRIPE_CLEARING = "assets:stripe-clearing"
"""Money Stripe has collected for us and not yet paid out to the bank."""

BANK = "assets:bank"
"""Money Stripe has paid out to our bank account."""

DISPUTED_FUNDS = "assets:disputed-funds"
"""Gifts Stripe withdrew when a donor's bank opened a dispute, until the dispute ends."""

PROCESSING_FEES = "expenses:processing-fees"
"""What Stripe keeps of each charge (less what it gives back on a refund)."""

DISPUTE_FEES = "expenses:dispute-fees"
"""What Stripe charges for each dispute (given back when Stripe says so on a won dispute)."""

DONOR_COVERED_FEES = "income:donor-covered-fees"
"""The part of a gift the donor added to cover the processing fee."""

FEES_CHARGED_TO_CAMPAIGNS = "income:fees-charged-to-campaigns"
"""Processing fees recovered from campaign funds whose fee policy is "fees reduce the fund"."""

ACCOUNTS: dict[str, str] = {
    STRIPE_CLEARING: "Cash at Stripe (clearing)",
    BANK: "Bank",
    DISPUTED_FUNDS: "Funds withdrawn by Stripe for open disputes",
    PROCESSING_FEES: "Processing-fee expense",
    DISPUTE_FEES: "Dispute-fee expense",
    DONOR_COVERED_FEES: "Donor-covered fee income",
    FEES_CHARGED_TO_CAMPAIGNS: "Processing fees charged to campaign funds",
}
"""The fixed accounts and their names in finance staff's words (plus one fund per campaign)."""

_CAMPAIGN_FUND_PREFIX = "funds:campaign:"


def campaign_fund(campaign_id: str) -> str:
    """The restricted fund of one campaign: what donors gave to it and only it may spend."""
    if not campaign_id or ":" in campaign_id:
        raise ValueError(f"not a usable campaign id for an account name: {campaign_id!r}")
    return f"{_CAMPAIGN_FUND_PREFIX}{campaign_id}"


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


class FeePolicy(StrEnum):
    """Who bears Stripe's processing fee on a campaign's gifts."""

    PLATFORM = "platform"
    """The campaign receives the gross gift; fees are the platform's expense (the default)."""
    CAMPAIGN = "campaign"
    """Fees (beyond what the donor covered) reduce the campaign's fund."""


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


def _lines(*legs: tuple[str, Money]) -> tuple[JournalLine, ...]:
    """Signed legs (debit positive) as journal lines, leaving out the legs of zero."""
    return tuple(JournalLine(account, amount) for account, amount in legs if amount.amount != 0)


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
    fund = campaign_fund(campaign_id)
    entries = [
        JournalEntry(
            kind=EntryKind.DONATION,
            description=description,
            effective_at=effective_at,
            lines=_lines(
                (STRIPE_CLEARING, gift.net),
                (PROCESSING_FEES, gift.fee or Money.zero(gift.amount.currency)),
                (DONOR_COVERED_FEES, -gift.fee_covered),
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
                lines=_lines(
                    (fund, gift.charged_to_fund),
                    (FEES_CHARGED_TO_CAMPAIGNS, -gift.charged_to_fund),
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
    fund = campaign_fund(campaign_id)
    return JournalEntry(
        kind=EntryKind.REFUND,
        description=description,
        effective_at=effective_at,
        lines=_lines(
            (fund, back.from_fund),
            (DONOR_COVERED_FEES, back.from_covered_fees),
            (STRIPE_CLEARING, -(back.total - fee_refunded)),
            (PROCESSING_FEES, -fee_refunded),
            (FEES_CHARGED_TO_CAMPAIGNS, fee_back_to_fund),
            (fund, -fee_back_to_fund),
        ),
    )


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


def dispute_opened_entry(
    amount: Money, fee: Money, effective_at: datetime, description: str
) -> JournalEntry:
    """A dispute opened: Stripe withdraws the disputed amount (held as disputed funds until
    the dispute ends) and charges its dispute fee."""
    return JournalEntry(
        kind=EntryKind.DISPUTE_OPENED,
        description=description,
        effective_at=effective_at,
        lines=_lines(
            (DISPUTED_FUNDS, amount), (DISPUTE_FEES, fee), (STRIPE_CLEARING, -(amount + fee))
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
        lines=_lines(
            (STRIPE_CLEARING, reinstated + fee_reinstated),
            (DISPUTED_FUNDS, -reinstated),
            (DISPUTE_FEES, -fee_reinstated),
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
        lines=_lines(
            (campaign_fund(campaign_id), back.from_fund),
            (DONOR_COVERED_FEES, back.from_covered_fees),
            (DISPUTED_FUNDS if was_withdrawn else STRIPE_CLEARING, -back.total),
        ),
    )


def payout_entry(amount: Money, effective_at: datetime, description: str) -> JournalEntry:
    """A payout: Stripe moved money from our Stripe balance to the bank."""
    return JournalEntry(
        kind=EntryKind.PAYOUT,
        description=description,
        effective_at=effective_at,
        lines=_lines((BANK, amount), (STRIPE_CLEARING, -amount)),
    )


# --- periods -------------------------------------------------------------------------------


def month_of(moment: datetime) -> str:
    """The accounting period (a calendar month, UTC) a moment falls in, as "YYYY-MM"."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def month_start(month: str) -> datetime:
    """The first instant of a "YYYY-MM" period."""
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC)


def next_month(month: str) -> str:
    """The period after `month`."""
    year, number = (int(part) for part in month.split("-"))
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def posting_date(effective_at: datetime, closed: set[str]) -> tuple[datetime, datetime | None]:
    """Where an entry dated `effective_at` is posted: on its date when its month is open;
    otherwise at the start of the first open month after it, with the original date kept."""
    month = month_of(effective_at)
    if month not in closed:
        return effective_at, None
    while month in closed:
        month = next_month(month)
    return month_start(month), effective_at


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


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """The gifts given while one meal price was in force: from `starts_at` on, at
    `meal_price`, the eligible amount (what the fund kept of those gifts)."""

    starts_at: datetime
    meal_price: Money
    eligible: Money


@dataclass(frozen=True, slots=True)
class MealCount:
    """A campaign's funded meals, the remainder carried and the meal price now in force."""

    meals_funded: int
    remainder: Money
    meal_price: Money


def count_meals(periods: list[PricePeriod]) -> MealCount:
    """Meals over a campaign's price periods, oldest first: each period turns the remainder
    carried into it plus its own eligible gifts into meals at its own price, and carries what
    is left, so a price change applies from its date only and no cent is rounded away. With
    one price this is floor(eligible / meal price)."""
    if not periods:
        raise ValueError("a campaign has at least one meal price")
    ordered = sorted(periods, key=lambda period: period.starts_at)
    carried = Money.zero(ordered[0].meal_price.currency)
    meals = 0
    for period in ordered:
        if period.eligible.amount < 0:
            raise ValueError("an eligible amount is never negative")
        whole, carried = (carried + period.eligible).divmod(period.meal_price)
        meals += whole
    return MealCount(meals, carried, ordered[-1].meal_price)


def period_for(periods: list[PricePeriod], moment: datetime) -> PricePeriod:
    """The price period in force at `moment` (the first one for anything before it)."""
    ordered = sorted(periods, key=lambda period: period.starts_at)
    found = ordered[0]
    for period in ordered:
        if period.starts_at <= moment:
            found = period
    return found


@dataclass(frozen=True, slots=True)
class Milestone:
    """A threshold a campaign's meal counter crosses: a share of its goal or a round count,
    and the number of meals it stands at."""

    name: str
    kind: str
    value: int
    meals: int = 0


def milestones_crossed(before: int, after: int, goal_meals: int | None) -> list[Milestone]:
    """The milestones a counter moving from `before` to `after` meals reaches: 25, 50, 75 and
    100 % of the goal, and every 100 meals. Going down crosses nothing."""
    crossed: list[Milestone] = []
    if after <= before:
        return crossed
    if goal_meals:
        for percent in (25, 50, 75, 100):
            threshold = -(-goal_meals * percent // 100)  # ceiling: 25 % of 10 meals is 3
            if before < threshold <= after:
                crossed.append(Milestone(f"goal-{percent}", "goal_percent", percent, threshold))
    for hundreds in range(before // 100 + 1, after // 100 + 1):
        crossed.append(
            Milestone(f"meals-{hundreds * 100}", "meals", hundreds * 100, hundreds * 100)
        )
    return crossed


def highest(milestones: Sequence[Milestone]) -> Milestone:
    """What one moment names when it crosses several milestones: the one of most meals (a
    share of the goal before a round count of the same meals: it says more)."""
    if not milestones:
        raise ValueError("no milestone was crossed")
    return max(milestones, key=lambda m: (m.meals, m.kind == "goal_percent", m.value))
