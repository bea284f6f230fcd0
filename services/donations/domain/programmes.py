"""Company difts, with no I/O: a sponsor (the company), its programmes of difts, and each dift.

A programme is the company's budget for difts: funded first (a Stripe payment or a bank
transfer), then open from its opening date, closed after its expiry date once every dift nobody
directed has gone where its fallback rule says and what is left went back to the sponsor. Its
budget never lets a dift be issued beyond what was funded:

    available = funded - reserved - credited back (unused)

where `reserved` is the value of every dift issued. A dift goes issued -> sent -> opened ->
directed (its recipient chose the causes) | expired (the fallback rule gave it); each
transition returns its events or raises a RuleBroken naming the field at fault.

Allocations: a recipient gives the whole value to one cause of the shortlist, or splits it in
whole major units (euros) between several. A value with cents (12.50 EUR) splits its whole
euros (12) as the recipient typed them; the cents go with the share of the first chosen cause in
the shortlist's order, as services.shared.money.split_evenly gives remainder cents to the first
shares: nothing is lost or invented. The expiry fallback splits the value evenly in shortlist
order (split_evenly), gives it all to one named campaign, or keeps it for the credit back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from services.shared.money import CURRENCY_EXPONENTS, Money, major_units, split_evenly

from .campaigns import Campaign, RuleBroken

MAX_SHORTLIST = 6
# A programme's budget stays within what the books store (an INTEGER of minor units).
MAX_BUDGET = 2**31 - 1
_SIREN = re.compile(r"^[0-9]{9}$")


class ProgrammeRuleBroken(RuleBroken):
    """A change a programme's rules or state refuse."""


class DiftRuleBroken(RuleBroken):
    """A change a dift's state refuses."""


class DiftAlreadyDirected(DiftRuleBroken):
    """The dift was directed already: nothing changes."""

    def __init__(self, message: str = "this dift was directed already") -> None:
        super().__init__("dift", message)


class DiftExpired(DiftRuleBroken):
    """The dift expired (its programme's fallback rule gave it): nothing changes."""

    def __init__(self, message: str = "this dift has expired") -> None:
        super().__init__("dift", message)


# --- sponsors ---------------------------------------------------------------------------------


