"""The donations HTTP API: campaigns and their news (admin), giving, and the Stripe webhook."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from flask_smorest.error_handler import ErrorSchema
from sqlalchemy import Connection

from services.shared.auth import protected, roles_of
from services.shared.metrics import STRIPE_WEBHOOKS
from services.shared.money import Money
from services.shared.web import current_correlation_id

from . import views
from .domain.campaigns import Campaign, CampaignRuleBroken, CampaignStatus
from .domain.giving import Gift, GiftRefused
from .handlers import campaigns, giving, news
from .handlers.campaigns import UnknownCampaign
from .handlers.webhooks import keep_unreadable_event, record_stripe_event
from .payments import InvalidWebhook, PaymentProviderError, verify_signature
from .schemas import (
    CampaignCreateSchema,
    CampaignEditSchema,
    CampaignSchema,
    DonationRequestSchema,
    DonationSchema,
    IdempotencyKeySchema,
    MealPriceChangedSchema,
    MealPriceChangeSchema,
    NewsPostRequestSchema,
    NewsPostSchema,
    StripeEventReceiptSchema,
)
from .stripe_events import MAX_BODY_BYTES as MAX_WEBHOOK_BYTES
from .stripe_events import UnreadableEvent, read_event
from .unit_of_work import DonationsUnitOfWork

api = Blueprint("donations", __name__, url_prefix="/api/v1", description="Campaigns and donations")
webhooks = Blueprint(
    "webhooks", __name__, url_prefix="/webhooks", description="Events from the payment processor"
)

View = Callable[..., Any]
IDEMPOTENCY_HEADER = "Idempotency-Key"
# A campaign's public reads show a draft too when a token with the admin role comes along.
OPTIONAL_ADMIN = {
    "security": [{}, {"bearerAuth": []}],
    "x-optional-role": "admin",
    "description": "Public. With a bearer token of the admin role (x-optional-role) a draft "
    "campaign is shown too; without one a draft answers 404.",
}
NO_CAMPAIGN = "No such campaign (a draft is shown only with an admin token)"
UNKNOWN_CAMPAIGN = "No such campaign"


def _error(status: int, description: str) -> Any:
    """Document an error answer with the error body every service sends."""
    return api.alt_response(status, schema=ErrorSchema, description=description)


def donations_service() -> Any:
    """The running service's settings, database and Stripe clients."""
    return current_app.extensions["donations"]


def _locale(body_locale: str | None) -> str:
    if body_locale:
        return body_locale
    best = request.accept_languages.best_match(["en", "fr"])
    return best or "en"


def _is_admin() -> bool:
    roles = roles_of(request.headers.get("Authorization"), current_app.config.get("API_TOKENS", {}))
    return bool(roles and "admin" in roles)


def _unit_of_work() -> DonationsUnitOfWork:
    """A unit of work on the service's database (opened by the caller)."""
    return DonationsUnitOfWork(donations_service().engine)


def _campaign_answer(conn: Connection, campaign: Campaign) -> dict[str, Any]:
    return views.campaign_view(conn, campaign, donations_service().settings)


def _post_answer(post: Any, campaign_slug: str) -> dict[str, Any]:
    return views.post_view(post, campaign_slug, donations_service().settings.public_url)


def _visible_campaign(conn: Connection, slug: str) -> Campaign:
    campaign = views.campaign(conn, slug)
    # A draft is the campaign manager's business until it is published.
    if campaign is None or (campaign.status is CampaignStatus.DRAFT and not _is_admin()):
        abort(404, message=f"no campaign {slug!r}", errors={"path": {"slug": ["unknown"]}})
    assert campaign is not None
    return campaign


def _refuse(error: CampaignRuleBroken | UnknownCampaign) -> NoReturn:
    if isinstance(error, UnknownCampaign):
        abort(404, message=f"no campaign {error}", errors={"path": {"slug": ["unknown"]}})
        raise AssertionError("unreachable")  # abort raises; flask-smorest does not say NoReturn
    status = 409 if error.field in ("status", "campaign", "slug") else 422
    abort(status, message=error.message, errors={"json": {error.field: [error.message]}})
    raise AssertionError("unreachable")


