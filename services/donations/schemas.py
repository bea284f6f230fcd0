"""The donations HTTP API's request and response shapes."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.shared.events import MinorUnits
from services.shared.fields import JsonBoolean, JsonInteger, Mailbox, Text, UtcDateTime
from services.shared.i18n import LOCALES
from services.shared.money import CURRENCY_EXPONENTS


def _any_case(code: str) -> str:
    return "".join(f"[{letter.upper()}{letter.lower()}]" for letter in code)


# The codes we accept, in any case ("eur", "EUR", "Eur"), as a pattern the document can carry.
CURRENCY_PATTERN = "^(?:" + "|".join(_any_case(code) for code in sorted(CURRENCY_EXPONENTS)) + ")$"


class Currency(fields.String):
    """An ISO 4217 code we accept, in any case; loaded in upper case."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "pattern": CURRENCY_PATTERN,
            "description": f"ISO 4217, one of {', '.join(sorted(CURRENCY_EXPONENTS))}",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(CURRENCY_PATTERN, text):
            raise ValidationError(f"unknown or unsupported currency {text!r}")
        return text.upper()


class DonorSchema(Schema):
    class Meta:
        unknown = RAISE

    email = Mailbox(required=True)
    name = Text(200, load_default="")


class DonationRequestSchema(Schema):
    """A gift: an amount in minor units, or a number of meals (exactly one of them). Whether
    the campaign takes it depends on the campaign and the configuration, and is answered 422
    with the field at fault: the amount (or meals times the campaign's meal price, plus the
    fee when covered) within DONATION_MIN_AMOUNT..DONATION_MAX_AMOUNT (default 100 to
    1,000,000 minor units), the campaign's currency, a message within
    DONATION_MESSAGE_MAX_LENGTH."""

    class Meta:
        unknown = RAISE

    # What _amount_or_meals enforces, in the document's words.
    openapi_keywords: ClassVar[dict[str, Any]] = {
        "oneOf": [{"required": ["amount"]}, {"required": ["meals"]}]
    }

    amount = MinorUnits(
        validate=validate.Range(min=1, max=10**9),
        metadata={
            "description": "minor units (cents); or give `meals`; within the configured "
            "limits (default 100 to 1,000,000)"
        },
    )
    meals = JsonInteger(
        validate=validate.Range(min=1, max=10_000),
        metadata={"description": "meals at the campaign's meal price; or give `amount`"},
    )
    currency = Currency(metadata={"description": "ISO 4217; must be the campaign's"})
    donor = fields.Nested(DonorSchema, required=True)
    updates_opt_in = JsonBoolean(
        load_default=False,
        metadata={"description": "consent to the campaign's news; off by default"},
    )
    locale = fields.String(validate=validate.OneOf(["en", "fr"]))
    anonymous = JsonBoolean(
        load_default=False, metadata={"description": "never show the donor's name publicly"}
    )
    public_message = Text(
        280,
        metadata={"description": "a message for the campaign page (at most 280 characters)"},
    )
    show_message = JsonBoolean(
        load_default=False, metadata={"description": "allow the message to be shown publicly"}
    )
    cover_fee = JsonBoolean(
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


class IdempotencyKeySchema(Schema):
    """The optional Idempotency-Key header of a gift: a retried request with the same key gets
    the first answer. Printable ASCII, no space at either end (HTTP would drop it)."""

    class Meta:
        unknown = EXCLUDE

    key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(
            r"^[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?$",
            error="1 to 200 printable ASCII characters",
        ),
        metadata={"description": "a retried request with the same key gets the first answer"},
    )


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


class CampaignTextsSchema(Schema):
    """A campaign's texts in one language; a text left out or empty reads the campaign's
    default one, and a language with no text at all reads them all."""

    class Meta:
        unknown = RAISE

    title = Text(300, load_default="")
    summary = Text(2000, load_default="")
    story_markdown = Text(50_000, load_default="", metadata={"description": "Markdown"})
    money_uses = fields.List(Text(500, min_length=1), validate=validate.Length(max=20))


