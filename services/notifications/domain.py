"""The notifications service's rules, with no I/O: who may be emailed about what (Consent),
how a delivery moves through its states and when a failed one is tried again (Delivery,
RetryPolicy), what a receipt states (ReceiptFacts), and which impact emails a donor gets
(ImpactBudget), and what a company's dift tells its recipient and when (Dift, Funds,
ReminderRule).

The impact rule (README, "Impact emails"): the milestones one booking crosses together are
one moment and make one email, naming the highest ("you funded 500 meals: a quarter of the
goal"). Each donor gets at most one impact email per campaign in a period (a week by
default): a milestone reached sooner waits, and when the period is over the donor gets one
email naming the highest milestone reached meanwhile. A donor is never told a milestone at or
below the count their last impact email stated, so no two of their impact emails name the
same milestone or the same count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from services.shared.money import Money

# --- consent --------------------------------------------------------------------------------

CONSENT_AT_CHECKOUT = "checkout"
# The recipient of a company's dift asked, as they directed it, for the chosen causes' news.
CONSENT_FROM_DIFT = "dift"


@dataclass(frozen=True)
class Consent:
    """A donor's standing with one campaign's news: when they last asked for it (and where),
    and when they stopped this campaign's news, if they did."""

    consent_at: datetime | None = None
    source: str | None = None
    unsubscribed_at: datetime | None = None

    def after_gift(self, opted_in: bool, consent_at: datetime, source: str) -> Consent:
        """The standing after a gift. Consent once given is kept: a later gift without the box
        ticked does not withdraw it (unsubscribing does). A gift with the box ticked records
        the newer consent, and one consented after the donor unsubscribed subscribes them
        again."""
        if not opted_in:
            return self
        newer = self.consent_at is None or consent_at > self.consent_at
        again = self.unsubscribed_at is not None and consent_at > self.unsubscribed_at
        return Consent(
            consent_at=consent_at if newer else self.consent_at,
            source=source if newer else self.source,
            unsubscribed_at=None if again else self.unsubscribed_at,
        )

    def unsubscribed(self, when: datetime) -> Consent:
        """The standing once the donor stops this campaign's news."""
        return self if self.unsubscribed_at is not None else replace(self, unsubscribed_at=when)

    def wants_news(self, unsubscribed_everywhere_at: datetime | None = None) -> bool:
        """Whether news and impact emails may go: consented, not unsubscribed from this
        campaign, and not unsubscribed from every campaign since consenting."""
        if self.consent_at is None or self.unsubscribed_at is not None:
            return False
        return unsubscribed_everywhere_at is None or self.consent_at > unsubscribed_everywhere_at


# --- deliveries -----------------------------------------------------------------------------


class Kind(StrEnum):
    """What an email is. Receipts and refund confirmations go to every donor; news and impact
    emails only to those who asked."""

    RECEIPT = "receipt"
    REFUND = "refund"
    NEWS = "news"
    IMPACT = "impact"
    # A company's dift: the invitation with its personal link, the one reminder before it
    # expires, and the confirmation of where the recipient directed it.
    DIFT_INVITATION = "dift_invitation"
    DIFT_REMINDER = "dift_reminder"
    DIFT_CONFIRMATION = "dift_confirmation"

    @property
    def needs_consent(self) -> bool:
        """News and impact emails go only to donors who want news."""
        return self in (Kind.NEWS, Kind.IMPACT)

    @property
    def invites(self) -> bool:
        """A dift's invitation or its reminder: the donations service hears when it left for
        the relay or bounced (difts.notification.dift_invitation_sent.v1)."""
        return self in (Kind.DIFT_INVITATION, Kind.DIFT_REMINDER)

    @property
    def invitation_kind(self) -> str:
        """How dift_invitation_sent names this email: "invitation" or "reminder"."""
        return "reminder" if self is Kind.DIFT_REMINDER else "invitation"


