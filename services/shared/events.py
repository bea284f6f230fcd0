"""The published language between services: topics, event types and one schema per type.

Consumers load `data` with these schemas (unknown fields ignored) and skip types they do not
handle. Money is always integer minor units plus an ISO 4217 currency.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from .money import CURRENCY_EXPONENTS

# The topics by their names in the published language. An installation may prefix every name
# (KAFKA_TOPIC_PREFIX, read by each service's configuration) to share a Kafka cluster: the
# outbox keeps these names and the relay, the consumers and the topic creation add the prefix.
DONATIONS_TOPIC = "donations.events"
CAMPAIGNS_TOPIC = "campaigns.events"
LEDGER_TOPIC = "ledger.events"
PROGRAMMES_TOPIC = "programmes.events"
NOTIFICATIONS_TOPIC = "notifications.events"
TOPICS = (DONATIONS_TOPIC, CAMPAIGNS_TOPIC, LEDGER_TOPIC, PROGRAMMES_TOPIC, NOTIFICATIONS_TOPIC)

# campaigns.events (donations service), keyed by campaign id
CAMPAIGN_PUBLISHED = "difts.campaign.published.v1"
CAMPAIGN_CLOSED = "difts.campaign.closed.v1"
MEAL_PRICE_CHANGED = "difts.campaign.meal_price_changed.v1"
UPDATE_PUBLISHED = "difts.campaign.update_published.v1"
# donations.events (donations service), keyed by campaign id (payouts: by payout id)
DONATION_SUCCEEDED = "difts.donation.succeeded.v1"
DONATION_FAILED = "difts.donation.failed.v1"
DONATION_REFUNDED = "difts.donation.refunded.v1"
DONATION_REFUND_FAILED = "difts.donation.refund_failed.v1"
DISPUTE_OPENED = "difts.donation.dispute_opened.v1"
DISPUTE_CLOSED = "difts.donation.dispute_closed.v1"
PAYOUT_PAID = "difts.payout.paid.v1"
# programmes.events (donations service), keyed by programme id so each programme's events stay
# in order: a company's programme of difts, its funding and each dift's fate
PROGRAMME_FUNDED = "difts.programme.funded.v1"
PROGRAMME_CREDITED_BACK = "difts.programme.credited_back.v1"
DIFT_ISSUED = "difts.dift.issued.v1"
DIFT_DIRECTED = "difts.dift.directed.v1"
DIFT_EXPIRED = "difts.dift.expired.v1"
# ledger.events (ledger service), keyed by campaign id (dift_booked: by programme id)
MEALS_FUNDED = "difts.ledger.meals_funded.v1"
DONATION_BOOKED = "difts.ledger.donation_booked.v1"
MILESTONE_REACHED = "difts.ledger.milestone_reached.v1"
DIFT_BOOKED = "difts.ledger.dift_booked.v1"
# notifications.events (notifications service), keyed by programme id
DIFT_INVITATION_SENT = "difts.notification.dift_invitation_sent.v1"


def topic_name(topic: str, prefix: str = "") -> str:
    """A topic's name on the broker, for an installation whose names carry `prefix`."""
    return f"{prefix}{topic}"


def dead_letter_topic(consumer_group: str, prefix: str = "") -> str:
    """The dead-letter topic of one consumer group."""
    return f"{prefix}{consumer_group}.dead-letter"


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
    """A campaign went live, or a live campaign's public facts changed: other services keep a
    projection of it. The meal price here is the one in force now; a change that takes effect
    later travels as meal_price_changed."""

    campaign_id = fields.String(required=True)
    slug = fields.String(required=True)
    title = fields.String(required=True)
    cause = fields.String(required=True)
    currency = _currency()
    meal_price = _minor_units(required=True, validate=validate.Range(min=1))
    goal_meals = fields.Integer(strict=True, load_default=None, allow_none=True)
    status = fields.String(load_default="live", validate=validate.OneOf(["live", "closed"]))
    action_zone = fields.String(load_default="")
    summary = fields.String(load_default="")


class CampaignClosedV1(_EventData):
    """A campaign stopped taking gifts."""

    campaign_id = fields.String(required=True)
    slug = fields.String(required=True)
    closed_at = fields.AwareDateTime(required=True)