def _changed(change: Callable[[DonationsUnitOfWork], Any]) -> Any:
    """Run a campaign manager's change in a unit of work, or abort with what refused it."""
    try:
        with _unit_of_work() as uow:
            return change(uow)
    except (CampaignRuleBroken, UnknownCampaign) as error:
        _refuse(error)


def _campaign_changed(change: Callable[[DonationsUnitOfWork], Campaign]) -> dict[str, Any]:
    """A change of a campaign, answered with the campaign as it is now."""
    campaign = _changed(change)
    with donations_service().engine.connect() as conn:
        return _campaign_answer(conn, campaign)


@api.route("/campaigns")
class Campaigns(MethodView):
    @protected(api, "admin")
    @api.arguments(CampaignCreateSchema)
    @api.response(201, CampaignSchema)
    @_error(409, "A campaign with this slug exists")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Write a draft campaign (admin)."""
        price = Money(body.pop("meal_price"), body.pop("currency"))
        command = campaigns.CreateCampaign(body.pop("slug"), price, body)
        return _campaign_changed(lambda uow: campaigns.create_campaign(command, uow))


@api.route("/campaigns/<slug>")
class CampaignResource(MethodView):
    @api.response(200, CampaignSchema)
    @_error(404, NO_CAMPAIGN)
    @api.doc(**OPTIONAL_ADMIN)
    def get(self, slug: str) -> dict[str, Any]:
        """A campaign's public facts, meals funded so far, and the giving options."""
        with donations_service().engine.connect() as conn:
            return _campaign_answer(conn, _visible_campaign(conn, slug))

    @protected(api, "admin")
    # No body is an empty edit, as webargs reads it: the document says the body is optional.
    @api.arguments(CampaignEditSchema, required=False)
    @api.response(200, CampaignSchema)
    @_error(404, UNKNOWN_CAMPAIGN)
    @_error(409, "The campaign is closed")
    @_error(
        422,
        "Invalid fields, or a change the campaign's state refuses: a live campaign keeps its "
        "currency and changes its meal price only through meal-price",
    )
    def patch(self, body: dict[str, Any], slug: str) -> dict[str, Any]:
        """Edit a campaign (admin); a live campaign's new facts are announced."""
        command = campaigns.EditCampaign(slug, body)
        return _campaign_changed(lambda uow: campaigns.edit_campaign(command, uow))


def _moves_a_campaign(path: str, refused: str) -> Callable[[View], View]:
    """Route and document an admin operation that moves a campaign to its next state: the
    campaign is the answer; 404 without it, 409 (`refused`) from a state it cannot leave so."""

    def document(view: View) -> View:
        view = _error(409, refused)(view)
        view = _error(404, UNKNOWN_CAMPAIGN)(view)
        view = api.response(200, CampaignSchema)(view)
        view = protected(api, "admin")(view)
        return api.route(path, methods=["POST"])(view)

    return document


@_moves_a_campaign("/campaigns/<slug>/publish", "Only a draft campaign can be published")
def publish(slug: str) -> dict[str, Any]:
    """Publish a draft campaign: it takes gifts and is announced (admin)."""
    return _campaign_changed(lambda uow: campaigns.go_live(slug, uow))


@_moves_a_campaign("/campaigns/<slug>/close", "Only a live campaign can be closed")
def close(slug: str) -> dict[str, Any]:
    """Close a live campaign: it takes no more gifts (admin)."""
    return _campaign_changed(lambda uow: campaigns.close_campaign(slug, uow))


@api.route("/campaigns/<slug>/meal-price", methods=["POST"])
@protected(api, "admin")
@api.arguments(MealPriceChangeSchema)
@api.response(200, MealPriceChangedSchema)
@_error(404, UNKNOWN_CAMPAIGN)
@_error(409, "The campaign is closed")
@_error(
    422,
    "Invalid fields, or a change the campaign refuses: another currency than the campaign's, "
    "or effective_from in the past",
)
def meal_price(body: dict[str, Any], slug: str) -> dict[str, Any]:
    """Change the meal price from a date on, and announce it (admin)."""
    price = Money(body["meal_price"], body["currency"])
    command = campaigns.ChangeMealPrice(slug, price, body["effective_from"])
    return dict(_changed(lambda uow: campaigns.change_meal_price(command, uow)))