class DeliveryStatus(StrEnum):
    """Where a delivery is: pending (queued, or waiting for its next attempt), then sent,
    failed (refused for good, or too many attempts), skipped (on purpose, with why) or bounced
    (a dift's invitation or reminder the recipient's server refused for good: a 5xx reply)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    BOUNCED = "bounced"


BY_CONSENT = tuple(kind.value for kind in Kind if kind.needs_consent)
# The sender's two lanes: transactional mail (what a donor's own act calls for) goes at once,
# never behind bulk mail (news, impact: what a campaign sends its donors), which is throttled.
TRANSACTIONAL = tuple(kind.value for kind in Kind if not kind.needs_consent)
BULK = BY_CONSENT


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how far apart a delivery is tried."""

    max_attempts: int = 8
    first_delay: timedelta = timedelta(seconds=30)
    longest_delay: timedelta = timedelta(hours=1)
    jitter: float = 0.25

    def retry_at(self, attempts_made: int, now: datetime) -> datetime:
        """When to try again after `attempts_made` failed attempts: the delay doubles each
        time, plus up to a quarter of random jitter so retries from many workers spread out."""
        delay = min(self.first_delay * 2 ** (attempts_made - 1), self.longest_delay)
        return now + delay + delay * random.uniform(0, self.jitter)  # noqa: S311 - not secret

    def after_failure(
        self,
        attempts_before: int,
        reason: str,
        now: datetime,
        permanent: bool = False,
        bounces: bool = False,
    ) -> Attempted:
        """What a failed attempt makes of a delivery: tried again later, or failed for good (a
        permanent refusal, or the last attempt allowed). A permanent refusal of an email that
        `bounces` (a dift's invitation or reminder) is a bounce, never retried."""
        made = attempts_before + 1
        if permanent:
            return Attempted(DeliveryStatus.BOUNCED if bounces else DeliveryStatus.FAILED, reason)
        if made >= self.max_attempts:
            return Attempted(DeliveryStatus.FAILED, f"{reason} (gave up after {made} attempts)")
        return Attempted(DeliveryStatus.PENDING, reason, self.retry_at(made, now))


@dataclass(frozen=True)
class Attempted:
    """The outcome of one attempt: the delivery's next status, why, and its next attempt."""

    status: DeliveryStatus
    reason: str | None = None
    retry_at: datetime | None = None


def smtp_refusal(code: int) -> bool:
    """A 5xx reply refuses for good; a 4xx one (and any other) is worth another attempt."""
    return 500 <= code < 600


# --- receipts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptFacts:
    """What one gift's receipt states: the gift, to whom and what for, and what the ledger
    counted of it (the change the gift made to the campaign's meal counter, and what is
    carried towards the next meal). Its one trigger is the ledger's donation_booked."""

    donation_id: str
    campaign_id: str
    campaign_title: str
    campaign_slug: str
    cause: str
    amount: Money
    meal_price: Money
    meals: int
    carried: Money
    donor_email: str
    donor_name: str
    locale: str
    given_at: datetime

    @classmethod
    def from_booked(cls, data: dict[str, Any]) -> ReceiptFacts | None:
        """A difts.ledger.donation_booked.v1 event's facts; None without its receipt part (a
        gift re-synced from Stripe, whose donor the ledger cannot vouch for)."""
        receipt = data.get("receipt")
        if receipt is None:
            return None
        currency = data["currency"]
        donor = receipt["donor"]
        return cls(
            donation_id=data["donation_id"],
            campaign_id=data["campaign_id"],
            campaign_title=receipt["campaign_title"],
            campaign_slug=data["campaign_slug"],
            cause=receipt.get("campaign_cause", ""),
            amount=Money(data["amount"], currency),
            meal_price=Money(data["meal_price"], currency),
            meals=data["meals"],
            carried=Money(data["remainder"], currency),
            donor_email=donor["email"],
            donor_name=donor.get("name", ""),
            locale=donor.get("locale", "en"),
            given_at=receipt["succeeded_at"],
        )


# --- impact emails --------------------------------------------------------------------------

_GOAL_WORDS = {25: "quarter", 50: "half", 75: "three_quarters", 100: "goal"}


