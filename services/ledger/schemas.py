"""The ledger HTTP API's request and response shapes. Money is integer minor units plus a
currency. Each query schema says in the OpenAPI document exactly what the service accepts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.shared.fields import Text, UtcDateTime

from .domain import EntryKind, account_name
from .history import INTERVALS, MAX_BUCKETS


def _filter_text(description: str) -> Text:
    return Text(200, metadata={"description": description})


class JournalCursor(fields.String):
    """Where a journal page starts: after the entry at (effective date, entry id), written
    `<microseconds since 0001-01-01T00:00:00Z>.<entry id>`. Every such value is a place in the
    journal's order, so any cursor the pattern allows pages from there."""

    PATTERN = r"^[0-9]{1,17}\.[0-9]{1,18}$"
    _ORIGIN = datetime(1, 1, 1, tzinfo=UTC)
    _MICROSECOND = timedelta(microseconds=1)

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "pattern": self.PATTERN,
            "description": "next_cursor of the previous page",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(  # type: ignore[override]  # a String in the document, a position in code
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[datetime, int]:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(self.PATTERN, text):
            raise ValidationError("not a journal cursor (next_cursor of a page)")
        micros, entry_id = text.split(".")
        return self._ORIGIN + int(micros) * self._MICROSECOND, int(entry_id)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        moment, entry_id = value
        micros = (moment.astimezone(UTC) - self._ORIGIN) // self._MICROSECOND
        return f"{micros}.{entry_id}"


class CampaignSummarySchema(Schema):
    """What a campaign has received and the meals it funds, as the ledger counts them."""

    campaign = fields.String(required=True, metadata={"description": "the campaign's slug"})
    campaign_id = fields.String(required=True)
    title = fields.String(required=True)
    currency = fields.String(required=True, metadata={"description": "ISO 4217"})
    meal_price = fields.Integer(required=True, metadata={"description": "minor units"})
    goal_meals = fields.Integer(allow_none=True)
    donated = fields.Integer(
        required=True, metadata={"description": "donors' own gifts, gross, minor units"}
    )
    refunded = fields.Integer(required=True, metadata={"description": "minor units"})
    donations = fields.Integer(required=True, metadata={"description": "gifts counted"})
    meals_funded = fields.Integer(
        required=True,
        metadata={
            "description": "the campaign's counter, gifts and difts together: floor((donated "
            "- refunded + difts_amount) / meal_price) over the price periods"
        },
    )
    remainder = fields.Integer(
        required=True, metadata={"description": "minor units carried towards the next meal"}
    )
    gift_meals = fields.Integer(
        required=True,
        metadata={"description": "meals of the counter donors' gifts funded (not difts)"},
    )
    difts_amount = fields.Integer(
        required=True,
        metadata={
            "description": "minor units difts brought: directed by their recipients or given "
            "by a programme's fallback rule at expiry"
        },
    )
    difts_received = fields.Integer(
        required=True,
        metadata={"description": "difts directed (or given by fallback) here, each once"},
    )
    dift_meals = fields.Integer(
        required=True, metadata={"description": "meals difts completed when they were booked"}
    )


class ProgrammeCampaignSchema(Schema):
    """What one campaign received from a programme's difts."""

    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "minor units"})
    meals = fields.Integer(
        required=True, metadata={"description": "meals these difts completed when booked"}
    )
    difts = fields.Integer(required=True, metadata={"description": "difts counted once each"})


class ProgrammeBalanceSchema(Schema):
    """A programme's fund: what was paid in, what its difts gave, what went back to the
    sponsor, and what it holds (minor units of `currency`)."""

    programme_id = fields.String(required=True)
    sponsor_id = fields.String(required=True)
    currency = fields.String(required=True, metadata={"description": "ISO 4217"})
    funded = fields.Integer(required=True, metadata={"description": "paid in, all fundings"})
    fees = fields.Integer(
        required=True, metadata={"description": "Stripe's fees on them (the platform's expense)"}
    )
    directed = fields.Integer(required=True, metadata={"description": "directed by recipients"})
    expired_given = fields.Integer(
        required=True, metadata={"description": "given by the fallback rule of expired difts"}
    )
    credited_back = fields.Integer(required=True, metadata={"description": "back to the sponsor"})
    balance = fields.Integer(
        required=True,
        metadata={"description": "funded - directed - expired_given - credited_back, never < 0"},
    )
    fund_balance = fields.Integer(
        required=True,
        metadata={"description": "the fund's account in the journal (equals balance)"},
    )
    difts_directed = fields.Integer(required=True)
    difts_expired = fields.Integer(required=True)
    campaigns = fields.List(fields.Nested(ProgrammeCampaignSchema), required=True)


