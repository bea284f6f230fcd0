"""What the company sees of its programme: the impact report (a page and the same figures as
CSV) and its mécénat receipts as PDF.

Aggregates only: how many difts were issued, sent, opened, directed and expired; the money
and the meals each shortlisted cause received (meals as the ledger booked them); difts
directed per day as a chart; the causes' latest news. Never a recipient's email or name.

Who may read it: the sponsor's contact through a signed link (an HMAC with the app's secret
key over the programme id and the link's expiry, made by `report_url`; it can be handed on
without an account), a bearer token of that sponsor (the sponsor role, scoped to its own
programmes), or a token of the admin role.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, make_response, request, url_for
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Connection
from werkzeug.wrappers import Response

from services.shared.auth import roles_of
from services.shared.money import Money

from . import programme_views
from .api import donations_service
from .charts import directions_chart_svg, svg_data_url
from .config import Settings
from .handlers.programmes import token_digest
from .i18n import current_locale
from .mecenat import ReceiptOrganisation, render_receipt_pdf
from .redemption_pages import render_dift_page

impact_report = Blueprint("impact_report", __name__, template_folder="templates")

# Separates these signatures from any other the secret key makes (CSRF tokens, sessions).
LINK_SALT = "difts.impact-report.v1"
DEFAULT_LINK_DAYS = 90
MAX_LINK_DAYS = 366
ACCESS_PARAMETER = "access"
CSV_COLUMNS = ("figure", "campaign", "cause", "day", "count", "amount", "currency", "meals")

# --- signed links ---------------------------------------------------------------------------------


class ReportLinkRefused(Exception):
    """A report link that is forged, cut, for another programme, or `expired`."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("expired" if expired else "refused")
        self.expired = expired


def report_link_token(secret_key: str, programme_id: str, expires_at: datetime) -> str:
    """The signed part of a report link: the programme id and the expiry, HMAC-signed with
    the app's secret key (itsdangerous)."""
    serializer = URLSafeSerializer(secret_key, salt=LINK_SALT)
    return str(serializer.dumps({"p": programme_id, "e": int(expires_at.timestamp())}))


def check_report_link(secret_key: str, token: str, programme_id: str, now: datetime) -> None:
    """Accept a report link for this programme until its expiry; ReportLinkRefused else."""
    serializer = URLSafeSerializer(secret_key, salt=LINK_SALT)
    try:
        payload = serializer.loads(token)
    except BadSignature:
        raise ReportLinkRefused() from None
    if not isinstance(payload, dict) or payload.get("p") != programme_id:
        raise ReportLinkRefused()
    expiry = payload.get("e")
    if not isinstance(expiry, int) or now.timestamp() >= expiry:
        raise ReportLinkRefused(expired=True)


def report_url(settings: Settings, programme_id: str, expires_at: datetime) -> str:
    """The link a sponsor's contact opens the report with (the page; `.csv` for the CSV)."""
    token = report_link_token(settings.secret_key, programme_id, expires_at)
    return f"{settings.public_url}/programmes/{programme_id}/report?{ACCESS_PARAMETER}={token}"


# --- who may read ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """How this request may read a programme's report: `signed` carries the link's token
    on to the CSV, the chart and the receipts."""

    signed: str | None = None


def _refused(kind: str, status: int) -> Response:
    html, code = _render("impact_refused.html", status, kind=kind)
    response = make_response(html, code)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="difts"'
    return response


def _reader(conn: Connection, programme_sponsor_id: str, programme_id: str) -> Reader | Response:
    """The reader of this request, or the page that refuses it: a valid signed link, the
    admin role, or the programme's own sponsor's token."""
    service = donations_service()
    signed = request.args.get(ACCESS_PARAMETER)
    if signed:
        try:
            check_report_link(service.settings.secret_key, signed, programme_id, datetime.now(UTC))
        except ReportLinkRefused as refused:
            if refused.expired:
                return _refused("link_expired", 410)
            return _refused("link_refused", 403)
        return Reader(signed=signed)
    header = request.headers.get("Authorization")
    if not header or not header.startswith("Bearer "):
        return _refused("login_needed", 401)
    roles = roles_of(header, current_app.config.get("API_TOKENS", {}))
    if roles is not None and "admin" in roles:
        return Reader()
    token = header.removeprefix("Bearer ").strip()
    sponsor_id = programme_views.sponsor_of_token(conn, token_digest(token))
    if sponsor_id is None:
        return _refused("login_needed", 401)
    if sponsor_id != programme_sponsor_id:
        return _refused("link_refused", 403)
    return Reader()


# --- the report -----------------------------------------------------------------------------------


def _render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_dift_page(template, status, **context)


def _report(programme_id: str) -> tuple[dict[str, Any], Reader] | Response:
    with donations_service().engine.connect() as conn:
        found = programme_views.programme(conn, programme_id)
        if found is None:
            abort(404)
        reader = _reader(conn, found.sponsor_id, programme_id)
        if isinstance(reader, Response):
            return reader
        report = programme_views.programme_report(conn, programme_id)
        sponsor = programme_views.sponsor_view(conn, found.sponsor_id)
    if report is None or sponsor is None:
        abort(404)
    report["brand"] = sponsor["brand_name"] or sponsor["legal_name"]
    return report, reader


def _private(response: Response) -> Response:
    # A signed link in the URL: kept out of caches and of the Referer of links followed.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _access(reader: Reader) -> dict[str, Any]:
    return {ACCESS_PARAMETER: reader.signed} if reader.signed else {}


@impact_report.get("/programmes/<programme_id>/report")
def report_page(programme_id: str) -> Response:
    """The impact report as a page: counts, money and meals per cause, the chart, news."""
    found = _report(programme_id)
    if isinstance(found, Response):
        return found
    report, reader = found
    locale = current_locale()
    points = report["directions_per_day"]
    chart = directions_chart_svg(points, locale)
    currency = report["programme"]["currency"]
    html, status = _render(
        "impact_report.html",
        report=report,
        currency=currency,
        chart_url=svg_data_url(chart),
        points=points,
        csv_url=url_for(".report_csv", programme_id=programme_id, **_access(reader)),
        receipt_urls=[
            (
                receipt,
                url_for(
                    ".receipt_pdf",
                    programme_id=programme_id,
                    receipt_id=receipt["id"],
                    **_access(reader),
                ),
            )
            for receipt in report["programme"]["receipts"]
        ],
        totals={
            "directed": Money(sum(c["directed_amount"] for c in report["causes"]), currency),
            "expired": Money(sum(c["expired_amount"] for c in report["causes"]), currency),
            "amount": Money(sum(c["amount"] for c in report["causes"]), currency),
            "meals": sum(c["meals"] for c in report["causes"]),
        },
    )
    return _private(make_response(html, status))


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's figures as CSV rows (CSV_COLUMNS): one per count of difts, one per
    cause (count of difts received, amount in minor units, meals), one per day of directions."""
    currency = report["programme"]["currency"]
    rows: list[dict[str, Any]] = [
        {"figure": f"difts_{name}", "count": report["counts"][name]}
        for name in ("issued", "sent", "opened", "directed", "expired")
    ]
    for cause in report["causes"]:
        for part in ("directed", "expired"):
            rows.append(
                {
                    "figure": f"cause_{part}",
                    "campaign": cause["campaign_slug"],
                    "cause": cause["cause"],
                    "count": cause[f"{part}_difts"],
                    "amount": cause[f"{part}_amount"],
                    "currency": currency,
                }
            )
        rows.append(
            {
                "figure": "cause_total",
                "campaign": cause["campaign_slug"],
                "cause": cause["cause"],
                "amount": cause["amount"],
                "currency": currency,
                "meals": cause["meals"],
            }
        )
    for day, count in report["directions_per_day"]:
        rows.append({"figure": "directed_on", "day": day.isoformat(), "count": count})
    return rows