@dataclass(frozen=True)
class Reached:
    """What one milestone event announces: the milestone that heads it (its name, the meals
    it stands at, the share of the goal if it is one), the campaign's count then, its goal."""

    milestone: str
    meals: int
    meals_funded: int
    goal_meals: int | None
    goal_percent: int | None = None

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> Reached:
        """A difts.ledger.milestone_reached.v1 event's data; events of before the milestones
        list carry one milestone, whose meals are worked out from its kind."""
        parts = data.get("milestones") or [
            {"milestone": data["milestone"], "kind": data["kind"], "value": data["value"]}
        ]
        goal = data.get("goal_meals")
        at = [(_meals_of(part, goal), part) for part in parts]
        top_meals = max(meals for meals, _part in at)
        shares = [
            part["value"]
            for meals, part in at
            if meals == top_meals and part["kind"] == "goal_percent"
        ]
        return cls(
            milestone=str(data["milestone"]),
            meals=top_meals,
            meals_funded=int(data["meals_funded"]),
            goal_meals=goal,
            goal_percent=max(shares) if shares else None,
        )

    @property
    def goal_words(self) -> str | None:
        """How the email names the share of the goal reached ("quarter", ..., "goal")."""
        return _GOAL_WORDS.get(self.goal_percent) if self.goal_percent else None

    def to_dict(self) -> dict[str, Any]:
        """For keeping a held milestone in the database."""
        return {
            "milestone": self.milestone,
            "meals": self.meals,
            "meals_funded": self.meals_funded,
            "goal_meals": self.goal_meals,
            "goal_percent": self.goal_percent,
        }

    @classmethod
    def from_dict(cls, kept: dict[str, Any]) -> Reached:
        """A held milestone read back."""
        return cls(**kept)


