"""The notifications HTTP API: the delivery log, for operators (bearer token)."""

from __future__ import annotations

import hmac
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from . import views
from .schemas import DeliveryQuerySchema, DeliverySchema

api = Blueprint(
    "notifications", __name__, url_prefix="/api/v1", description="The delivery log of emails"
)


def _service() -> Any:
    return current_app.extensions["notifications"]


@api.before_request
def _require_admin_token() -> None:
    """Every route here shows who was emailed: operators only."""
    given = request.headers.get("Authorization", "")
    scheme, _, token = given.partition(" ")
    expected = _service().settings.admin_token
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        abort(401, message="a valid bearer token is required (NOTIFICATIONS_ADMIN_TOKEN)")


@api.route("/deliveries")
class Deliveries(MethodView):
    @api.arguments(DeliveryQuerySchema, location="query")
    @api.response(200, DeliverySchema(many=True))
    @api.alt_response(401, description="No or wrong bearer token")
    def get(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Deliveries, newest first: of one donation, or in one status, or all."""
        with _service().engine.connect() as conn:
            return views.deliveries(
                conn, query.get("donation_id"), query.get("status"), query["limit"]
            )
