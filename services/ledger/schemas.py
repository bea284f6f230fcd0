"""The ledger HTTP API's response shapes. Money is integer minor units plus a currency."""

from __future__ import annotations

from datetime import UTC

from marshmallow import EXCLUDE, Schema, fields, validate


class CampaignSummarySchema(Schema):
    """What a campaign has received and the meals it funds, as the ledger counts them."""

    campaign = fields.String(required=True, metadata={"description": "the campaign's slug"})
    campaign_id = fields.String(required=True)
    title = fields.String(required=True)
    currency = fields.String(required=True, metadata={"description": "ISO 4217"})
    meal_price = fields.Integer(required=True, metadata={"description": "minor units"})
    goal_meals = fields.Integer(allow_none=True)
    donated = fields.Integer(required=True, metadata={"description": "gross, minor units"})
    refunded = fields.Integer(required=True, metadata={"description": "minor units"})
    donations = fields.Integer(required=True, metadata={"description": "gifts counted"})
    meals_funded = fields.Integer(
        required=True, metadata={"description": "floor((donated - refunded) / meal_price)"}
    )
    remainder = fields.Integer(
        required=True, metadata={"description": "minor units carried towards the next meal"}
    )


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

    campaign = fields.String(metadata={"description": "campaign id or slug"})
    account = fields.String(metadata={"description": "an account, or a prefix ending in ':'"})
    since = fields.AwareDateTime(default_timezone=UTC)
    until = fields.AwareDateTime(default_timezone=UTC)
    stripe_id = fields.String(metadata={"description": "charge, refund, dispute, payout, txn"})
    cursor = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class JournalLineSchema(Schema):
    account = fields.String()
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
    next_cursor = fields.String(allow_none=True)


class TrialBalanceQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    at = fields.AwareDateTime(default_timezone=UTC, load_default=None)
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class ReconciliationQuerySchema(Schema):
    """A payout, or a period [since, until) of balance transactions."""

    class Meta:
        unknown = EXCLUDE

    payout = fields.String()
    since = fields.AwareDateTime(default_timezone=UTC)
    until = fields.AwareDateTime(default_timezone=UTC)