class ProgrammePathSchema(Schema):
    """A programme of difts, in the path."""

    programme_id = Text(200, required=True)


class FinanceSummarySchema(CampaignSummarySchema):
    """The public summary plus what finance staff reconcile, all in minor units."""

    fee_policy = fields.String(required=True, metadata={"description": "platform or campaign"})
    fees = fields.Integer(required=True, metadata={"description": "Stripe processing fees"})
    fee_covered = fields.Integer(required=True, metadata={"description": "donors' fee cover"})
    net = fields.Integer(required=True, metadata={"description": "net through Stripe clearing"})
    disputed = fields.Integer(required=True, metadata={"description": "withdrawn, dispute open"})
    dispute_fees = fields.Integer(required=True)
    dispute_lost = fields.Integer(required=True)
    fund_balance = fields.Integer(required=True, metadata={"description": "the fund holds"})
    paid_out = fields.Integer(required=True, metadata={"description": "settled by payouts"})


class FeePolicySchema(Schema):
    """Who bears the processing fees of a campaign's gifts booked from now on."""

    fee_policy = fields.String(required=True, validate=validate.OneOf(["platform", "campaign"]))


class JournalQuerySchema(Schema):
    """Filters of the journal; dates are effective dates, `until` excluded."""

    class Meta:
        unknown = EXCLUDE

    campaign = _filter_text("campaign id or slug")
    account = _filter_text("an account, or a prefix ending in ':'")
    kind = fields.String(
        validate=validate.OneOf([kind.value for kind in EntryKind]),
        metadata={"description": "the entries of one kind (donation, refund, payout, ...)"},
    )
    since = UtcDateTime()
    until = UtcDateTime()
    stripe_id = _filter_text("charge, refund, dispute, payout, txn")
    cursor = JournalCursor()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class JournalLineSchema(Schema):
    account = fields.String()
    account_name = fields.Function(
        lambda line: account_name(line["account"]),
        metadata={"description": "the account in finance staff's words"},
    )
    currency = fields.String()
    amount = fields.Integer(metadata={"description": "signed minor units, debit positive"})


class JournalEntrySchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    description = fields.String()
    campaign_id = fields.String(allow_none=True)
    donation_id = fields.String(allow_none=True)
    event_id = fields.String()
    stripe_object_id = fields.String(allow_none=True)
    charge_id = fields.String(allow_none=True)
    balance_transaction_id = fields.String(allow_none=True)
    stripe_reference = fields.String(allow_none=True)
    effective_at = fields.DateTime()
    original_effective_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    lines = fields.List(fields.Nested(JournalLineSchema))


class JournalPageSchema(Schema):
    entries = fields.List(fields.Nested(JournalEntrySchema))
    total = fields.Integer(
        metadata={"description": "entries matching the filters, on every page together"}
    )
    next_cursor = JournalCursor(
        allow_none=True, metadata={"description": "the cursor of the next page; null at the end"}
    )


class TrialBalanceQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    at = UtcDateTime(load_default=None, metadata={"description": "default: every entry"})
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class TrialBalanceAccountSchema(Schema):
    """One account's balance in one currency; debits positive."""

    account = fields.String(required=True)
    name = fields.String(required=True)
    currency = fields.String(required=True)
    debit = fields.Integer(required=True, metadata={"description": "minor units"})
    credit = fields.Integer(required=True, metadata={"description": "minor units"})
    balance = fields.Integer(required=True, metadata={"description": "debit - credit"})


class CurrencyTotalSchema(Schema):
    currency = fields.String(required=True)
    balance = fields.Integer(required=True, metadata={"description": "0 when the books balance"})