@impact_report.get("/programmes/<programme_id>/report.csv")
def report_csv(programme_id: str) -> Response:
    """The impact report's figures as CSV (amounts in minor units, with their currency)."""
    found = _report(programme_id)
    if isinstance(found, Response):
        return found
    report, _reader_ = found
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(report_rows(report))
    response = make_response(buffer.getvalue())
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="impact-report-{programme_id}.csv"'
    )
    return _private(response)


def receipt_organisation(settings: Settings) -> ReceiptOrganisation:
    """The issuing organisation as the configuration states it (RECEIPT_* settings)."""
    return ReceiptOrganisation(
        name=settings.receipt_organisation_name,
        address=settings.receipt_organisation_address,
        object=settings.receipt_organisation_object,
        status=settings.receipt_organisation_status,
        signatory_name=settings.receipt_signatory_name,
        signatory_role=settings.receipt_signatory_role,
        signature_place=settings.receipt_signature_place,
        siren=settings.receipt_organisation_siren or None,
    )


@impact_report.get("/programmes/<programme_id>/receipts/<receipt_id>.pdf")
def receipt_pdf(programme_id: str, receipt_id: str) -> Response:
    """A mécénat receipt of the programme, as the PDF the company keeps for its tax return."""
    service = donations_service()
    with service.engine.connect() as conn:
        found = programme_views.programme(conn, programme_id)
        if found is None:
            abort(404)
        reader = _reader(conn, found.sponsor_id, programme_id)
        if isinstance(reader, Response):
            return reader
        stored = programme_views.receipt(conn, receipt_id)
        if stored is None or stored.programme_id != programme_id:
            abort(404)
        receipt = programme_views.mecenat_receipt(
            conn, stored, receipt_organisation(service.settings)
        )
    if receipt is None:
        abort(404)
    response = make_response(render_receipt_pdf(receipt))
    response.mimetype = "application/pdf"
    response.headers["Content-Disposition"] = f'attachment; filename="recu-{receipt.number}.pdf"'
    return _private(response)


@impact_report.get("/programmes/<programme_id>/report-link")
def report_link(programme_id: str) -> Response:
    """A fresh signed link to the report (JSON), for the sponsor's contact to open or pass
    on: ?days= (default 90, at most 366) until it expires. The sponsor's or an admin token."""
    if request.args.get(ACCESS_PARAMETER):
        return _refused("login_needed", 401)  # a link does not make links
    with donations_service().engine.connect() as conn:
        found = programme_views.programme(conn, programme_id)
        if found is None:
            abort(404)
        reader = _reader(conn, found.sponsor_id, programme_id)
    if isinstance(reader, Response):
        return reader
    days_text = request.args.get("days", str(DEFAULT_LINK_DAYS))
    days = int(days_text) if days_text.isascii() and days_text.isdigit() else 0
    if not 1 <= days <= MAX_LINK_DAYS:
        return make_response(
            jsonify(code=422, status="Unprocessable Entity", message=f"days: 1 to {MAX_LINK_DAYS}"),
            422,
        )
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    url = report_url(donations_service().settings, programme_id, expires_at)
    csv_url = url.replace("/report?", "/report.csv?", 1)
    return _private(jsonify(url=url, csv_url=csv_url, expires_at=expires_at.isoformat()))
