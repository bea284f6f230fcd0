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
    updates_opt_in = fields.Boolean(
        load_default=False,
        metadata={"description": "consent to the campaign's news; off by default"},
    )
    locale = fields.String(validate=validate.OneOf(["en", "fr"]))
    anonymous = fields.Boolean(
        load_default=False, metadata={"description": "never show the donor's name publicly"}
    )
    public_message = fields.String(
        validate=validate.Length(max=280),
        metadata={"description": "a message for the campaign page (at most 280 characters)"},
    )
    show_message = fields.Boolean(
        load_default=False, metadata={"description": "allow the message to be shown publicly"}
    )
    cover_fee = fields.Boolean(
        load_default=False,
        metadata={
            "description": "add the estimated processing fee so the cause gets the whole gift"
        },
    )

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
    fee_covered = fields.Integer(metadata={"description": "minor units added to cover the fee"})
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
    cause_certified = fields.Boolean()
    action_zone = fields.String()
    summary = fields.String()
    story_markdown = fields.String()
    story_html = fields.String()
    money_uses = fields.List(fields.String())
    meals_funded = fields.Integer(metadata={"description": "from the ledger's events"})
    giving = fields.Dict(metadata={"description": "presets, limits and the fee estimate"})


def _text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


class CampaignEditSchema(Schema):
    """What a campaign manager may change (every field optional)."""

    class Meta:
        unknown = RAISE

    title = _text(300)
    cause = _text(300, metadata={"description": "the association's name"})
    cause_certified = fields.Boolean()
    action_zone = fields.String(validate=validate.Length(max=200))
    summary = fields.String(validate=validate.Length(max=2000))
    story_markdown = fields.String(
        validate=validate.Length(max=50_000), metadata={"description": "Markdown"}
    )
    money_uses = fields.List(
        fields.String(validate=validate.Length(min=1, max=500)), validate=validate.Length(max=20)
    )
    goal_meals = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=10**8)
    )
    meal_price = MinorUnits(
        validate=validate.Range(min=1, max=10**7),
        metadata={"description": "minor units; a draft only (a live campaign: meal-price)"},
    )
    currency = Currency()


class CampaignCreateSchema(CampaignEditSchema):
    """A new campaign, written as a draft."""

    slug = fields.String(
        required=True,
        validate=[
            validate.Length(min=3, max=100),
            validate.Regexp(r"^[a-z0-9]+(?:-[a-z0-9]+)*$", error="lower-case words joined by -"),
        ],
    )
    title = _text(300, required=True)
    cause = _text(300, required=True)
    meal_price = MinorUnits(required=True, validate=validate.Range(min=1, max=10**7))
    currency = Currency(required=True)


class MealPriceChangeSchema(Schema):
    """A live campaign's new meal price, from a date on."""

    class Meta:
        unknown = RAISE

    meal_price = MinorUnits(required=True, validate=validate.Range(min=1, max=10**7))
    currency = Currency(required=True)
    effective_from = fields.AwareDateTime(
        required=True, metadata={"description": "ISO 8601 with a zone; not in the past"}
    )


class MealPriceChangedSchema(Schema):
    meal_price = fields.Integer()
    effective_from = fields.DateTime()
    announced = fields.Boolean()


class NewsPostRequestSchema(Schema):
    """A news post: published now, or at `publish_at`."""

    class Meta:
        unknown = RAISE

    title = _text(300, required=True)
    body_markdown = fields.String(required=True, validate=validate.Length(min=1, max=50_000))
    publish_at = fields.AwareDateTime(metadata={"description": "ISO 8601 with a zone"})
    locale = fields.String(load_default="fr", validate=validate.OneOf(["en", "fr"]))


class NewsPostSchema(Schema):
    id = fields.String()
    campaign = fields.String()
    title = fields.String()
    body_markdown = fields.String()
    body_html = fields.String()
    locale = fields.String()
    publish_at = fields.DateTime(allow_none=True)
    published_at = fields.DateTime(allow_none=True)
    url = fields.String()