class MealPriceChangedV1(_EventData):
    """A campaign's meal price changes from a date on; gifts before it keep the old price."""

    campaign_id = fields.String(required=True)
    slug = fields.String(required=True)
    currency = _currency()
    meal_price = _minor_units(required=True, validate=validate.Range(min=1))
    previous_meal_price = _minor_units(required=True, validate=validate.Range(min=1))
    effective_from = fields.AwareDateTime(required=True)


class UpdatePublishedV1(_EventData):
    """A news post of a campaign was published: it goes to the donors who asked for news."""

    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    campaign_title = fields.String(required=True)
    cause = fields.String(load_default="")
    post_id = fields.String(required=True)
    title = fields.String(required=True)
    # The post as its author wrote it (Markdown reads as plain text) and as safe HTML.
    body_markdown = fields.String(required=True)
    body_html = fields.String(required=True)
    url = fields.String(required=True)
    locale = fields.String(load_default="fr")
    published_at = fields.AwareDateTime(required=True)


class DonorV1(_EventData):
    email = fields.Email(required=True)
    name = fields.String(load_default="")
    locale = fields.String(load_default="en")


class DonationSucceededV1(_EventData):
    """Stripe confirmed the payment of a donation: count it once, thank the donor once.

    `amount` is what the donor paid; `fee_covered` is the part of it the donor added to cover
    the processing fee (so the cause receives `amount - fee_covered` whole). `fee` and `net`
    come from Stripe's balance transaction when it is known (null otherwise)."""

    donation_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    campaign_title = fields.String(required=True)
    campaign_cause = fields.String(load_default="")
    amount = _minor_units(required=True, validate=validate.Range(min=1))
    currency = _currency()
    meal_price = _minor_units(required=True, validate=validate.Range(min=1))
    fee_covered = _minor_units(load_default=0)
    fee = _minor_units(load_default=None, allow_none=True)
    net = fields.Integer(strict=True, load_default=None, allow_none=True)
    donor = fields.Nested(DonorV1, required=True)
    anonymous = fields.Boolean(load_default=False)
    updates_opt_in = fields.Boolean(load_default=False)
    consent_at = fields.AwareDateTime(load_default=None, allow_none=True)
    checkout_session_id = fields.String(load_default=None, allow_none=True)
    payment_intent_id = fields.String(load_default=None, allow_none=True)
    charge_id = fields.String(load_default=None, allow_none=True)
    balance_transaction_id = fields.String(load_default=None, allow_none=True)
    succeeded_at = fields.AwareDateTime(required=True)


class DonationFailedV1(_EventData):
    """A delayed payment failed, a checkout expired, or the donor left it: the donation will
    not be paid (unless Stripe still confirms it, which wins)."""

    donation_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(["failed", "expired", "canceled"])
    )
    reason = fields.String(load_default="")
    failed_at = fields.AwareDateTime(required=True)


class DonationRefundedV1(_EventData):
    """Some or all of a succeeded donation went back to the donor (one event per refund)."""

    donation_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    campaign_title = fields.String(load_default="")
    refund_id = fields.String(required=True)
    charge_id = fields.String(load_default=None, allow_none=True)
    amount = _minor_units(required=True, validate=validate.Range(min=1))
    currency = _currency()
    total_refunded = _minor_units(required=True)
    fully_refunded = fields.Boolean(required=True)
    # Stripe keeps its original fee on a refund unless it says otherwise.
    fee_refunded = _minor_units(load_default=0)
    balance_transaction_id = fields.String(load_default=None, allow_none=True)
    donor = fields.Nested(DonorV1, load_default=None, allow_none=True)
    refunded_at = fields.AwareDateTime(required=True)


class DonationRefundFailedV1(_EventData):
    """A refund already announced as refunded failed (or was canceled): the money never went
    back to the donor, so what its refunded event changed is undone (one event per refund)."""

    donation_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    refund_id = fields.String(required=True)
    amount = _minor_units(required=True, validate=validate.Range(min=1))
    currency = _currency()
    # What the donation has refunded once this refund no longer counts.
    total_refunded = _minor_units(required=True)
    # Stripe's refund_failure balance transaction, which gives the amount back to our balance.
    balance_transaction_id = fields.String(load_default=None, allow_none=True)
    failed_at = fields.AwareDateTime(required=True)


class _DisputeData(_EventData):
    """What every event about a dispute names: the gift, the dispute, its charge and balance
    transaction."""

    donation_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(load_default="")
    dispute_id = fields.String(required=True)
    charge_id = fields.String(load_default=None, allow_none=True)
    currency = _currency()
    balance_transaction_id = fields.String(load_default=None, allow_none=True)


