"""Marshmallow schemas of the notifications HTTP API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from . import store


class DeliveryQuerySchema(Schema):
    """Which deliveries to list."""

    donation_id = fields.String(validate=validate.Length(min=1, max=200))
    status = fields.String(
        validate=validate.OneOf([store.PENDING, store.SENT, store.FAILED, store.SKIPPED])
    )
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
    created_at = fields.AwareDateTime()
    sent_at = fields.AwareDateTime(allow_none=True)
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True, metadata={"description": "the SMTP reply"})
