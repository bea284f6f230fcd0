"""The ledger HTTP API: what each campaign has received and the meals it funds (public), and
the books for finance staff (bearer token with the finance role, auth.protected): the detailed
summary and its history over time, a programme of difts' fund, the journal in JSON or
streamed CSV, the trial balance (JSON or CSV), reconciliation of a period or of a payout,
re-sync of what only Stripe has, and period close."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from flask import Response, current_app, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from flask_smorest.error_handler import ErrorSchema
from marshmallow import Schema

from services.shared.auth import protected
from services.shared.money import CURRENCY_EXPONENTS

from . import consumer, handlers, history, views
from .domain import ReconciliationReport, StripeUnavailable
from .schemas import (
    CampaignHistorySchema,
    CampaignSummarySchema,
    FeePolicySchema,
    FinanceSummarySchema,
    HistoryQuerySchema,
    JournalPageSchema,
    JournalQuerySchema,
    PayoutPathSchema,
    PeriodClosedSchema,
    PeriodQuerySchema,
    PeriodSchema,
    ProgrammeBalanceSchema,
    ProgrammePathSchema,
    ReconciliationSchema,
    ResyncRequestSchema,
    ResyncSchema,
    TrialBalanceQuerySchema,
    TrialBalanceSchema,
)
from .stripe_balance import BalanceTransactions
from .unit_of_work import LedgerUnitOfWork

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


# The CSV exports, as the OpenAPI document describes them beside their JSON.
CSV = {"type": "string", "description": "UTF-8 with a byte-order mark, comma-separated, CRLF"}
NO_CAMPAIGN = "The ledger knows no campaign with this slug"
NO_PROGRAMME = "The ledger booked no funding of a programme with this id"
JOURNAL_ANSWER = (
    "format=json: a page of entries and the next cursor; format=csv (text/csv): every "
    "matching line, one row each"
)
TRIAL_BALANCE_ANSWER = (
    "format=json: each account's balance and the totals per currency; format=csv (text/csv): "
    "account, account_name, currency, debit_minor, credit_minor"
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
    @protected(finance, "finance")
    @finance.response(200, FinanceSummarySchema)
    @finance.alt_response(404, schema=ErrorSchema, description=NO_CAMPAIGN)
    def get(self, slug: str) -> dict[str, Any]:
        """A campaign's money as finance staff see it: fees, net, disputes, paid out."""
        with _engine().connect() as conn:
            summary = views.campaign_finance_summary(conn, slug)
        if summary is None:
            abort(404, message=f"no campaign {slug!r} in the ledger")
        assert summary is not None
        return summary


@finance.route("/campaigns/<slug>/history")
class FinanceHistory(MethodView):
    @protected(finance, "finance")
    @finance.arguments(HistoryQuerySchema, location="query")
    @finance.response(200, CampaignHistorySchema)
    @finance.alt_response(404, schema=ErrorSchema, description=NO_CAMPAIGN)
    @finance.alt_response(
        422,
        schema=ErrorSchema,
        description="Invalid fields, or a range of more than 400 buckets of the interval "
        "(interval), or an until before the campaign's first entry (until)",
    )
    def get(self, query: dict[str, Any], slug: str) -> dict[str, Any]:
        """A campaign's money and meals over time, bucket by bucket (UTC days, ISO weeks or
        months; at most 400, else 422), with the fund's balance and the meal counter at each
        bucket's end; over every entry, the totals are the summary's figures."""
        try:
            with _engine().connect() as conn:
                found = history.campaign_history(conn, slug, **query)
        except history.TooManyBuckets as error:
            abort(422, message=str(error), errors={"query": {"interval": [str(error)]}})
        except ValueError as error:  # the default since (first entry) after an explicit until
            abort(422, message=str(error), errors={"query": {"until": [str(error)]}})
        if found is None:
            abort(404, message=f"no campaign {slug!r} in the ledger")
        assert found is not None
        return found


@finance.route("/programmes/<programme_id>/balance")
class ProgrammeBalance(MethodView):
    @protected(finance, "finance")
    @finance.arguments(ProgrammePathSchema, location="path")
    @finance.response(200, ProgrammeBalanceSchema)
    @finance.alt_response(404, schema=ErrorSchema, description=NO_PROGRAMME)
    def get(self, path: dict[str, Any], programme_id: str) -> dict[str, Any]:
        """A programme's fund: funded, directed, given by the fallback rule, credited back,
        the balance, and what each campaign received from its difts (money, meals, difts)."""
        with _engine().connect() as conn:
            found = views.programme_balance(conn, path["programme_id"])
        if found is None:
            abort(404, message=f"no programme {path['programme_id']!r} in the ledger")
        assert found is not None
        return found


@finance.route("/campaigns/<slug>/fee-policy")
class CampaignFeePolicy(MethodView):
    @protected(finance, "finance")
    @finance.arguments(FeePolicySchema)
    @finance.response(200, FeePolicySchema)
    @finance.alt_response(404, schema=ErrorSchema, description=NO_CAMPAIGN)
    def put(self, body: dict[str, Any], slug: str) -> dict[str, Any]:
        """Choose who bears the fees of the campaign's gifts booked from now on."""
        try:
            with LedgerUnitOfWork(_engine()) as uow:
                handlers.set_fee_policy(handlers.SetFeePolicy(slug, body["fee_policy"]), uow)
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


View = Callable[..., Any]