class DisputeOpenedV1(_DisputeData):
    """The donor's bank disputes a charge: Stripe withdraws the amount and a dispute fee."""

    amount = _minor_units(required=True, validate=validate.Range(min=1))
    fee = _minor_units(load_default=0)
    reason = fields.String(load_default="")
    opened_at = fields.AwareDateTime(required=True)


class DisputeClosedV1(_DisputeData):
    """A dispute ended: won (the amount, and the fee where Stripe says so, come back) or lost."""

    status = fields.String(required=True, validate=validate.OneOf(["won", "lost"]))
    amount = _minor_units(required=True)
    amount_reinstated = _minor_units(load_default=0)
    fee_reinstated = _minor_units(load_default=0)
    closed_at = fields.AwareDateTime(required=True)


class PayoutPaidV1(_EventData):
    """Stripe paid money out to the bank: the balance transactions it settles."""

    payout_id = fields.String(required=True)
    amount = fields.Integer(strict=True, required=True)
    currency = _currency()
    arrival_date = fields.AwareDateTime(required=True)
    balance_transaction_ids = fields.List(fields.String(), load_default=list)
    paid_at = fields.AwareDateTime(required=True)


class MealsFundedV1(_EventData):
    """A campaign's count of funded meals changed (and by which donation, if one did)."""

    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    currency = _currency()
    meal_price = _minor_units(required=True)
    meals_funded = fields.Integer(strict=True, required=True)
    previous_meals_funded = fields.Integer(strict=True, required=True)
    remainder = _minor_units(required=True)
    donation_id = fields.String(load_default=None, allow_none=True)
    donation_meals = fields.Integer(strict=True, load_default=0)
    # Set instead of donation_id when a dift directed to the campaign (or its fallback) did it.
    dift_id = fields.String(load_default=None, allow_none=True)


class ReceiptFactsV1(_EventData):
    """What a donor's receipt states besides the ledger's figures: who gave, to what, when."""

    donor = fields.Nested(DonorV1, required=True)
    campaign_title = fields.String(required=True)
    campaign_cause = fields.String(load_default="")
    succeeded_at = fields.AwareDateTime(required=True)


class DonationBookedV1(_EventData):
    """The ledger booked a succeeded donation: what the gift did (published for every gift,
    even one that only adds to the carried remainder). This is the receipt's one trigger:
    `receipt` carries what the donations service said of the gift for its receipt (absent for
    a gift re-synced from Stripe, whose donor the ledger cannot vouch for: no receipt)."""

    donation_id = fields.String(required=True)
    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    amount = _minor_units(required=True)
    currency = _currency()
    meal_price = _minor_units(required=True)
    meals = fields.Integer(strict=True, required=True)
    meals_funded = fields.Integer(strict=True, required=True)
    remainder = _minor_units(required=True)
    receipt = fields.Nested(ReceiptFactsV1, load_default=None, allow_none=True)


class MilestonePartV1(_EventData):
    """One milestone of those a moment crossed."""

    milestone = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["goal_percent", "meals"]))
    value = fields.Integer(strict=True, required=True)
    meals = fields.Integer(strict=True, load_default=None, allow_none=True)


class MilestoneReachedV1(_EventData):
    """A campaign crossed milestones: 25/50/75/100 % of its goal, or every 100 meals. The
    milestones one booking crosses together travel in one event (`milestones`), headed by the
    highest (`milestone`, `kind`, `value`, and `meals`, the count it stands at). Each
    milestone is announced once per campaign; the event id derives from the campaign and the
    headline milestone. (Events of before `milestones` carry one milestone and no `meals`.)"""

    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    milestone = fields.String(required=True)  # e.g. "goal-50", "meals-300"
    kind = fields.String(required=True, validate=validate.OneOf(["goal_percent", "meals"]))
    value = fields.Integer(strict=True, required=True)
    meals = fields.Integer(strict=True, load_default=None, allow_none=True)
    milestones = fields.List(fields.Nested(MilestonePartV1), load_default=list)
    meals_funded = fields.Integer(strict=True, required=True)
    goal_meals = fields.Integer(strict=True, load_default=None, allow_none=True)
    reached_at = fields.AwareDateTime(required=True)