class TrialBalanceSchema(Schema):
    """Every account's balance at a date; each currency sums to zero."""

    at = fields.String(allow_none=True, metadata={"format": "date-time"})
    accounts = fields.List(fields.Nested(TrialBalanceAccountSchema), required=True)
    totals = fields.List(fields.Nested(CurrencyTotalSchema), required=True)
    balanced = fields.Boolean(required=True)


class PeriodSchema(Schema):
    """A month of the books, in the path."""

    month = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$", error="a period is a month written YYYY-MM"
        ),
        metadata={"description": "YYYY-MM"},
    )


class PeriodClosedSchema(Schema):
    month = fields.String(required=True)
    closed = fields.Boolean(required=True)
    already_closed = fields.Boolean(required=True)


class PeriodQuerySchema(Schema):
    """The period [since, until) of balance transactions to reconcile."""

    class Meta:
        unknown = EXCLUDE

    since = UtcDateTime(required=True)
    until = UtcDateTime(required=True, metadata={"description": "excluded"})


class PayoutPathSchema(Schema):
    """A Stripe payout, in the path."""

    payout = fields.String(
        required=True,
        validate=validate.Regexp(r"^po_[A-Za-z0-9]{1,200}$", error="a Stripe payout id (po_...)"),
    )


class StripeMovementSchema(Schema):
    """A Stripe balance transaction, and the journal entry it matched (if any)."""

    balance_transaction = fields.String(required=True)
    type = fields.String(required=True)
    source = fields.String(allow_none=True)
    currency = fields.String(required=True)
    net = fields.Integer(required=True, metadata={"description": "Stripe's net, minor units"})
    created = fields.String(required=True, metadata={"format": "date-time"})
    entry_id = fields.Integer()
    kind = fields.String()
    ledger_net = fields.Integer(metadata={"description": "the entry's clearing amount"})
    difference = fields.Integer(metadata={"description": "net - ledger_net (mismatches)"})


class LedgerMovementSchema(Schema):
    """A journal entry that moved Stripe clearing and that Stripe does not know."""

    entry_id = fields.Integer(required=True)
    kind = fields.String(required=True)
    stripe_object_id = fields.String(allow_none=True)
    balance_transaction = fields.String(allow_none=True)
    currency = fields.String(required=True)
    net = fields.Integer(required=True)
    effective_at = fields.String(required=True, metadata={"format": "date-time"})


class PayoutSettlementSchema(Schema):
    payout_id = fields.String(required=True)
    booked = fields.Integer(required=True, metadata={"description": "to the bank, minor units"})
    settled = fields.Integer(required=True, metadata={"description": "by Stripe, minor units"})
    difference = fields.Integer(required=True)


def _tally() -> fields.Integer:
    """A count of movements, or their total in minor units: every summary has each."""
    return fields.Integer(required=True)


class ReconciliationSummarySchema(Schema):
    matched = _tally()
    mismatched = _tally()
    mismatched_difference = _tally()
    only_in_stripe = _tally()
    only_in_stripe_total = _tally()
    only_in_ledger = _tally()
    only_in_ledger_total = _tally()


class ReconciliationSchema(Schema):
    """Stripe's balance transactions matched to the journal; balanced only when nothing is
    off."""

    scope = fields.String(required=True)
    balanced = fields.Boolean(required=True)
    matched = fields.List(fields.Nested(StripeMovementSchema), required=True)
    mismatched = fields.List(fields.Nested(StripeMovementSchema), required=True)
    only_in_stripe = fields.List(fields.Nested(StripeMovementSchema), required=True)
    only_in_ledger = fields.List(fields.Nested(LedgerMovementSchema), required=True)
    stripe_total = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "per currency"}
    )
    ledger_total = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "per currency"}
    )
    payout = fields.Nested(PayoutSettlementSchema, allow_none=True)
    summary = fields.Nested(ReconciliationSummarySchema, required=True)


def _minor(description: str) -> fields.Integer:
    return fields.Integer(required=True, metadata={"description": description})


