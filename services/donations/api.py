"""The donations HTTP API: campaigns, giving, and the Stripe webhook."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from services.shared.web import current_correlation_id

from . import handlers, store
from .domain import GiftRefused
from .payments import InvalidWebhook, PaymentProviderError, verify_webhook
from .schemas import CampaignSchema, DonationRequestSchema, DonationSchema

api = Blueprint("donations", __name__, url_prefix="/api/v1", description="Campaigns and donations")
webhooks = Blueprint(
    "webhooks", __name__, url_prefix="/webhooks", description="Events from the payment processor"
)


def _service() -> Any:
    return current_app.extensions["donations"]


def _locale(body_locale: str | None) -> str:
    if body_locale:
        return body_locale
    best = request.accept_languages.best_match(["en", "fr"])
    return best or "en"


@api.route("/campaigns/<slug>")
class CampaignResource(MethodView):
    @api.response(200, CampaignSchema)
    def get(self, slug: str) -> dict[str, Any]:
        """A campaign's public facts."""
        with _service().engine.connect() as conn:
            campaign = store.campaign_by_slug(conn, slug)
        if campaign is None:
            abort(404, message=f"no campaign {slug!r}")
        return {
            "id": campaign.id,
            "slug": campaign.slug,
            "title": campaign.title,
            "cause": campaign.cause,
            "currency": campaign.meal_price.currency,
            "meal_price": campaign.meal_price.amount,
            "goal_meals": campaign.goal_meals,
            "status": campaign.status.value,
        }


@api.route("/campaigns/<slug>/donations")
class CampaignDonations(MethodView):
    @api.arguments(DonationRequestSchema)
    @api.response(201, DonationSchema)
    @api.alt_response(404, description="No such campaign")
    @api.alt_response(502, description="Stripe could not be reached; nothing was stored")
    def post(self, body: dict[str, Any], slug: str) -> dict[str, Any]:
        """Start a donation: answers with the Stripe Checkout URL where the donor pays."""
        service = _service()
        gift = handlers.Gift(
            campaign_slug=slug,
            amount=body.get("amount"),
            meals=body.get("meals"),
            currency=body.get("currency"),
            donor_email=body["donor"]["email"],
            donor_name=body["donor"].get("name", ""),
            locale=_locale(body.get("locale")),
            updates_opt_in=body["updates_opt_in"],
            correlation_id=current_correlation_id(),
        )
        try:
            return handlers.start_donation(
                service.engine, service.checkout, service.limits, gift, service.settings.public_url
            )
        except handlers.UnknownCampaign:
            abort(404, message=f"no campaign {slug!r}", errors={"path": {"slug": ["unknown"]}})
        except GiftRefused as refused:
            status = 409 if refused.field == "campaign" else 422
            abort(
                status, message=refused.message, errors={"json": {refused.field: [refused.message]}}
            )
        except PaymentProviderError as error:
            abort(502, message=f"the payment processor is unavailable, try again: {error}")
        raise AssertionError("unreachable")


@api.route("/donations/<donation_id>")
class DonationResource(MethodView):
    @api.response(200, DonationSchema)
    def get(self, donation_id: str) -> dict[str, Any]:
        """A donation's status (its id is the donor's unguessable reference)."""
        with _service().engine.connect() as conn:
            row = store.donation_row(conn, donation_id)
            campaign = store.campaign_by_id(conn, row.campaign_id) if row else None
        if row is None or campaign is None:
            abort(404, message="no such donation")
        return {**row._asdict(), "campaign": campaign.slug}


@webhooks.route("/stripe", methods=["POST"])
@webhooks.doc(summary="Stripe webhook endpoint (signed with the endpoint secret)")
def stripe_webhook() -> Any:
    """Verify, deduplicate by Stripe event id, and apply a Stripe event."""
    settings = _service().settings
    try:
        event = verify_webhook(
            request.get_data(),
            request.headers.get("Stripe-Signature"),
            settings.stripe_webhook_secret,
            settings.webhook_tolerance_seconds,
        )
    except InvalidWebhook as error:
        abort(400, message=str(error), errors={"headers": {"Stripe-Signature": [str(error)]}})
    outcome = handlers.apply_stripe_event(_service().engine, event, current_correlation_id())
    return jsonify({"received": True, "event": event["id"], "outcome": outcome})