class ProgrammeFundedV1(_EventData):
    """Money for a programme of difts arrived: a Stripe payment (Checkout with the programme id
    in its metadata) or a bank transfer that finance staff recorded. One event per funding; a
    programme may be topped up. `fee`/`net` come from Stripe's balance transaction (null for a
    bank transfer, or when Stripe could not tell yet)."""

    programme_id = fields.String(required=True)
    sponsor_id = fields.String(required=True)
    sponsor_name = fields.String(required=True)  # the legal name
    funding_id = fields.String(required=True)
    method = fields.String(required=True, validate=validate.OneOf(["stripe", "bank_transfer"]))
    amount = _minor_units(required=True, validate=validate.Range(min=1))
    currency = _currency()
    fee = _minor_units(load_default=None, allow_none=True)
    net = fields.Integer(strict=True, load_default=None, allow_none=True)
    # What the programme has been funded in all, this funding included.
    total_funded = _minor_units(required=True)
    checkout_session_id = fields.String(load_default=None, allow_none=True)
    payment_intent_id = fields.String(load_default=None, allow_none=True)
    charge_id = fields.String(load_default=None, allow_none=True)
    balance_transaction_id = fields.String(load_default=None, allow_none=True)
    bank_reference = fields.String(load_default=None, allow_none=True)
    received_on = fields.Date(load_default=None, allow_none=True)  # a bank transfer's value date
    funded_at = fields.AwareDateTime(required=True)


class ProgrammeCreditedBackV1(_EventData):
    """Money of a programme's fund went back to its sponsor: budget never issued, or difts that
    expired under the "credit back" rule."""

    programme_id = fields.String(required=True)
    sponsor_id = fields.String(required=True)
    credit_id = fields.String(required=True)
    amount = _minor_units(required=True, validate=validate.Range(min=1))
    currency = _currency()
    reason = fields.String(
        required=True, validate=validate.OneOf(["unused_budget", "expired_difts", "closing"])
    )
    reference = fields.String(load_default="")
    credited_at = fields.AwareDateTime(required=True)


class ShortlistEntryV1(_EventData):
    """One cause a programme's recipients may direct their difts to, as its campaign stood."""

    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    campaign_title = fields.String(required=True)
    cause = fields.String(load_default="")
    summary = fields.String(load_default="")
    meal_price = _minor_units(required=True, validate=validate.Range(min=1))


class RecipientV1(_EventData):
    """Who a dift was sent to (absent for an anonymous code)."""

    email = fields.Email(required=True)
    name = fields.String(load_default="")
    locale = fields.String(load_default="fr")


class DiftIssuedV1(_EventData):
    """A dift was issued to a recipient. `channel` says how it reaches them: "email" (the
    invitation carries `redeem_url`, a secret link: notifications mails it and nothing else
    keeps it), "code" (an anonymous code handed out by the company) or "api" (a loyalty
    integration; an invitation is sent when a recipient is named)."""

    dift_id = fields.String(required=True)
    programme_id = fields.String(required=True)
    programme_name = fields.String(required=True)
    occasion = fields.String(load_default="")
    sponsor_id = fields.String(required=True)
    brand_name = fields.String(required=True)
    message_markdown = fields.String(load_default="")
    message_html = fields.String(load_default="")
    value = _minor_units(required=True, validate=validate.Range(min=1))
    currency = _currency()
    channel = fields.String(required=True, validate=validate.OneOf(["email", "code", "api"]))
    recipient = fields.Nested(RecipientV1, load_default=None, allow_none=True)
    redeem_url = fields.String(load_default=None, allow_none=True)
    sponsor_reference = fields.String(load_default=None, allow_none=True)
    shortlist = fields.List(fields.Nested(ShortlistEntryV1), required=True)
    expires_at = fields.AwareDateTime(required=True)
    issued_at = fields.AwareDateTime(required=True)


class AllocationV1(_EventData):
    """The part of a dift that goes to one campaign."""

    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(required=True)
    campaign_title = fields.String(load_default="")
    amount = _minor_units(required=True, validate=validate.Range(min=1))
    # The campaign's meal price as the shortlist carries it (optional): the ledger counts the
    # meals of a campaign whose own events (another topic) it has not read yet, as a gift's.
    meal_price = _minor_units(load_default=None, allow_none=True, validate=validate.Range(min=1))


