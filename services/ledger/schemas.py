"""The ledger HTTP API's response shapes. Money is integer minor units plus a currency."""

from __future__ import annotations

from marshmallow import Schema, fields


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
