"""The ledger HTTP API: what each campaign has received and the meals it funds (public), and
the books for finance staff (bearer token with the finance role): the detailed summary, the
journal in JSON or streamed CSV, the trial balance, reconciliation and period close."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from flask import Response, current_app, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from services.shared.auth import require_role
from services.shared.money import CURRENCY_EXPONENTS

from . import handlers, views
from .reconciliation import StripeBalance, reconcile_payout, reconcile_period
from .schemas import (
    CampaignSummarySchema,
    FeePolicySchema,
    FinanceSummarySchema,
    JournalPageSchema,
    JournalQuerySchema,
    ReconciliationQuerySchema,
    TrialBalanceQuerySchema,
)

api = Blueprint(
    "ledger",
    __name__,
    url_prefix="/api/v1",
    description="Campaign money and meals, from the journal",
)

finance = Blueprint(
    "finance",
    __name__,
    url_prefix="/api/v1/finance",
    description="The books, for finance staff (bearer token with the finance role)",
)


def _engine() -> Any:
    return current_app.extensions["ledger"].engine


@api.route("/campaigns/<slug>/summary")
class CampaignSummary(MethodView):
    @api.response(200, CampaignSummarySchema)
    @api.alt_response(404, description="The ledger knows no campaign with this slug")
    def get(self, slug: str) -> dict[str, Any]:
        """A campaign's gifts, refunds and funded meals, in minor units."""
        with _engine().connect() as conn:
            summary = views.campaign_summary(conn, slug)
        if summary is None:
            abort(404, message=f"no campaign {slug!r} in the ledger")
        assert summary is not None  # abort() raised; flask-smorest does not type it NoReturn
        return summary


@finance.route("/campaigns/<slug>/summary")
class FinanceSummary(MethodView):
    @require_role("finance")
    @finance.response(200, FinanceSummarySchema)
    def get(self, slug: str) -> dict[str, Any]:
        """A campaign's money as finance staff see it: fees, net, disputes, paid out."""
        with _engine().connect() as conn:
            summary = views.campaign_finance_summary(conn, slug)
        if summary is None:
            abort(404, message=f"no campaign {slug!r} in the ledger")
        assert summary is not None
        return summary


@finance.route("/campaigns/<slug>/fee-policy")
class CampaignFeePolicy(MethodView):
    @require_role("finance")
    @finance.arguments(FeePolicySchema)
    @finance.response(200, FeePolicySchema)
    def put(self, body: dict[str, Any], slug: str) -> dict[str, Any]:
        """Choose who bears the fees of the campaign's gifts booked from now on."""
        try:
            with _engine().begin() as conn:
                handlers.set_fee_policy(conn, slug, body["fee_policy"])
        except handlers.Refused as error:
            abort(404, message=str(error))
        return body


def decimal_text(minor: int, currency: str) -> str:
    """Minor units as a plain decimal string for spreadsheets ("-27.00"), never a float."""
    exponent = CURRENCY_EXPONENTS[currency]
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def _safe_cell(text: str | None) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text or ""


JOURNAL_CSV_COLUMNS = [
    "entry_id",
    "effective_date",
    "original_date",
    "kind",
    "campaign_id",
    "account",
    "account_name",
    "currency",
    "debit_minor",
    "credit_minor",
    "debit",
    "credit",
    "stripe_object_id",
    "charge_id",
    "balance_transaction_id",
    "payment_reference",
    "donation_id",
    "event_id",
    "description",
]