class DiftDirectedV1(_EventData):
    """A recipient directed a dift: its whole value goes to the allocations (which sum to it
    exactly). `updates_opt_in` is the recipient's consent to the chosen causes' news."""

    dift_id = fields.String(required=True)
    programme_id = fields.String(required=True)
    sponsor_id = fields.String(required=True)
    brand_name = fields.String(load_default="")
    value = _minor_units(required=True, validate=validate.Range(min=1))
    currency = _currency()
    allocations = fields.List(
        fields.Nested(AllocationV1), required=True, validate=validate.Length(min=1)
    )
    recipient = fields.Nested(RecipientV1, load_default=None, allow_none=True)
    updates_opt_in = fields.Boolean(load_default=False)
    consent_at = fields.AwareDateTime(load_default=None, allow_none=True)
    directed_at = fields.AwareDateTime(required=True)


class DiftExpiredV1(_EventData):
    """Nobody directed a dift before its programme's expiry: the programme's fallback rule gave
    it. "split_evenly" and "one_campaign" carry the allocations (summing to the value);
    "credit_back" carries none: the value stays in the programme's fund until it is credited
    back to the sponsor."""

    dift_id = fields.String(required=True)
    programme_id = fields.String(required=True)
    sponsor_id = fields.String(required=True)
    value = _minor_units(required=True, validate=validate.Range(min=1))
    currency = _currency()
    rule = fields.String(
        required=True, validate=validate.OneOf(["split_evenly", "one_campaign", "credit_back"])
    )
    allocations = fields.List(fields.Nested(AllocationV1), load_default=list)
    expired_at = fields.AwareDateTime(required=True)


class BookedAllocationV1(_EventData):
    """What one allocation of a dift did in the ledger: its meals, and the campaign after it."""

    campaign_id = fields.String(required=True)
    campaign_slug = fields.String(load_default="")
    amount = _minor_units(required=True)
    meal_price = _minor_units(required=True)
    meals = fields.Integer(strict=True, required=True)
    meals_funded = fields.Integer(strict=True, required=True)
    remainder = _minor_units(required=True)


class DiftBookedV1(_EventData):
    """The ledger moved a directed (or expired) dift from its programme's fund to the chosen
    campaigns' funds, once: what each allocation funded."""

    dift_id = fields.String(required=True)
    programme_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["directed", "expired"]))
    value = _minor_units(required=True)
    currency = _currency()
    allocations = fields.List(fields.Nested(BookedAllocationV1), load_default=list)
    programme_balance = _minor_units(required=True)
    booked_at = fields.AwareDateTime(required=True)


class DiftInvitationSentV1(_EventData):
    """The invitation (or its reminder) of a dift left for the SMTP relay, or the relay refused
    it for good (`status` "bounced"): the donations service marks the dift sent."""

    dift_id = fields.String(required=True)
    programme_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["invitation", "reminder"]))
    status = fields.String(required=True, validate=validate.OneOf(["sent", "bounced"]))
    at = fields.AwareDateTime(required=True)


SCHEMAS: dict[str, Schema] = {
    CAMPAIGN_PUBLISHED: CampaignPublishedV1(),
    CAMPAIGN_CLOSED: CampaignClosedV1(),
    MEAL_PRICE_CHANGED: MealPriceChangedV1(),
    UPDATE_PUBLISHED: UpdatePublishedV1(),
    DONATION_SUCCEEDED: DonationSucceededV1(),
    DONATION_FAILED: DonationFailedV1(),
    DONATION_REFUNDED: DonationRefundedV1(),
    DONATION_REFUND_FAILED: DonationRefundFailedV1(),
    DISPUTE_OPENED: DisputeOpenedV1(),
    DISPUTE_CLOSED: DisputeClosedV1(),
    PAYOUT_PAID: PayoutPaidV1(),
    MEALS_FUNDED: MealsFundedV1(),
    DONATION_BOOKED: DonationBookedV1(),
    MILESTONE_REACHED: MilestoneReachedV1(),
    PROGRAMME_FUNDED: ProgrammeFundedV1(),
    PROGRAMME_CREDITED_BACK: ProgrammeCreditedBackV1(),
    DIFT_ISSUED: DiftIssuedV1(),
    DIFT_DIRECTED: DiftDirectedV1(),
    DIFT_EXPIRED: DiftExpiredV1(),
    DIFT_BOOKED: DiftBookedV1(),
    DIFT_INVITATION_SENT: DiftInvitationSentV1(),
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