def _json_or_csv(
    query: type[Schema], answer: type[Schema], described: str
) -> Callable[[View], View]:
    """What a finance read is: protected, taking `query`, answering `answer` in JSON or (with
    format=csv) the same as text/csv, both documented as `described`."""
    decorators = (
        protected(finance, "finance"),
        finance.arguments(query, location="query"),
        finance.response(200, answer, description=described),
        finance.alt_response(
            200, schema=CSV, content_type="text/csv", description=described, success=True
        ),
    )

    def decorate(view: View) -> View:
        # Applied innermost first, as the decorators stacked above a view would be.
        for decorator in reversed(decorators):
            view = decorator(view)
        return view

    return decorate


@finance.route("/journal")
class Journal(MethodView):
    @_json_or_csv(JournalQuerySchema, JournalPageSchema, JOURNAL_ANSWER)
    def get(self, query: dict[str, Any]) -> Any:
        """Journal entries oldest first, filtered by campaign, account, kind, effective date
        range and Stripe id; JSON pages with a cursor and the total matching, or (format=csv)
        every match streamed as CSV."""
        filters: dict[str, Any] = {
            key: query.get(key)
            for key in ("campaign", "account", "kind", "since", "until", "stripe_id")
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
        with _engine().connect() as conn:
            entries = views.journal(
                conn, after=query.get("cursor"), limit=query["limit"], **filters
            )
            total = views.journal_count(conn, **filters)
        next_cursor = None
        if len(entries) == query["limit"]:
            # JournalPageSchema writes the place after the last entry as the next cursor.
            next_cursor = (entries[-1]["effective_at"], entries[-1]["id"])
        return {"entries": entries, "next_cursor": next_cursor, "total": total}


@finance.route("/trial-balance")
class TrialBalance(MethodView):
    @_json_or_csv(TrialBalanceQuerySchema, TrialBalanceSchema, TRIAL_BALANCE_ANSWER)
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


def _reconciled(
    reconcile: Callable[[Any, handlers.OpenUnitOfWork, handlers.StripeRecords], Any],
    asked: Any,
) -> dict[str, Any]:
    """Run a reconciliation against Stripe's balance transactions; 404 for a payout Stripe
    does not know, 502 when Stripe cannot be asked."""
    stripe = BalanceTransactions.of(current_app.extensions["ledger"].settings)
    engine = _engine()
    try:
        report: ReconciliationReport = reconcile(asked, lambda: LedgerUnitOfWork(engine), stripe)
    except StripeUnavailable as error:
        if error.missing:
            abort(404, message=f"Stripe knows no such payout: {error.said}")
        abort(502, message=f"Stripe could not be asked, try again: {error.said}")
    return report.to_dict()


STRIPE_DOWN = "Stripe could not be reached or refused the request; nothing was changed"


@finance.route("/reconciliation")
class Reconciliation(MethodView):
    @protected(finance, "finance")
    @finance.arguments(PeriodQuerySchema, location="query")
    @finance.response(200, ReconciliationSchema)
    @finance.alt_response(502, schema=ErrorSchema, description=STRIPE_DOWN)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Stripe's balance transactions created in [since, until), matched to the journal;
        "balanced" only when nothing is off."""
        asked = handlers.ReconcilePeriod(query["since"], query["until"])
        return _reconciled(handlers.reconcile_period, asked)


@finance.route("/payouts/<payout>/reconciliation")
class PayoutReconciliation(MethodView):
    @protected(finance, "finance")
    @finance.arguments(PayoutPathSchema, location="path")
    @finance.response(200, ReconciliationSchema)
    @finance.alt_response(404, schema=ErrorSchema, description="Stripe knows no such payout")
    @finance.alt_response(502, schema=ErrorSchema, description=STRIPE_DOWN)
    def get(self, path: dict[str, Any], payout: str) -> dict[str, Any]:
        """The balance transactions Stripe says a payout settled, matched to the journal, and
        the payout booked to the bank against the total it settled."""
        return _reconciled(handlers.reconcile_payout, handlers.ReconcilePayout(path["payout"]))


@finance.route("/resync")
class Resync(MethodView):
    @protected(finance, "finance")
    @finance.arguments(ResyncRequestSchema)
    @finance.response(200, ResyncSchema)
    @finance.alt_response(404, schema=ErrorSchema, description="Stripe knows no such payout")
    @finance.alt_response(502, schema=ErrorSchema, description=STRIPE_DOWN)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Book what Stripe moved and the ledger missed, for a payout or a period [since,
        until): each missing gift, refund or payout rebuilt and booked once through the
        consumer's idempotent path (twice books nothing twice); what cannot be rebuilt is
        answered under needs_a_person with the reason."""
        asked = handlers.Resync(body.get("since"), body.get("until"), body.get("payout"))
        try:
            return consumer.resync(current_app.extensions["ledger"].settings, _engine(), asked)
        except StripeUnavailable as error:
            if error.missing:
                abort(404, message=f"Stripe knows no such payout: {error.said}")
            abort(502, message=f"Stripe could not be asked, try again: {error.said}")
        raise AssertionError("abort() raised")  # flask-smorest does not type it NoReturn


@finance.route("/periods/<month>/close")
class ClosePeriod(MethodView):
    @protected(finance, "finance")
    @finance.arguments(PeriodSchema, location="path")
    @finance.response(200, PeriodClosedSchema)
    def post(self, path: dict[str, Any], month: str) -> dict[str, Any]:
        """Close a month (YYYY-MM) to new postings; late events post into the next open one.

        Closing a closed month again changes nothing (already_closed)."""
        try:
            with LedgerUnitOfWork(_engine()) as uow:
                newly = handlers.close_period(
                    handlers.ClosePeriod(path["month"], "finance API"), uow
                )
        except handlers.Refused as error:
            abort(422, message=str(error), errors={"path": {"month": [str(error)]}})
        return {"month": path["month"], "closed": True, "already_closed": not newly}