@api.route("/campaigns/<slug>/news")
class CampaignNews(MethodView):
    @api.response(200, NewsPostSchema(many=True))
    @_error(404, NO_CAMPAIGN)
    @api.doc(**OPTIONAL_ADMIN)
    def get(self, slug: str) -> list[dict[str, Any]]:
        """A campaign's published news posts, newest first."""
        with donations_service().engine.connect() as conn:
            campaign = _visible_campaign(conn, slug)
            posts = views.published_posts(conn, campaign.id)
            return [_post_answer(post, slug) for post in posts]

    @protected(api, "admin")
    @api.arguments(NewsPostRequestSchema)
    @api.response(201, NewsPostSchema)
    @_error(404, UNKNOWN_CAMPAIGN)
    @_error(409, "The campaign is closed")
    def post(self, body: dict[str, Any], slug: str) -> dict[str, Any]:
        """Write a news post: published now, or by the worker at `publish_at` (admin)."""
        command = news.WriteNewsPost(
            slug,
            title=body["title"],
            body_markdown=body["body_markdown"],
            public_url=donations_service().settings.public_url,
            publish_at=body.get("publish_at"),
            locale=body["locale"],
        )
        return _post_answer(_changed(lambda uow: news.write_news_post(command, uow)), slug)


@api.route("/campaigns/<slug>/donations")
class CampaignDonations(MethodView):
    @api.arguments(DonationRequestSchema)
    @api.arguments(IdempotencyKeySchema, location="headers")
    @api.response(201, DonationSchema)
    @_error(404, UNKNOWN_CAMPAIGN)
    @_error(409, "The campaign takes no gifts, or the Idempotency-Key was used for another gift")
    @_error(
        422,
        "Invalid fields, or a gift this campaign refuses (the field at fault in errors.json): "
        "another currency than the campaign's; an amount, or meals times the campaign's meal "
        "price (plus the fee when covered), outside DONATION_MIN_AMOUNT..DONATION_MAX_AMOUNT; "
        "a public message longer than DONATION_MESSAGE_MAX_LENGTH",
    )
    @_error(502, "Stripe could not be reached; nothing was stored")
    def post(self, body: dict[str, Any], _key: dict[str, Any], slug: str) -> dict[str, Any]:
        """Start a donation: answers with the Stripe Checkout URL where the donor pays."""
        return start_gift(body, slug)


def start_gift(body: dict[str, Any], slug: str) -> dict[str, Any]:
    """Turn a validated gift into a pending donation, or abort with the field at fault."""
    service = donations_service()
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not 1 <= len(key) <= 200:
        abort(
            400,
            message="Idempotency-Key must be 1 to 200 characters",
            errors={"headers": {IDEMPOTENCY_HEADER: ["1 to 200 characters"]}},
        )
    message = body.get("public_message") or None
    if message is not None and len(message) > service.settings.message_max_length:
        limit = service.settings.message_max_length
        abort(
            422,
            message=f"the public message is at most {limit} characters",
            errors={"json": {"public_message": [f"at most {limit} characters"]}},
        )
    gift = Gift(
        campaign_slug=slug,
        amount=body.get("amount"),
        meals=body.get("meals"),
        currency=body.get("currency"),
        donor_email=body["donor"]["email"],
        donor_name=body["donor"].get("name", ""),
        locale=_locale(body.get("locale")),
        updates_opt_in=body["updates_opt_in"],
        correlation_id=current_correlation_id(),
        anonymous=body.get("anonymous", False),
        public_message=message,
        show_message=body.get("show_message", False),
        cover_fee=body.get("cover_fee", False),
        idempotency_key=key,
    )
    command = giving.StartDonation(gift, service.rules)
    try:
        donation = giving.start_donation(command, _unit_of_work(), service.payments)
        return views.donation_answer(donation, slug)
    except UnknownCampaign:
        abort(404, message=f"no campaign {slug!r}", errors={"path": {"slug": ["unknown"]}})
    except giving.IdempotencyConflict as error:
        abort(409, message=str(error), errors={"headers": {IDEMPOTENCY_HEADER: [str(error)]}})
    except GiftRefused as refused:
        status = 409 if refused.field == "campaign" else 422
        abort(status, message=refused.message, errors={"json": {refused.field: [refused.message]}})
    except PaymentProviderError as error:
        abort(502, message=f"the payment processor is unavailable, try again: {error}")
    raise AssertionError("unreachable")


