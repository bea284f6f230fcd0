"""The ledger HTTP API: what each campaign has received and the meals it funds."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from . import views
from .schemas import CampaignSummarySchema

api = Blueprint(
    "ledger",
    __name__,
    url_prefix="/api/v1",
    description="Campaign money and meals, from the journal",
)


@api.route("/campaigns/<slug>/summary")
class CampaignSummary(MethodView):
    @api.response(200, CampaignSummarySchema)
    @api.alt_response(404, description="The ledger knows no campaign with this slug")
    def get(self, slug: str) -> dict[str, Any]:
        """A campaign's gifts, refunds and funded meals, in minor units."""
        with current_app.extensions["ledger"].engine.connect() as conn:
            summary = views.campaign_summary(conn, slug)
        if summary is None:
            abort(404, message=f"no campaign {slug!r} in the ledger")
        assert summary is not None  # abort() raised; flask-smorest does not type it NoReturn
        return summary
