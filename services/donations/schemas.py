"""The donations HTTP API's request and response shapes."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.shared.events import MinorUnits
from services.shared.money import normalise_currency


class Currency(fields.String):
    """An ISO 4217 code we accept, in any case; loaded in upper case."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalise_currency(text)
        except ValueError as error:
            raise ValidationError(f"unknown or unsupported currency {text!r}") from error


class DonorSchema(Schema):
    class Meta:
        unknown = RAISE

    email = fields.Email(required=True, validate=validate.Length(max=320))
    name = fields.String(load_default="", validate=validate.Length(max=200))


class DonationRequestSchema(Schema):
    """A gift: an amount in minor units, or a number of meals."""

    class Meta:
        unknown = RAISE

    amount = MinorUnits(
        validate=validate.Range(min=1, max=10**9),
        metadata={"description": "minor units (cents); or give `meals`"},
    )
    meals = fields.Integer(strict=True, validate=validate.Range(min=1, max=10_000))
    currency = Currency(metadata={"description": "ISO 4217; must be the campaign's"})
    donor = fields.Nested(DonorSchema, required=True)
    updates_opt_in = fields.Boolean(load_default=False)
    locale = fields.String(validate=validate.OneOf(["en", "fr"]))

    @validates_schema
    def _amount_or_meals(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if ("amount" in data) == ("meals" in data):
            raise ValidationError(
                "give either `amount` (minor units) or `meals`, not both", field_name="amount"
            )
        if isinstance(data.get("meals"), bool):
            raise ValidationError("Not a valid integer.", field_name="meals")


class DonationSchema(Schema):
    """A donation as its donor may see it (no personal data)."""

    id = fields.String()
    campaign = fields.String()
    status = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    meals = fields.Integer()
    checkout_url = fields.String()


class CampaignSchema(Schema):
    """A campaign's public facts."""

    id = fields.String()
    slug = fields.String()
    title = fields.String()
    cause = fields.String()
    currency = fields.String()
    meal_price = fields.Integer(metadata={"description": "minor units"})
    goal_meals = fields.Integer(allow_none=True)
    status = fields.String()
