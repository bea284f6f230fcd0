"""The notifications HTTP API, for operators (bearer token with the admin role): the delivery
log, resending one delivery, counts per news post, erasing a donor's personal data, and the
preview of a news post's email (the back office's news editor calls it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from flask_smorest.error_handler import ErrorSchema

from services.shared.auth import protected

from . import handlers, preview, views
from .consent import ConsentKeys
from .messages import Letterhead, mask_email
from .schemas import (
    DeliveryQuerySchema,
    DeliverySchema,
    ErasureRequestSchema,
    ErasureSchema,
    NewsPreviewRequestSchema,
    NewsPreviewSchema,
    PostCountsSchema,
)
from .unit_of_work import NotificationsUnitOfWork

api = Blueprint(
    "notifications", __name__, url_prefix="/api/v1", description="The delivery log of emails"
)


def _service() -> Any:
    return current_app.extensions["notifications"]


def _keys() -> ConsentKeys:
    return ConsentKeys(_service().settings.signing_secret)


@api.route("/deliveries")
class Deliveries(MethodView):
    @protected(api, "admin")
    @api.arguments(DeliveryQuerySchema, location="query")
    @api.response(200, DeliverySchema(many=True))
    def get(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Deliveries, newest first: by donor, campaign, news post, donation, kind, status."""
        donor = query.get("donor")
        where = views.DeliveryFilter(
            donor=donor,
            # After an erasure only the pseudonym is left to find a donor's deliveries by.
            donor_ref=_keys().email_ref(donor) if donor else None,
            campaign_id=query.get("campaign_id"),
            post_id=query.get("post_id"),
            donation_id=query.get("donation_id"),
            kind=query.get("kind"),
            status=query.get("status"),
        )
        with _service().engine.connect() as conn:
            return views.deliveries(conn, limit=query["limit"], where=where)


@api.route("/deliveries/<delivery_id>/resend")
class Resend(MethodView):
    @protected(api, "admin")
    @api.response(202, DeliverySchema)
    @api.alt_response(404, schema=ErrorSchema, description="No such delivery")
    @api.alt_response(409, schema=ErrorSchema, description="This delivery cannot be sent again")
    def post(self, delivery_id: str) -> dict[str, Any]:
        """Send one delivery again (it goes back to pending; the sender picks it up)."""
        try:
            with NotificationsUnitOfWork(_service().engine) as uow:
                handlers.resend(delivery_id, uow, datetime.now(UTC))
        except handlers.CannotResend as refused:
            abort(404 if refused.missing else 409, message=str(refused))
        with _service().engine.connect() as conn:
            found = views.delivery(conn, delivery_id)
        assert found is not None
        return found


@api.route("/posts/<post_id>/counts")
class PostCounts(MethodView):
    @protected(api, "admin")
    @api.response(200, PostCountsSchema)
    def get(self, post_id: str) -> dict[str, Any]:
        """How a news post's emails fared: sent, failed, skipped (unsubscribed), pending."""
        with _service().engine.connect() as conn:
            return views.post_counts(conn, post_id)


@api.route("/erasures")
class Erasures(MethodView):
    @protected(api, "admin")
    @api.arguments(ErasureRequestSchema)
    @api.response(200, ErasureSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Erase a donor's personal data from this service (a GDPR request): the donor rows go,
        the delivery log keeps only a pseudonym (an HMAC of the address), pending emails are
        cancelled. Idempotent."""
        email = body["email"]
        email_ref = _keys().email_ref(email)
        with NotificationsUnitOfWork(_service().engine) as uow:
            outcome = handlers.erase(email, email_ref, uow)
        current_app.logger.info("erased the personal data of %s", mask_email(email))
        return {"email_ref": email_ref, **outcome}


def _letterhead() -> Letterhead:
    """The letterhead the service's emails are written on (as the consumer's stationery)."""
    settings = _service().settings
    return Letterhead.from_settings(
        settings.mail_from,
        settings.donations_public_url,
        settings.mail_timezone,
        settings.public_url,
    )


@api.route("/previews/news")
class NewsPreview(MethodView):
    @protected(api, "admin")
    @api.arguments(NewsPreviewRequestSchema)
    @api.response(200, NewsPreviewSchema)
    def post(self, body: dict[str, Any]) -> dict[str, str]:
        """Render the email a news post would send its donors ("Dear difteurs, ..."), in their
        language, without sending or saving anything: subject, text and HTML, with sample
        unsubscribe links."""
        rendered = preview.news_email(_letterhead(), **body)
        return {"subject": rendered.subject, "text": rendered.text, "html": rendered.html}