class HistoryQuerySchema(Schema):
    """The range and the buckets of a campaign's history: [since, until) widened to whole
    buckets (UTC days, ISO weeks from Monday, months)."""

    class Meta:
        unknown = EXCLUDE

    interval = fields.String(
        validate=validate.OneOf(INTERVALS),
        metadata={"description": "default: day up to 92 days, week up to 2 years, else month"},
    )
    since = UtcDateTime(metadata={"description": "default: the campaign's first entry"})
    until = UtcDateTime(metadata={"description": "excluded; default: now"})

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError("since must come before until", "until")


class HistoryBucketSchema(Schema):
    """One bucket: what moved in it (minor units), and the running totals at its end."""

    starts_at = UtcDateTime(required=True)
    ends_at = UtcDateTime(required=True, metadata={"description": "excluded"})
    donated = _minor("donors' gifts, gross")
    fees = _minor("Stripe processing fees (less what refunds gave back)")
    net = _minor("net through Stripe clearing")
    refunded = _minor("given back to donors (less refunds that failed)")
    disputed = _minor("withdrawn by open disputes (negative when they end)")
    paid_out = _minor("settled by payouts paid in this bucket")
    difts_amount = _minor("what difts brought")
    meals_funded = _minor("change of the meal counter in this bucket (a refund may lower it)")
    fund_balance = _minor("the fund holds, at the bucket's end")
    meals_total = _minor("the meal counter at the bucket's end")


class HistoryOpeningSchema(Schema):
    fund_balance = _minor("the fund held before the first bucket")
    meals_total = _minor("the meal counter before the first bucket")


class HistoryTotalsSchema(HistoryBucketSchema):
    """The sums over the range, and the running totals at its end."""

    class Meta:
        exclude = ("starts_at", "ends_at")


class CampaignHistorySchema(Schema):
    """A campaign's money and meals over time, from the journal: over a range covering every
    entry, the totals are the finance summary's figures."""

    campaign = fields.String(required=True, metadata={"description": "the campaign's slug"})
    campaign_id = fields.String(required=True)
    currency = fields.String(required=True, metadata={"description": "ISO 4217"})
    interval = fields.String(required=True, validate=validate.OneOf(INTERVALS))
    since = UtcDateTime(required=True, metadata={"description": "the first bucket's start"})
    until = UtcDateTime(required=True, metadata={"description": "the last bucket's end"})
    opening = fields.Nested(HistoryOpeningSchema, required=True)
    buckets = fields.List(
        fields.Nested(HistoryBucketSchema),
        required=True,
        metadata={"description": f"oldest first, at most {MAX_BUCKETS}"},
    )
    totals = fields.Nested(HistoryTotalsSchema, required=True)


class ResyncRequestSchema(Schema):
    """What to re-sync: one payout, or the balance transactions of [since, until)."""

    class Meta:
        unknown = EXCLUDE

    payout = fields.String(
        validate=validate.Regexp(r"^po_[A-Za-z0-9]{1,200}$", error="a Stripe payout id (po_...)"),
    )
    since = UtcDateTime()
    until = UtcDateTime(metadata={"description": "excluded"})

    @validates_schema
    def _one_scope(self, data: dict[str, Any], **_kwargs: Any) -> None:
        period = [key for key in ("since", "until") if data.get(key)]
        if data.get("payout"):
            if period:
                raise ValidationError("give a payout, or since and until, not both", "payout")
            return
        for key in ("since", "until"):
            if key not in period:
                raise ValidationError("give a payout, or since and until", key)
        if data["since"] >= data["until"]:
            raise ValidationError("since must come before until", "until")


class NeedsAPersonSchema(Schema):
    balance_transaction = fields.String(
        required=True, metadata={"description": "the balance transaction (or payout) id"}
    )
    reason = fields.String(required=True)


class ResyncSchema(Schema):
    """What re-sync did: Stripe's movements read, those the ledger lacked, what it booked now,
    what was booked already (by an earlier re-sync or the real event) and what it could not
    book, with the reason."""

    stripe_movements = fields.Integer(required=True)
    missing_from_ledger = fields.Integer(required=True)
    booked = fields.List(fields.String(), required=True)
    already_booked = fields.List(fields.String(), required=True)
    needs_a_person = fields.List(fields.Nested(NeedsAPersonSchema), required=True)
