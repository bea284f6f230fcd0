"""Marshmallow schemas of the notifications HTTP API."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from services.shared.fields import Text

from . import store


def _address(**kwargs: Any) -> fields.String:
    """An email address as a donor once gave it: whatever the donations service stored, old
    rows included, so a donor can always be found and erased (no stricter format than that)."""
    return fields.String(
        validate=[
            validate.Length(max=320),
            validate.Regexp(r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+$", error="not an address"),
        ],
        **kwargs,
    )


class DeliveryQuerySchema(Schema):
    """Which deliveries to list: every filter given must match."""

    donor = _address(metadata={"description": "the donor's email address (any case)"})
    campaign_id = Text(200, min_length=1)
    post_id = Text(200, min_length=1)
    donation_id = Text(200, min_length=1)
    kind = fields.String(validate=validate.OneOf(store.KINDS))
    status = fields.String(validate=validate.OneOf(store.STATUSES))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class DeliverySchema(Schema):
    """One email in the delivery log, its address masked."""

    id = fields.String()
    kind = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    recipient = fields.String(metadata={"description": "masked: j***@example.org"})
    donation_id = fields.String(allow_none=True)
    campaign_id = fields.String()
    post_id = fields.String(allow_none=True)
    milestone = fields.String(allow_none=True)
    subject = fields.String()
    created_at = fields.AwareDateTime()
    sent_at = fields.AwareDateTime(allow_none=True)
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True, metadata={"description": "the SMTP reply"})


class PostCountsSchema(Schema):
    """How a news post's emails fared."""

    post_id = fields.String()
    sent = fields.Integer()
    failed = fields.Integer()
    skipped = fields.Integer()
    pending = fields.Integer()


class ErasureRequestSchema(Schema):
    """Whose personal data to erase."""

    email = _address(required=True)


class ErasureSchema(Schema):
    """What an erasure removed; the pseudonym is what the delivery log still holds."""

    email_ref = fields.String()
    donors_removed = fields.Integer()
    deliveries_pseudonymised = fields.Integer()
    pending_cancelled = fields.Integer()
    difts_forgotten = fields.Integer()


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class NewsPreviewRequestSchema(Schema):
    """A news post as its editor stands, to see the email its campaign's donors would get: the
    campaign it belongs to, the post's title and Markdown, and the donors' language. The
    HTML part is the Markdown rendered as the donations service publishes it; a caller that
    has rendered it already (the back office) may send that HTML instead."""

    class Meta:
        unknown = RAISE

    campaign_title = Text(300, min_length=1, required=True, validate=_not_blank)
    campaign_slug = Text(200, min_length=1, required=True, validate=_not_blank)
    cause_name = Text(
        300,
        load_default="",
        metadata={"description": "the cause the campaign is for; default: the campaign title"},
    )
    title = Text(300, min_length=1, required=True, validate=_not_blank)
    body_markdown = Text(50_000, min_length=1, required=True, validate=_not_blank)
    body_html = Text(
        50_000,
        load_default="",
        metadata={
            "description": "the post's HTML as published (cleaned again here); leave it out "
            "to have the Markdown rendered here (a request is at most 64 KiB in all)"
        },
    )
    locale = fields.String(
        load_default="fr",
        validate=validate.OneOf(["fr", "en"]),
        metadata={"description": "the donors' language"},
    )


class NewsPreviewSchema(Schema):
    """The news email exactly as a donor in that language would get it ("Dear difteurs,"), with
    sample unsubscribe links (they lead to this service's "invalid link" page)."""

    subject = fields.String(metadata={"description": "the Subject header"})
    text = fields.String(metadata={"description": "the text/plain part"})
    html = fields.String(metadata={"description": "the text/html part, a whole HTML document"})