def journal_csv_rows(entries: Iterator[dict[str, Any]]) -> Iterator[str]:
    """The journal as CSV text, one row per line: UTF-8 with a byte-order mark (so a
    spreadsheet reads accents right), CRLF, amounts in minor units and as decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(JOURNAL_CSV_COLUMNS)
    yield "\ufeff" + buffer.getvalue()
    for entry in entries:
        for line in entry["lines"]:
            buffer.seek(0)
            buffer.truncate()
            amount, currency = line["amount"], line["currency"]
            original = entry["original_effective_at"]
            writer.writerow(
                [
                    entry["id"],
                    entry["effective_at"].isoformat(),
                    original.isoformat() if original else "",
                    entry["kind"],
                    entry["campaign_id"] or "",
                    line["account"],
                    _safe_cell(views.account_name(line["account"])),
                    currency,
                    max(amount, 0),
                    max(-amount, 0),
                    decimal_text(max(amount, 0), currency),
                    decimal_text(max(-amount, 0), currency),
                    entry["stripe_object_id"] or "",
                    entry["charge_id"] or "",
                    entry["balance_transaction_id"] or "",
                    entry["stripe_reference"] or "",
                    entry["donation_id"] or "",
                    entry["event_id"],
                    _safe_cell(entry["description"]),
                ]
            )
            yield buffer.getvalue()


@finance.route("/journal")
class Journal(MethodView):
    @require_role("finance")
    @finance.arguments(JournalQuerySchema, location="query")
    @finance.response(200, JournalPageSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """Journal entries oldest first, filtered by campaign, account, effective date range and
        Stripe id; JSON pages with a cursor, or (format=csv) every match streamed as CSV."""
        filters: dict[str, Any] = {
            key: query.get(key) for key in ("campaign", "account", "since", "until", "stripe_id")
        }
        if query["format"] == "csv":
            engine = _engine()

            def generate() -> Iterator[str]:
                with engine.connect() as conn:
                    yield from journal_csv_rows(views.journal_pages(conn, **filters))

            return Response(
                stream_with_context(generate()),
                mimetype="text/csv",
                headers={"Content-Disposition": 'attachment; filename="journal.csv"'},
            )
        after = None
        if query.get("cursor"):
            try:
                after = views.decode_cursor(query["cursor"])
            except ValueError:
                abort(400, message="cursor is not one this API gave")
        with _engine().connect() as conn:
            entries = views.journal(conn, after=after, limit=query["limit"], **filters)
        next_cursor = None
        if len(entries) == query["limit"]:
            next_cursor = views.encode_cursor(entries[-1]["effective_at"], entries[-1]["id"])
        return {"entries": entries, "next_cursor": next_cursor}


@finance.route("/trial-balance")
class TrialBalance(MethodView):
    @require_role("finance")
    @finance.arguments(TrialBalanceQuerySchema, location="query")
    def get(self, query: dict[str, Any]) -> Any:
        """Every account's balance at a date (all entries effective up to it); each currency
        sums to zero. JSON, or format=csv."""
        with _engine().connect() as conn:
            found = views.trial_balance(conn, query["at"])
        if query["format"] != "csv":
            return found
        buffer = io.StringIO()
        buffer.write("\ufeff")
        writer = csv.writer(buffer)
        writer.writerow(["account", "account_name", "currency", "debit_minor", "credit_minor"])
        for row in found["accounts"]:
            writer.writerow(
                [row["account"], row["name"], row["currency"], row["debit"], row["credit"]]
            )
        return Response(buffer.getvalue(), mimetype="text/csv")


@finance.route("/reconciliation")
class Reconciliation(MethodView):
    @require_role("finance")
    @finance.arguments(ReconciliationQuerySchema, location="query")
    def get(self, query: dict[str, Any]) -> Any:
        """Stripe's balance transactions of a payout, or of a period, matched to the journal;
        "balanced" only when nothing is off."""
        settings = current_app.extensions["ledger"].settings
        balance = StripeBalance(settings.stripe_api_key, settings.stripe_api_base or None)
        with _engine().connect() as conn:
            if query.get("payout"):
                report = reconcile_payout(conn, balance, query["payout"])
            elif query.get("since") and query.get("until"):
                report = reconcile_period(conn, balance, query["since"], query["until"])
            else:
                abort(400, message="give a payout, or since and until")
        return report.to_dict()


@finance.route("/periods/<month>/close")
class ClosePeriod(MethodView):
    @require_role("finance")
    def post(self, month: str) -> Any:
        """Close a month (YYYY-MM) to new postings; late events post into the next open one."""
        try:
            with _engine().begin() as conn:
                newly = handlers.close_period(conn, month, "finance API")
        except handlers.Refused as error:
            abort(400, message=str(error))
        return {"month": month, "closed": True, "already_closed": not newly}