def siren_is_valid(siren: str) -> bool:
    """A SIREN is 9 digits whose Luhn key checks (INSEE's rule: double every second digit from
    the right, sum the digits, a multiple of 10). La Poste's 356000000 is the one historical
    exception (its digits sum to a multiple of 5)."""
    if not isinstance(siren, str) or not _SIREN.match(siren):
        return False
    if siren == "356000000":
        return True
    total = 0
    for position, char in enumerate(reversed(siren)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return total % 10 == 0


def normalise_siren(text: str) -> str:
    """A SIREN as typed ("732 829 320") without its spaces."""
    return "".join(text.split()).replace(".", "").replace("-", "")


@dataclass(frozen=True)
class Sponsor:
    """A company that funds difts: its legal identity (for the mécénat receipt) and the brand
    its recipients see."""

    id: str
    legal_name: str
    legal_form: str
    siren: str
    postal_address: str
    contact_email: str
    brand_name: str
    created_at: datetime

    @classmethod
    def register(
        cls,
        sponsor_id: str,
        *,
        legal_name: str,
        legal_form: str,
        siren: str,
        postal_address: str,
        contact_email: str,
        brand_name: str,
        now: datetime,
    ) -> Sponsor:
        """A new sponsor; RuleBroken naming the field when its SIREN's key does not check or a
        text is empty."""
        siren = normalise_siren(siren)
        if not siren_is_valid(siren):
            raise RuleBroken("siren", "a SIREN is 9 digits whose Luhn key checks")
        texts = {
            "legal_name": legal_name,
            "legal_form": legal_form,
            "postal_address": postal_address,
            "contact_email": contact_email,
        }
        for name, value in texts.items():
            if not value.strip():
                raise RuleBroken(name, f"{name} is required")
        return cls(
            id=sponsor_id,
            legal_name=legal_name.strip(),
            legal_form=legal_form.strip(),
            siren=siren,
            postal_address=postal_address.strip(),
            contact_email=contact_email.strip(),
            brand_name=brand_name.strip() or legal_name.strip(),
            created_at=now,
        )


# --- programmes -------------------------------------------------------------------------------


class ProgrammeStatus(StrEnum):
    """Where a programme is in its life."""

    DRAFT = "draft"
    FUNDED = "funded"
    OPEN = "open"
    CLOSED = "closed"


class FallbackRule(StrEnum):
    """What happens, at expiry, to a dift nobody directed."""

    SPLIT_EVENLY = "split_evenly"
    ONE_CAMPAIGN = "one_campaign"
    CREDIT_BACK = "credit_back"


class FundingMethod(StrEnum):
    """How a programme's money arrived."""

    STRIPE = "stripe"
    BANK_TRANSFER = "bank_transfer"


class CreditReason(StrEnum):
    """Why money of a programme went back to its sponsor (the published language's reasons)."""

    UNUSED_BUDGET = "unused_budget"
    EXPIRED_DIFTS = "expired_difts"
    CLOSING = "closing"


# What a programme's owner may write while it is a draft (the shortlist and value have rules).
PROGRAMME_TEXTS = ("name", "occasion", "message_markdown")


@dataclass(frozen=True)
class Programme:
    """A company's programme of difts: what recipients read, the value of a dift (one for all,
    or None: per recipient), the shortlist in its order, the dates, the fallback rule, and the
    budget's figures."""

    id: str
    sponsor_id: str
    name: str
    occasion: str
    message_markdown: str
    currency: str
    dift_value: Money | None
    shortlist: tuple[str, ...]
    opens_at: datetime
    expires_at: datetime
    fallback_rule: FallbackRule
    fallback_campaign_id: str | None
    status: ProgrammeStatus
    funded: Money
    reserved: Money
    credited_back: Money
    # The value of the difts that expired under the credit_back rule: kept in the fund until
    # the programme closes and credits it back.
    expired_to_credit: Money
    created_at: datetime
    funded_at: datetime | None = None
    opened_at: datetime | None = None
    closed_at: datetime | None = None

    @classmethod
    def draft(
        cls,
        programme_id: str,
        sponsor: Sponsor,
        shortlist: Sequence[Campaign],
        *,
        name: str,
        currency: str,
        dift_value: int | None,
        opens_at: datetime,
        expires_at: datetime,
        fallback_rule: FallbackRule = FallbackRule.SPLIT_EVENLY,
        fallback_campaign_id: str | None = None,
        occasion: str = "",
        message_markdown: str = "",
        now: datetime,
    ) -> Programme:
        """A new programme, not funded yet; RuleBroken naming the field when the shortlist,
        value, dates or fallback rule do not hold together."""
        zero = Money.zero(currency)
        programme = cls(
            id=programme_id,
            sponsor_id=sponsor.id,
            name=name,
            occasion=occasion,
            message_markdown=message_markdown,
            currency=currency,
            dift_value=Money(dift_value, currency) if dift_value is not None else None,
            shortlist=tuple(c.id for c in shortlist),
            opens_at=opens_at,
            expires_at=expires_at,
            fallback_rule=FallbackRule(fallback_rule),
            fallback_campaign_id=fallback_campaign_id,
            status=ProgrammeStatus.DRAFT,
            funded=zero,
            reserved=zero,
            credited_back=zero,
            expired_to_credit=zero,
            created_at=now,
        )
        programme.check(shortlist)
        return programme

    def check(self, shortlist: Sequence[Campaign]) -> None:
        """The programme's rules, given its shortlisted campaigns in order."""
        if not self.name.strip():
            raise ProgrammeRuleBroken("name", "a programme needs a name")
        if not 1 <= len(shortlist) <= MAX_SHORTLIST:
            raise ProgrammeRuleBroken("shortlist", f"1 to {MAX_SHORTLIST} campaigns")
        if len({c.id for c in shortlist}) != len(shortlist):
            raise ProgrammeRuleBroken("shortlist", "a campaign is listed twice")
        for campaign in shortlist:
            if not campaign.accepts_gifts():
                raise ProgrammeRuleBroken(
                    "shortlist", f"campaign {campaign.slug!r} is not published"
                )
            if campaign.meal_price.currency != self.currency:
                raise ProgrammeRuleBroken(
                    "currency", f"campaign {campaign.slug!r} takes {campaign.meal_price.currency}"
                )
        if self.dift_value is not None and self.dift_value.amount < 1:
            raise ProgrammeRuleBroken("dift_value", "a dift is worth at least one minor unit")
        if self.expires_at <= self.opens_at:
            raise ProgrammeRuleBroken("expires_at", "a programme expires after it opens")
        if self.fallback_rule is FallbackRule.ONE_CAMPAIGN:
            if self.fallback_campaign_id not in self.shortlist:
                raise ProgrammeRuleBroken(
                    "fallback_campaign_id", "the fallback campaign must be in the shortlist"
                )
        elif self.fallback_campaign_id is not None:
            raise ProgrammeRuleBroken(
                "fallback_campaign_id", "only the one_campaign rule names a campaign"
            )

    # -- budget --

    @property
    def available(self) -> Money:
        """What can still be issued as difts (or credited back as unused)."""
        unused_credited = self.credited_back - self.credited_expired
        return self.funded - self.reserved - unused_credited

    @property
    def credited_expired(self) -> Money:
        """What was credited back of the expired difts' value: all of it once closed."""
        if self.status is ProgrammeStatus.CLOSED:
            return self.expired_to_credit
        return Money.zero(self.currency)

    def edited(self, changes: dict[str, Any], shortlist: Sequence[Campaign] | None) -> Programme:
        """The draft with new texts, value, dates, shortlist or fallback rule."""
        if self.status is not ProgrammeStatus.DRAFT:
            raise ProgrammeRuleBroken("status", f"a {self.status.value} programme is not edited")
        values = {k: v for k, v in changes.items() if k in (*PROGRAMME_TEXTS, "opens_at")}
        for name in ("expires_at", "fallback_campaign_id"):
            if name in changes:
                values[name] = changes[name]
        if "fallback_rule" in changes:
            values["fallback_rule"] = FallbackRule(changes["fallback_rule"])
            values.setdefault("fallback_campaign_id", changes.get("fallback_campaign_id"))
        if "dift_value" in changes:
            value = changes["dift_value"]
            values["dift_value"] = Money(value, self.currency) if value is not None else None
        if shortlist is not None:
            values["shortlist"] = tuple(c.id for c in shortlist)
        edited = replace(self, **values)
        return edited

    def funded_with(self, amount: Money, now: datetime) -> tuple[Programme, ProgrammeFunded]:
        """The programme with money received (a first funding, or a top-up)."""
        if self.status is ProgrammeStatus.CLOSED:
            raise ProgrammeRuleBroken("status", "a closed programme takes no more money")
        if amount.currency != self.currency:
            raise ProgrammeRuleBroken("currency", f"this programme is in {self.currency}")
        if amount.amount < 1:
            raise ProgrammeRuleBroken("amount", "a funding is at least one minor unit")
        if self.funded.amount + amount.amount > MAX_BUDGET:
            raise ProgrammeRuleBroken("amount", f"a programme's budget is at most {MAX_BUDGET}")
        status = ProgrammeStatus.FUNDED if self.status is ProgrammeStatus.DRAFT else self.status
        funded = replace(
            self, funded=self.funded + amount, status=status, funded_at=self.funded_at or now
        )
        return funded, ProgrammeFunded(funded, amount, now)

    def can_open(self, now: datetime) -> bool:
        """A funded programme opens once its opening date has come (and before it expires)."""
        return self.status is ProgrammeStatus.FUNDED and self.opens_at <= now < self.expires_at

    def opened(self, now: datetime) -> Programme:
        """The funded programme, open: its difts can be issued and directed."""
        if self.status is not ProgrammeStatus.FUNDED:
            raise ProgrammeRuleBroken("status", f"a {self.status.value} programme cannot open")
        if now < self.opens_at:
            raise ProgrammeRuleBroken("opens_at", "the programme's opening date has not come")
        return replace(self, status=ProgrammeStatus.OPEN, opened_at=now)

    def value_of(self, given: Money | None) -> Money:
        """The value of a new dift: the programme's own, or the one given per recipient."""
        if self.dift_value is not None:
            if given is not None and given != self.dift_value:
                raise ProgrammeRuleBroken(
                    "value", f"every dift of this programme is worth {self.dift_value.amount}"
                )
            return self.dift_value
        if given is None:
            raise ProgrammeRuleBroken("value", "this programme's difts have a value per recipient")
        if given.currency != self.currency:
            raise ProgrammeRuleBroken("value", f"this programme is in {self.currency}")
        if given.amount < 1:
            raise ProgrammeRuleBroken("value", "a dift is worth at least one minor unit")
        return given

    def reserving(self, value: Money, now: datetime) -> Programme:
        """The programme with one more dift of `value` issued; refused beyond its budget or
        when it is not open."""
        if self.status is not ProgrammeStatus.OPEN:
            raise ProgrammeRuleBroken("status", f"a {self.status.value} programme issues no difts")
        if now >= self.expires_at:
            raise ProgrammeRuleBroken("status", "the programme has expired")
        if self.available < value:
            raise ProgrammeRuleBroken(
                "budget",
                f"the budget left ({self.available.amount}) is less than {value.amount}",
            )
        return replace(self, reserved=self.reserved + value)

    def crediting_back(
        self, amount: Money, reference: str, credit_id: str, now: datetime
    ) -> tuple[Programme, ProgrammeCreditedBack]:
        """Unused budget given back to the sponsor, never more than what is available."""
        if self.status is ProgrammeStatus.CLOSED:
            raise ProgrammeRuleBroken("status", "a closed programme has nothing left")
        if amount.currency != self.currency or amount.amount < 1:
            raise ProgrammeRuleBroken("amount", f"a positive amount in {self.currency}")
        if self.available < amount:
            raise ProgrammeRuleBroken(
                "amount", f"only {self.available.amount} of the budget is unused"
            )
        credited = replace(self, credited_back=self.credited_back + amount)
        return credited, ProgrammeCreditedBack(
            credited, credit_id, amount, CreditReason.UNUSED_BUDGET, reference, now
        )

    def expiring_to_credit(self, value: Money) -> Programme:
        """The programme with an expired dift's value kept for the credit back at closing."""
        return replace(self, expired_to_credit=self.expired_to_credit + value)

    def ended_early(self, now: datetime) -> Programme:
        """The open programme expiring now rather than at its expiry date (the company ends it
        early): the next expiry round gives its undirected difts by the fallback rule."""
        if self.status is not ProgrammeStatus.OPEN:
            raise ProgrammeRuleBroken("status", f"a {self.status.value} programme is not ended")
        if now >= self.expires_at:
            raise ProgrammeRuleBroken("expires_at", "the programme has expired already")
        return replace(self, expires_at=now)

    def is_past_expiry(self, now: datetime) -> bool:
        """Whether the difts of an open programme expire now."""
        return self.status is ProgrammeStatus.OPEN and now >= self.expires_at

    def accepts_directions(self, now: datetime) -> bool:
        """Whether its difts can be directed now."""
        return self.status is ProgrammeStatus.OPEN and now < self.expires_at

    def closed(
        self, credit_ids: tuple[str, str], now: datetime
    ) -> tuple[Programme, list[ProgrammeCreditedBack]]:
        """The programme closed, once every dift was directed or expired: what remains of the
        fund (the expired difts' value under credit_back, then the unused budget) goes back to
        the sponsor, so its balance ends at zero."""
        if self.status not in (ProgrammeStatus.OPEN, ProgrammeStatus.FUNDED):
            raise ProgrammeRuleBroken("status", f"a {self.status.value} programme cannot close")
        unused = self.available
        closed = replace(
            self,
            status=ProgrammeStatus.CLOSED,
            closed_at=now,
            credited_back=self.credited_back + self.expired_to_credit + unused,
        )
        credits = []
        if self.expired_to_credit.is_positive():
            credits.append(
                ProgrammeCreditedBack(
                    closed,
                    credit_ids[0],
                    self.expired_to_credit,
                    CreditReason.EXPIRED_DIFTS,
                    "",
                    now,
                )
            )
        if unused.is_positive():
            credits.append(
                ProgrammeCreditedBack(closed, credit_ids[1], unused, CreditReason.CLOSING, "", now)
            )
        return closed, credits


@dataclass(frozen=True)
class ProgrammeFunded:
    """Money arrived for a programme (the funding's details are the handler's)."""

    programme: Programme
    amount: Money
    at: datetime


@dataclass(frozen=True)
class ProgrammeCreditedBack:
    """Money of a programme's fund went back to its sponsor."""

    programme: Programme
    credit_id: str
    amount: Money
    reason: CreditReason
    reference: str
    at: datetime


# --- difts ------------------------------------------------------------------------------------


class DiftState(StrEnum):
    """Where a dift is in its life."""

    ISSUED = "issued"
    SENT = "sent"
    OPENED = "opened"
    DIRECTED = "directed"
    EXPIRED = "expired"


class Channel(StrEnum):
    """How a dift reaches its recipient."""

    EMAIL = "email"
    CODE = "code"
    API = "api"


UNDIRECTED = (DiftState.ISSUED, DiftState.SENT, DiftState.OPENED)


@dataclass(frozen=True)
class Recipient:
    """Who a dift was sent to (none for an anonymous code)."""

    email: str
    name: str = ""
    locale: str = "fr"


@dataclass(frozen=True)
class Allocation:
    """The part of a dift that goes to one campaign."""

    campaign_id: str
    amount: Money


@dataclass(frozen=True)
class Dift:
    """A prepaid donation offered as a gift: its value, who it went to, and its state."""

    id: str
    programme_id: str
    channel: Channel
    value: Money
    state: DiftState
    issued_at: datetime
    recipient: Recipient | None = None
    sponsor_reference: str | None = None
    upload_id: str | None = None
    sent_at: datetime | None = None
    bounced_at: datetime | None = None
    opened_at: datetime | None = None
    directed_at: datetime | None = None
    expired_at: datetime | None = None
    updates_opt_in: bool = False
    fallback_rule: FallbackRule | None = None
    allocations: tuple[Allocation, ...] = field(default_factory=tuple)

    @classmethod
    def issue(
        cls,
        dift_id: str,
        programme: Programme,
        channel: Channel,
        value: Money,
        now: datetime,
        recipient: Recipient | None = None,
        sponsor_reference: str | None = None,
        upload_id: str | None = None,
    ) -> tuple[Dift, DiftIssued]:
        """A new dift of an open programme (the programme reserved its value)."""
        if channel is Channel.EMAIL and recipient is None:
            raise DiftRuleBroken("recipient", "a dift sent by email needs a recipient")
        if channel is Channel.CODE and recipient is not None:
            raise DiftRuleBroken("recipient", "a printed code names no recipient")
        dift = cls(
            id=dift_id,
            programme_id=programme.id,
            channel=channel,
            value=value,
            state=DiftState.ISSUED,
            issued_at=now,
            recipient=recipient,
            sponsor_reference=sponsor_reference,
            upload_id=upload_id,
        )
        return dift, DiftIssued(dift, now)

    def _undirected(self) -> None:
        if self.state is DiftState.DIRECTED:
            raise DiftAlreadyDirected()
        if self.state is DiftState.EXPIRED:
            raise DiftExpired()

    def sent(self, now: datetime, bounced: bool = False) -> tuple[Dift, DiftSent]:
        """The invitation left (or bounced): an issued dift is sent."""
        if self.state is not DiftState.ISSUED:
            raise DiftRuleBroken("state", f"a {self.state.value} dift is not sent again")
        if bounced:
            return replace(self, bounced_at=now), DiftSent(self, now, bounced=True)
        sent = replace(self, state=DiftState.SENT, sent_at=now)
        return sent, DiftSent(sent, now)

    def opened(self, now: datetime) -> tuple[Dift, DiftOpened]:
        """Its recipient opened the dift's page (once: a second opening is not a transition)."""
        self._undirected()
        if self.state is DiftState.OPENED:
            raise DiftRuleBroken("state", "the dift was opened already")
        opened = replace(self, state=DiftState.OPENED, opened_at=now)
        return opened, DiftOpened(opened, now)

    def directed(
        self, allocations: tuple[Allocation, ...], updates_opt_in: bool, now: datetime
    ) -> tuple[Dift, DiftDirected]:
        """Its recipient chose where it goes (allocations checked by `direction`)."""
        self._undirected()
        _check_sum(self.value, allocations)
        directed = replace(
            self,
            state=DiftState.DIRECTED,
            directed_at=now,
            allocations=allocations,
            updates_opt_in=updates_opt_in,
        )
        return directed, DiftDirected(directed, now)

    def expired(self, programme: Programme, now: datetime) -> tuple[Dift, DiftExpiredEvent]:
        """Nobody directed it by the programme's expiry: the fallback rule gives it."""
        self._undirected()
        if now < programme.expires_at:
            raise DiftRuleBroken("expires_at", "the programme has not expired yet")
        allocations = fallback_allocations(programme, self.value)
        expired = replace(
            self,
            state=DiftState.EXPIRED,
            expired_at=now,
            allocations=allocations,
            fallback_rule=programme.fallback_rule,
        )
        return expired, DiftExpiredEvent(expired, programme.fallback_rule, now)


@dataclass(frozen=True)
class DiftIssued:
    dift: Dift
    at: datetime


@dataclass(frozen=True)
class DiftSent:
    dift: Dift
    at: datetime
    bounced: bool = False


@dataclass(frozen=True)
class DiftOpened:
    dift: Dift
    at: datetime


@dataclass(frozen=True)
class DiftDirected:
    dift: Dift
    at: datetime


@dataclass(frozen=True)
class DiftExpiredEvent:
    dift: Dift
    rule: FallbackRule
    at: datetime


# --- allocations ------------------------------------------------------------------------------


def _check_sum(value: Money, allocations: tuple[Allocation, ...]) -> None:
    total = Money.zero(value.currency)
    for allocation in allocations:
        total = total + allocation.amount
    if total != value:
        raise DiftRuleBroken(
            "allocations", f"the allocations sum to {total.amount}, not {value.amount}"
        )


def all_to_one(programme: Programme, value: Money, campaign_id: str) -> tuple[Allocation, ...]:
    """The whole value to one shortlisted campaign."""
    if campaign_id not in programme.shortlist:
        raise DiftRuleBroken("campaign_id", "choose a campaign of the shortlist")
    return (Allocation(campaign_id, value),)


def split(
    programme: Programme, value: Money, shares: Sequence[tuple[str, Money]]
) -> tuple[Allocation, ...]:
    """A recipient's split: whole major units per shortlisted campaign (zero shares left out),
    summing to the value's whole units; the value's cents go with the first chosen campaign in
    shortlist order. Returned in shortlist order."""
    unit = 10 ** CURRENCY_EXPONENTS[value.currency]
    chosen: dict[str, int] = {}
    for campaign_id, amount in shares:
        if campaign_id not in programme.shortlist:
            raise DiftRuleBroken("allocations", "choose campaigns of the shortlist")
        if campaign_id in chosen:
            raise DiftRuleBroken("allocations", "a campaign is chosen twice")
        if amount.currency != value.currency:
            raise DiftRuleBroken("allocations", f"the dift is in {value.currency}")
        if amount.amount < 0 or amount.amount % unit:
            raise DiftRuleBroken("allocations", "split in whole units (no cents, none negative)")
        if amount.amount:
            chosen[campaign_id] = amount.amount
    whole = major_units(value) * unit
    if not chosen:
        raise DiftRuleBroken("allocations", "choose at least one campaign")
    if sum(chosen.values()) != whole:
        raise DiftRuleBroken(
            "allocations",
            f"the shares sum to {sum(chosen.values()) // unit}, not {whole // unit}",
        )
    ordered = [cid for cid in programme.shortlist if cid in chosen]
    cents = value.amount - whole
    allocations = tuple(
        Allocation(cid, Money(chosen[cid] + (cents if i == 0 else 0), value.currency))
        for i, cid in enumerate(ordered)
    )
    _check_sum(value, allocations)
    return allocations


def direction(
    programme: Programme,
    value: Money,
    *,
    one_campaign_id: str | None = None,
    shares: Sequence[tuple[str, Money]] | None = None,
) -> tuple[Allocation, ...]:
    """Where a recipient sends a dift: all to one campaign, or a split (exactly one of them)."""
    if (one_campaign_id is None) == (shares is None):
        raise DiftRuleBroken("allocations", "choose one campaign or a split, not both")
    if one_campaign_id is not None:
        return all_to_one(programme, value, one_campaign_id)
    assert shares is not None
    return split(programme, value, shares)


def fallback_allocations(programme: Programme, value: Money) -> tuple[Allocation, ...]:
    """What the fallback rule gives an expired dift: an even split in shortlist order
    (remainder cents to the first campaigns; a share of nothing is left out), all to the named
    campaign, or nothing (the value is credited back)."""
    if programme.fallback_rule is FallbackRule.CREDIT_BACK:
        return ()
    if programme.fallback_rule is FallbackRule.ONE_CAMPAIGN:
        assert programme.fallback_campaign_id is not None
        return (Allocation(programme.fallback_campaign_id, value),)
    shares = split_evenly(value, len(programme.shortlist))
    return tuple(
        Allocation(cid, share)
        for cid, share in zip(programme.shortlist, shares, strict=True)
        if share.is_positive()
    )


# --- records kept beside them -------------------------------------------------------------------


@dataclass(frozen=True)
class Funding:
    """Money received for a programme, once per `source` ("stripe:<checkout session id>" or
    "bank:<reference>")."""

    id: str
    programme_id: str
    source: str
    method: FundingMethod
    amount: Money
    funded_at: datetime
    fee: int | None = None
    net: int | None = None
    checkout_session_id: str | None = None
    payment_intent_id: str | None = None
    charge_id: str | None = None
    balance_transaction_id: str | None = None
    bank_reference: str | None = None
    received_on: date | None = None


@dataclass(frozen=True)
class CreditBack:
    """Money of a programme given back to its sponsor."""

    id: str
    programme_id: str
    amount: Money
    reason: CreditReason
    reference: str
    credited_at: datetime


class UploadStatus(StrEnum):
    """Where a recipient file's issuing is."""

    ISSUING = "issuing"
    DONE = "done"
    STOPPED = "stopped"


@dataclass(frozen=True)
class RecipientUpload:
    """A validated recipient file, issued by the worker in chunks: `issued` of `total`."""

    id: str
    programme_id: str
    status: UploadStatus
    total: int
    issued: int
    created_at: datetime
    problem: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class UploadRow:
    """One recipient of an upload, and the dift issued to them once it is."""

    upload_id: str
    line: int
    email: str
    name: str
    locale: str
    value: int | None
    sponsor_reference: str | None
    dift_id: str | None = None


@dataclass(frozen=True)
class IssuedReceipt:
    """A mécénat receipt issued for a funding: its number, unique and gapless per issuing
    organisation and year ("2026-000001")."""

    id: str
    number: str
    organisation: str
    year: int
    sequence: int
    programme_id: str
    funding_id: str
    sponsor_id: str
    amount: Money
    received_on: date
    form: str
    issued_on: date


def receipt_number(year: int, sequence: int) -> str:
    """A receipt's number as printed: the year and the sequence on six digits."""
    return f"{year}-{sequence:06d}"


# The receipt's "forme du don" per funding method (CERFA 16216).
RECEIPT_FORMS = {FundingMethod.BANK_TRANSFER: "virement", FundingMethod.STRIPE: "carte bancaire"}


@dataclass(frozen=True)
class ProgrammeCheckout:
    """A programme's budget to pay on Stripe Checkout (card or SEPA debit): the programme id
    travels in the session's and payment's metadata; `request_id` makes Stripe's idempotency
    key, so a retried request opens no second session."""

    programme_id: str
    sponsor_id: str
    programme_name: str
    amount: Money
    contact_email: str
    success_url: str
    cancel_url: str
    request_id: str