class CampaignTranslationsSchema(Schema):
    """A campaign's texts per language: an object with one key per language, so the OpenAPI
    document says which languages there are (no other key is accepted)."""

    class Meta:
        unknown = RAISE

    fr = fields.Nested(CampaignTextsSchema)
    en = fields.Nested(CampaignTextsSchema)


assert set(CampaignTranslationsSchema().fields) == set(LOCALES)


def _translations(**kwargs: Any) -> fields.Nested:
    return fields.Nested(
        CampaignTranslationsSchema,
        metadata={
            "description": "texts per language of the donor pages ("
            + ", ".join(LOCALES)
            + '), e.g. {"en": {"title": ...}}; a donor page in a language reads its '
            "texts, each one missing or empty falling back to the default (top-level) one"
        },
        **kwargs,
    )


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
    translations = _translations()
    meals_funded = fields.Integer(metadata={"description": "from the ledger's events"})
    difts_received = fields.Integer(
        metadata={"description": "company difts directed (or given at expiry) to the campaign"}
    )
    giving = fields.Dict(metadata={"description": "presets, limits and the fee estimate"})


def _text(max_length: int, **kwargs: Any) -> Text:
    return Text(max_length, min_length=1, **kwargs)


class CampaignEditSchema(Schema):
    """What a campaign manager may change (every field optional)."""

    class Meta:
        unknown = RAISE

    title = _text(300)
    cause = _text(300, metadata={"description": "the association's name"})
    cause_certified = JsonBoolean()
    action_zone = Text(200)
    summary = Text(2000)
    story_markdown = Text(50_000, metadata={"description": "Markdown"})
    money_uses = fields.List(_text(500), validate=validate.Length(max=20))
    translations = _translations()
    goal_meals = JsonInteger(allow_none=True, validate=validate.Range(min=1, max=10**8))
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
        required=True, metadata={"description": "ISO 8601 with a zone; not in the past (422)"}
    )


class MealPriceChangedSchema(Schema):
    meal_price = fields.Integer()
    effective_from = UtcDateTime()
    announced = fields.Boolean()


class NewsPostRequestSchema(Schema):
    """A news post: published now, or at `publish_at`."""

    class Meta:
        unknown = RAISE

    title = _text(300, required=True)
    body_markdown = _text(50_000, required=True)
    publish_at = fields.AwareDateTime(metadata={"description": "ISO 8601 with a zone"})
    locale = fields.String(load_default="fr", validate=validate.OneOf(["en", "fr"]))


class NewsPostSchema(Schema):
    id = fields.String()
    campaign = fields.String()
    title = fields.String()
    body_markdown = fields.String()
    body_html = fields.String()
    locale = fields.String()
    publish_at = UtcDateTime(allow_none=True)
    published_at = UtcDateTime(allow_none=True)
    url = fields.String()


class StripeEventReceiptSchema(Schema):
    """What the Stripe webhook answers for a signed event (always 200: Stripe only needs a
    2xx). The event is committed before the answer; the worker applies it after."""

    received = fields.Boolean(required=True, metadata={"description": "Always true"})
    event = fields.String(
        required=True,
        metadata={
            "description": "The Stripe event id it is kept under (for a body without a usable "
            "id: unreadable_<sha256 of the body>)"
        },
    )
    outcome = fields.String(
        required=True,
        validate=validate.OneOf(["received", "duplicate", "unreadable"]),
        metadata={
            "description": "received: recorded now, to be applied once by the worker; "
            "duplicate: this event id was recorded before (a retry), nothing changes; "
            "unreadable: signed but not an event difts can read, kept for a person"
        },
    )
    problem = fields.String(
        metadata={"description": "For an unreadable event: what is wrong with it"}
    )
