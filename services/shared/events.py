"""The published language between services: topics, event types and one schema per type.

Consumers load `data` with these schemas (unknown fields ignored) and skip types they do not
handle. Money is always integer minor units plus an ISO 4217 currency.
"""

from __future__ import annotations

import os
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from .money import CURRENCY_EXPONENTS

# A prefix lets several installations (or an end-to-end test run) share one Kafka cluster.
TOPIC_PREFIX = os.environ.get("KAFKA_TOPIC_PREFIX", "")
DONATIONS_TOPIC = f"{TOPIC_PREFIX}donations.events"
CAMPAIGNS_TOPIC = f"{TOPIC_PREFIX}campaigns.events"
LEDGER_TOPIC = f"{TOPIC_PREFIX}ledger.events"
TOPICS = (DONATIONS_TOPIC, CAMPAIGNS_TOPIC, LEDGER_TOPIC)

CAMPAIGN_PUBLISHED = "difts.campaign.published.v1"
DONATION_SUCCEEDED = "difts.donation.succeeded.v1"
MEALS_FUNDED = "difts.ledger.meals_funded.v1"


def dead_letter_topic(consumer_group: str) -> str:
    """The dead-letter topic of one consumer group."""
    return f"{TOPIC_PREFIX}{consumer_group}.dead-letter"


class _EventData(Schema):
    class Meta:
        unknown = EXCLUDE


class MinorUnits(fields.Integer):
    """An amount in integer minor units: a JSON integer, never a float, a string or a boolean."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Range(min=0))
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


def _minor_units(**kwargs: Any) -> fields.Integer:
    return MinorUnits(**kwargs)


def _currency() -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(sorted(CURRENCY_EXPONENTS)))


class CampaignPublishedV1(_EventData):
    """A campaign went live (or its public facts changed): other services keep a projection."""

    campaign_id = fields.String(required=True)
    slug = fields.String(required=True)
    title = fields.String(required=True)
    cause = fields.String(required=True)
    currency = _currency()
    meal_price = _minor_units(required=True, validate=validate.Range(min=1))
    goal_meals = fields.Integer(strict=True, load_default=None, allow_none=True)


class DonorV1(_EventData):
    email = fields.Email(required=True)
    name = fields.String(load_default="")
    locale = fields.String(load_default="en")


class DonationSucceededV1(_EventData):
    """Stripe confirmed the payment of a donation: count it once, thank the donor once."""

    donation_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    campaign_title = fields.String(required=True)
    campaign_cause = fields.String(load_default="")
    amount = _minor_units(required=True, validate=validate.Range(min=1))
    currency = _currency()
    meal_price = _minor_units(required=True, validate=validate.Range(min=1))
    donor = fields.Nested(DonorV1, required=True)
    updates_opt_in = fields.Boolean(load_default=False)
    checkout_session_id = fields.String(load_default=None, allow_none=True)
    payment_intent_id = fields.String(load_default=None, allow_none=True)
    succeeded_at = fields.AwareDateTime(required=True)


class MealsFundedV1(_EventData):
    """A campaign's count of funded meals changed (and by which donation)."""

    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    currency = _currency()
    meal_price = _minor_units(required=True)
    meals_funded = fields.Integer(strict=True, required=True)
    previous_meals_funded = fields.Integer(strict=True, required=True)
    remainder = _minor_units(required=True)
    donation_id = fields.String(load_default=None, allow_none=True)
    donation_meals = fields.Integer(strict=True, load_default=0)


SCHEMAS: dict[str, Schema] = {
    CAMPAIGN_PUBLISHED: CampaignPublishedV1(),
    DONATION_SUCCEEDED: DonationSucceededV1(),
    MEALS_FUNDED: MealsFundedV1(),
}


class InvalidEventData(ValueError):
    """The event's data does not match the schema of its type."""


def load_data(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Validate and load an event's data with its type's schema."""
    schema = SCHEMAS[event_type]
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as error:
        raise InvalidEventData(f"{event_type}: {error.messages}") from error
    return loaded


def dump_data(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Check data against its type's schema before it is published, and return it as JSON
    types; a producer bug fails here, not in every consumer."""
    schema = SCHEMAS[event_type]
    errors = schema.validate(data)
    if errors:
        raise InvalidEventData(f"{event_type}: {errors}")
    return data
