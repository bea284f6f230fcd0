"""The company difts HTTP API's request and response shapes (programmes_api.py)."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.shared.events import MinorUnits
from services.shared.fields import Mailbox, Text, UtcDateTime

from .domain.programmes import MAX_SHORTLIST, FallbackRule, normalise_siren, siren_is_valid
from .handlers.difts import MAX_CODES_AT_ONCE
from .schemas import Currency

# Every amount is stored in an INTEGER column.
MAX_MINOR_UNITS = 2**31 - 1
SLUG = validate.Regexp(r"^[a-z0-9]+(?:-[a-z0-9]+)*$", error="a campaign's slug")


def _amount(description: str, example: int = 10_000, **kwargs: Any) -> MinorUnits:
    return MinorUnits(
        validate=validate.Range(min=1, max=MAX_MINOR_UNITS),
        metadata={"description": description, "example": example},
        **kwargs,
    )


class Siren(fields.String):
    """A French company's SIREN: 9 digits (spaces allowed) whose Luhn key checks."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "pattern": r"^[0-9 ]{9,11}$",
            "description": "9 digits whose Luhn key checks (spaces allowed: 732 829 320)",
            "example": "732829320",
        }
        super().__init__(metadata=metadata, validate=validate.Length(max=11), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = normalise_siren(super()._deserialize(value, attr, data, **kwargs))
        if not siren_is_valid(text):
            raise ValidationError("a SIREN is 9 digits whose Luhn key checks")
        return text


class SponsorCreateSchema(Schema):
    """A company that funds difts, as its mécénat receipt names it."""

    class Meta:
        unknown = RAISE

    legal_name = Text(300, min_length=1, required=True, metadata={"example": "Acme SAS"})
    legal_form = Text(100, min_length=1, required=True, metadata={"example": "SAS"})
    siren = Siren(required=True)
    postal_address = Text(
        1000, min_length=1, required=True, metadata={"example": "1 rue de la Paix, 75002 Paris"}
    )
    contact_email = Mailbox(required=True, metadata={"example": "csr@acme.example"})
    brand_name = Text(200, load_default="", metadata={"description": "what recipients see"})


class SponsorSchema(Schema):
    """A sponsor; `access_token` only in the answer that created it (shown once)."""

    id = fields.String()
    legal_name = fields.String()
    legal_form = fields.String()
    siren = fields.String()
    postal_address = fields.String()
    contact_email = fields.String()
    brand_name = fields.String()
    created_at = UtcDateTime()
    programmes = fields.List(fields.String())
    access_token = fields.String(
        metadata={"description": "the sponsor role for the company's contact; shown once"}
    )


class _ProgrammeFields(Schema):
    class Meta:
        unknown = RAISE

    name = Text(300, min_length=1)
    occasion = Text(300)
    message_markdown = Text(10_000, metadata={"description": "Markdown, shown as safe HTML"})
    dift_value = MinorUnits(
        validate=validate.Range(min=1, max=10**7),
        allow_none=True,
        metadata={"description": "minor units; null: a value per recipient"},
    )
    shortlist = fields.List(
        fields.String(validate=[validate.Length(max=100), SLUG]),
        validate=validate.Length(min=1, max=MAX_SHORTLIST),
        metadata={"description": f"1 to {MAX_SHORTLIST} published campaigns' slugs, in order"},
    )
    opens_at = UtcDateTime()
    expires_at = UtcDateTime()
    fallback_rule = fields.String(validate=validate.OneOf([r.value for r in FallbackRule]))
    fallback_campaign = fields.String(
        allow_none=True,
        validate=[validate.Length(max=100), SLUG],
        metadata={"description": "the one_campaign rule's campaign (slug, in the shortlist)"},
    )

    @validates_schema
    def _dates(self, data: dict[str, Any], **_kwargs: Any) -> None:
        opens, expires = data.get("opens_at"), data.get("expires_at")
        if opens is not None and expires is not None and expires <= opens:
            raise ValidationError("a programme expires after it opens", field_name="expires_at")


class ProgrammeCreateSchema(_ProgrammeFields):
    """A draft programme of a sponsor."""

    name = Text(300, min_length=1, required=True, metadata={"example": "Year-end difts"})
    currency = Currency(required=True, metadata={"example": "EUR"})
    shortlist = fields.List(
        fields.String(validate=[validate.Length(max=100), SLUG]),
        required=True,
        validate=validate.Length(min=1, max=MAX_SHORTLIST),
        metadata={
            "description": f"1 to {MAX_SHORTLIST} published campaigns' slugs, in order",
            "example": ["petites-cantines"],
        },
    )
    opens_at = UtcDateTime(required=True, metadata={"example": "2026-01-01T00:00:00+00:00"})
    expires_at = UtcDateTime(required=True, metadata={"example": "2099-01-01T00:00:00+00:00"})
    fallback_rule = fields.String(
        load_default=FallbackRule.SPLIT_EVENLY.value,
        validate=validate.OneOf([r.value for r in FallbackRule]),
    )
    dift_value = MinorUnits(
        validate=validate.Range(min=1, max=10**7),
        allow_none=True,
        load_default=None,
        metadata={"description": "minor units; null: a value per recipient", "example": 2000},
    )


class ProgrammeEditSchema(_ProgrammeFields):
    """New texts, value, dates, shortlist or fallback of a draft programme (all optional)."""


class BudgetSchema(Schema):
    funded = fields.Integer()
    reserved = fields.Integer()
    credited_back = fields.Integer()
    available = fields.Integer()


class ReceiptRefSchema(Schema):
    id = fields.String()
    number = fields.String()
    amount = fields.Integer()


class ProgrammeSchema(Schema):
    """A programme and its budget's figures (minor units)."""

    id = fields.String()
    sponsor_id = fields.String()
    name = fields.String()
    occasion = fields.String()
    message_markdown = fields.String()
    message_html = fields.String()
    currency = fields.String()
    dift_value = fields.Integer(allow_none=True)
    shortlist = fields.List(fields.String())
    opens_at = UtcDateTime()
    expires_at = UtcDateTime()
    fallback_rule = fields.String()
    fallback_campaign = fields.String(allow_none=True)
    status = fields.String()
    budget = fields.Nested(BudgetSchema)
    receipts = fields.List(fields.Nested(ReceiptRefSchema))


class ProgrammeReportSchema(Schema):
    """A programme as its sponsor sees it: the programme and its report (aggregates only)."""

    programme = fields.Nested(ProgrammeSchema)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    causes = fields.List(fields.Dict())
    directions_per_day = fields.List(fields.Dict())


class CheckoutRequestSchema(Schema):
    """What the sponsor pays through Stripe Checkout (card or SEPA debit)."""

    class Meta:
        unknown = RAISE

    # Stripe Checkout takes at most 999,999.99 in one payment.
    amount = MinorUnits(
        validate=validate.Range(min=1, max=99_999_999),
        required=True,
        metadata={"description": "minor units of the programme's currency", "example": 100_000},
    )


class FundingCheckoutSchema(Schema):
    checkout_session_id = fields.String()
    checkout_url = fields.String()


class BankTransferSchema(Schema):
    """A bank transfer received (finance staff): once per reference."""

    class Meta:
        unknown = RAISE

    amount = _amount("minor units of the programme's currency", required=True)
    received_on = fields.Date(required=True, metadata={"description": "the value date"})
    reference = Text(200, min_length=1, required=True)


class FundingSchema(Schema):
    """A funding booked and the mécénat receipt it gave."""

    funding_id = fields.String()
    programme_id = fields.String()
    method = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    recorded = fields.Boolean(metadata={"description": "false: this reference was recorded"})
    receipt_id = fields.String(allow_none=True)
    receipt_number = fields.String(allow_none=True)


class CreditRequestSchema(Schema):
    """Unused budget to give back to the sponsor."""

    class Meta:
        unknown = RAISE

    amount = _amount("minor units, at most the budget no dift uses", required=True, example=100)
    reference = Text(200, load_default="")


class CreditSchema(Schema):
    credit_id = fields.String()
    programme_id = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    reason = fields.String()


class RecipientSchema(Schema):
    class Meta:
        unknown = RAISE

    email = Mailbox(required=True)
    name = Text(200, load_default="")
    locale = fields.String(load_default="fr", validate=validate.OneOf(["fr", "en"]))


class DiftRequestSchema(Schema):
    """One dift (a loyalty integration): idempotent by `sponsor_reference`."""

    class Meta:
        unknown = RAISE

    recipient = fields.Nested(RecipientSchema, metadata={"description": "emailed if given"})
    value = MinorUnits(
        validate=validate.Range(min=1, max=10**7),
        metadata={"description": "minor units, when the programme's value is per recipient"},
    )
    sponsor_reference = Text(
        100, min_length=1, metadata={"description": "your reference: the same gives the same"}
    )


class DiftSchema(Schema):
    """A dift; `redeem_url` (its secret link) only in the answer that issued it."""

    id = fields.String()
    programme_id = fields.String()
    channel = fields.String()
    state = fields.String()
    value = fields.Integer()
    currency = fields.String()
    sponsor_reference = fields.String(allow_none=True)
    redeem_url = fields.String(allow_none=True)


class CodesRequestSchema(Schema):
    """How many printed codes to issue (and their value, when it is per recipient)."""

    class Meta:
        unknown = RAISE

    count = fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=MAX_CODES_AT_ONCE),
        metadata={"example": 10},
    )
    value = MinorUnits(validate=validate.Range(min=1, max=10**7))


class UploadSchema(Schema):
    """A recipient file being issued: `issued` of `total`."""

    id = fields.String()
    programme_id = fields.String()
    status = fields.String()
    total = fields.Integer()
    issued = fields.Integer()
    problem = fields.String(allow_none=True)
    created_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