def _meals_of(part: dict[str, Any], goal_meals: int | None) -> int:
    """The meals a milestone stands at: given, or its count, or its share of the goal."""
    if part.get("meals") is not None:
        return int(part["meals"])
    if part["kind"] == "goal_percent" and goal_meals:
        return -(-int(goal_meals) * int(part["value"]) // 100)
    return int(part["value"])


@dataclass(frozen=True)
class ImpactState:
    """What one donor of one campaign has been told of its milestones: the count their last
    impact email stated, when it was queued, and the milestone waiting for the budget."""

    told_meals: int = 0
    last_at: datetime | None = None
    held: Reached | None = None

    def due_at(self, period: timedelta) -> datetime | None:
        """When the held milestone may go (None when nothing is held)."""
        if self.held is None:
            return None
        return self.last_at + period if self.last_at is not None else None


@dataclass(frozen=True)
class ImpactDecision:
    """What to do for one donor: `send` the milestone now, or keep `state` (holding it)."""

    state: ImpactState
    send: Reached | None = None


@dataclass(frozen=True)
class ImpactBudget:
    """At most one impact email per donor and campaign in `period` (zero: one per moment)."""

    period: timedelta

    def on_reached(self, state: ImpactState, reached: Reached, now: datetime) -> ImpactDecision:
        """A milestone event reached this donor's campaign."""
        known = max(state.told_meals, state.held.meals_funded if state.held else 0)
        if reached.meals <= known:
            return ImpactDecision(state)  # nothing this donor was not told, or will be
        if state.last_at is None or now >= state.last_at + self.period:
            return ImpactDecision(ImpactState(reached.meals_funded, now, None), send=reached)
        return ImpactDecision(replace(state, held=reached))

    def on_due(self, state: ImpactState, now: datetime) -> ImpactDecision:
        """The budget's period may be over: the held milestone goes, if it is due."""
        due = state.due_at(self.period)
        if state.held is None or due is None or now < due:
            return ImpactDecision(state)
        return ImpactDecision(ImpactState(state.held.meals_funded, now, None), send=state.held)


# --- whom and what the emails name ----------------------------------------------------------


@dataclass(frozen=True)
class CampaignFacts:
    """The public facts of a campaign that emails name."""

    campaign_id: str
    slug: str
    title: str
    cause: str


@dataclass(frozen=True)
class Donor:
    """A donor of one campaign: how to write to them, their consent, their pseudonym (what
    unsubscribe links and erasures name), and what they were told of the milestones."""

    campaign_id: str
    email: str
    name: str = ""
    locale: str = "en"
    email_ref: str | None = None
    consent: Consent = field(default_factory=Consent)
    impact: ImpactState = field(default_factory=ImpactState)
    # When this address unsubscribed from every campaign (kept by pseudonym), if it did.
    everywhere_at: datetime | None = None

    @property
    def wants_news(self) -> bool:
        """Whether news and impact emails of this campaign may go to them now."""
        return self.consent.wants_news(self.everywhere_at)


# --- company difts --------------------------------------------------------------------------


@dataclass(frozen=True)
class ShortlistedCause:
    """One cause a dift may go to, as its campaign stood when the dift was issued."""

    campaign_id: str
    slug: str
    title: str
    cause: str
    meal_price: Money


@dataclass(frozen=True)
class Recipient:
    """Whom a company's dift was sent to."""

    email: str
    name: str = ""
    locale: str = "fr"

    @classmethod
    def from_event(cls, given: dict[str, Any] | None) -> Recipient | None:
        """An event's recipient part (None: an anonymous code)."""
        if not given:
            return None
        return cls(given["email"], given.get("name", ""), given.get("locale", "fr"))


@dataclass(frozen=True)
class Dift:
    """What this service keeps of a company's dift (difts.dift.issued.v1): whom it was sent
    to, what it is worth, what its shortlisted causes' meals cost, when it expires; its
    personal link until no reminder can need it; when its reminder is due; and how it ended
    ("directed" or "expired"), once it has."""

    dift_id: str
    programme_id: str
    brand_name: str
    value: Money
    expires_at: datetime
    shortlist: tuple[ShortlistedCause, ...]
    recipient: Recipient | None = None
    redeem_url: str | None = None
    reminder_due_at: datetime | None = None
    settled: str | None = None

    @classmethod
    def from_issued(cls, data: dict[str, Any]) -> Dift:
        """A difts.dift.issued.v1 event's dift."""
        currency = data["currency"]
        return cls(
            dift_id=data["dift_id"],
            programme_id=data["programme_id"],
            brand_name=data["brand_name"],
            value=Money(data["value"], currency),
            expires_at=data["expires_at"],
            shortlist=tuple(
                ShortlistedCause(
                    entry["campaign_id"],
                    entry["campaign_slug"],
                    entry["campaign_title"],
                    entry.get("cause", ""),
                    Money(entry["meal_price"], currency),
                )
                for entry in data["shortlist"]
            ),
            recipient=Recipient.from_event(data.get("recipient")),
            redeem_url=data.get("redeem_url"),
        )

    @property
    def invitable(self) -> bool:
        """Whether an invitation goes: a recipient and a personal link (an anonymous code has
        neither; the company hands it out)."""
        return self.recipient is not None and bool(self.redeem_url)

    def cause(self, campaign_id: str) -> ShortlistedCause | None:
        """The shortlisted cause of a campaign, if it is on the shortlist."""
        return next((c for c in self.shortlist if c.campaign_id == campaign_id), None)


@dataclass(frozen=True)
class Funds:
    """What an amount funds at a meal price: its whole meals, or, when it is less than one
    meal, the share of one meal it is, in whole percent rounded down (never rounded up to a
    meal it does not fund: 20 EUR at 27 EUR a meal is 74 %, 0.10 EUR at 13.50 EUR is 0 %)."""

    meals: int
    percent_of_a_meal: int = 0

    @classmethod
    def of(cls, amount: Money, meal_price: Money) -> Funds:
        """What `amount` funds at `meal_price`."""
        meals, _rest = amount.divmod(meal_price)
        if meals:
            return cls(meals)
        return cls(0, amount.amount * 100 // meal_price.amount)


@dataclass(frozen=True)
class ReminderRule:
    """One reminder, `before` the dift expires, to a recipient who has not directed it, and
    never once it has expired."""

    before: timedelta = timedelta(days=3)

    def due_at(self, expires_at: datetime, now: datetime) -> datetime | None:
        """When the reminder of a dift invited `now` is due; None when that moment is already
        past (a dift expiring sooner than `before`: its invitation is the reminder)."""
        due = expires_at - self.before
        return due if due > now else None

    @staticmethod
    def may_go(expires_at: datetime, now: datetime) -> bool:
        """Whether a reminder (or an invitation) may still go: not at or after expiry."""
        return now < expires_at