@api.route("/donations/<donation_id>")
class DonationResource(MethodView):
    @api.response(200, DonationSchema)
    @_error(404, "No such donation")
    def get(self, donation_id: str) -> dict[str, Any]:
        """A donation's status (its id is the donor's unguessable reference)."""
        with donations_service().engine.connect() as conn:
            row = views.donation(conn, donation_id)
        if row is None:
            abort(404, message="no such donation")
        assert row is not None  # abort raised
        return dict(row._asdict())


def receive_stripe_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    """Verify a webhook body's signature, then record it once (committed before the answer;
    the worker applies it after); aborts 400 when it is not signed by Stripe. A signed body we
    cannot read is kept as unreadable and answered 200 (Stripe would only send it again, for
    days), with the problem named. Nothing here asks Stripe anything."""
    service = donations_service()
    try:
        verify_signature(
            payload,
            signature,
            service.settings.stripe_webhook_secret,
            service.settings.webhook_tolerance_seconds,
        )
    except InvalidWebhook as error:
        STRIPE_WEBHOOKS.labels("bad_signature").inc()
        abort(400, message=str(error), errors={"headers": {"Stripe-Signature": [str(error)]}})
    try:
        event = read_event(payload)
    except UnreadableEvent as error:
        with _unit_of_work() as uow:
            kept_as = keep_unreadable_event(payload, error, uow)
        STRIPE_WEBHOOKS.labels("unreadable").inc()
        return {
            "received": True,
            "event": kept_as,
            "outcome": "unreadable",
            "problem": error.reason,
        }
    outcome = record_stripe_event(event, service.recorder, current_correlation_id(), _text(payload))
    STRIPE_WEBHOOKS.labels(outcome).inc()
    return {"received": True, "event": event.id, "outcome": outcome}


def _text(payload: bytes) -> str | None:
    """A readable body as the text to keep (it parses again as it did), or None to keep the
    event as JSON instead (a body in UTF-16, or with a byte-order mark)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if text.startswith("\ufeff") else text


STRIPE_SIGNATURE = {
    "in": "header",
    "name": "Stripe-Signature",
    "required": True,
    "schema": {"type": "string"},
    "description": 't=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>" with the endpoint secret> '
    "(Stripe's scheme); the timestamp must be within STRIPE_WEBHOOK_TOLERANCE seconds",
}


def _answer_doc(description: str, schema: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@webhooks.route("/stripe", methods=["POST"])
# Documented, not wrapped: flask-smorest's response decorators would run on every webhook.
@webhooks.doc(
    summary="Stripe webhook endpoint (signed with the endpoint secret)",
    parameters=[STRIPE_SIGNATURE],
    requestBody={
        "required": True,
        "description": "A Stripe event, exactly as Stripe signed it (any JSON is read; what "
        "cannot be read is kept as unreadable)",
        "content": {"application/json": {"schema": {}}},
    },
    responses={
        "200": _answer_doc(
            "A signed event, recorded (or recognised, or kept as unreadable)",
            StripeEventReceiptSchema,
        ),
        "400": _answer_doc("Missing or bad Stripe-Signature; nothing is kept", ErrorSchema),
        "413": _answer_doc("A body over 512 KiB; nothing is kept", ErrorSchema),
        "500": _answer_doc("The database could not record it (Stripe retries)", ErrorSchema),
    },
)
def stripe_webhook() -> Response:
    """Verify, deduplicate by Stripe event id, record, and answer; the worker applies the
    event after the answer, once."""
    # Stripe's events can be larger than the API's bodies; still bounded before reading.
    request.max_content_length = MAX_WEBHOOK_BYTES
    answer = receive_stripe_event(request.get_data(), request.headers.get("Stripe-Signature"))
    return Response(json.dumps(answer), mimetype="application/json")
