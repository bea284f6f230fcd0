"""Finance staff's pages: each campaign's dashboard (the ledger's summary, and charts of its
money and meals over time), the journal with its filters, paging and CSV, and the trial
balance at a date. Reconciliation, re-sync and period close are finance_books.py's.

Every figure here is the ledger's (LedgerClient over HTTP: no service reads another's
database), only formatted for the page's language by Babel. When the ledger does not answer
the page says so with a 503 and what to do; a filter the ledger refuses comes back next to
its field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Response, abort, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from services.shared.db import reading
from services.shared.i18n import format_day_pattern

from .. import views
from ..i18n import current_locale, money, number
from ..service_clients import LedgerClient, ServiceRefused, ServiceUnavailable
from .auth import backoffice, nav, role_required
from .finance_charts import Series, meals_chart_svg, money_chart_svg, svg_data_url

FINANCE = "finance"
JOURNAL_PAGE = 25
DAY_FORMAT = "%Y-%m-%d"

nav(FINANCE, "finance_campaigns", _l("Campaign books"))
nav(FINANCE, "finance_journal", _l("Journal"))
nav(FINANCE, "finance_trial_balance", _l("Trial balance"))

INTERVALS = {"day": _l("per day"), "week": _l("per week"), "month": _l("per month")}
# The ledger's entry kinds (its EntryKind), as finance staff read them.
KINDS = {
    "donation": _l("donation"),
    "fee_charged_to_fund": _l("fee charged to the fund"),
    "refund": _l("refund"),
    "refund_failed": _l("refund failed"),
    "dispute_opened": _l("dispute opened"),
    "dispute_won": _l("dispute won"),
    "dispute_lost": _l("dispute lost"),
    "payout": _l("payout"),
    "programme_funded": _l("programme funded"),
    "dift_directed": _l("dift directed"),
    "dift_expired": _l("dift expired"),
    "programme_credited_back": _l("programme credited back"),
}
# Where the Stripe dashboard shows an object, by its id's prefix; other ids go to its search.
STRIPE_PAGES = {
    "ch_": "payments",
    "py_": "payments",
    "pi_": "payments",
    "re_": "refunds",
    "pyr_": "refunds",
    "dp_": "disputes",
    "du_": "disputes",
    "po_": "payouts",
}


def ledger() -> LedgerClient:
    """The ledger the settings name (DIFTS_LEDGER_URL / DIFTS_LEDGER_TOKEN)."""
    return LedgerClient.of(current_app.extensions["donations"].settings)


def stripe_url(object_id: str | None) -> str | None:
    """The Stripe dashboard's page of an object, in test mode unless the service runs on a
    live key (the dashboard keeps test and live objects apart, under /test/ or not)."""
    if not object_id:
        return None
    key = current_app.extensions["donations"].settings.stripe_api_key
    base = "https://dashboard.stripe.com" + ("" if "_live_" in key else "/test")
    for prefix, page in STRIPE_PAGES.items():
        if object_id.startswith(prefix):
            return f"{base}/{page}/{object_id}"
    return f"{base}/search?query={object_id}"


def moment(text: str | None) -> datetime | None:
    """An ISO 8601 moment of the ledger's JSON as a datetime (for Babel's day formats)."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def day_start(day: date | None) -> datetime | None:
    """00:00 UTC of a typed day: the ledger's days are UTC days."""
    return datetime.combine(day, time(0), UTC) if day is not None else None


def day_after(day: date | None) -> datetime | None:
    """00:00 UTC of the day after: a typed "until" day is included, the ledger's excluded."""
    return day_start(day + timedelta(days=1)) if day is not None else None


def day_end(day: date) -> datetime:
    """The last moment of a UTC day: the trial balance "at" a day counts all of that day."""
    return datetime.combine(day, time.max, UTC)


def refused_fields(form: FlaskForm, refused: ServiceRefused, names: Mapping[str, str]) -> bool:
    """The ledger's field errors put next to the page's fields (`names`: ledger's name ->
    the form's); False when none of them is the ledger's reason."""
    placed = False
    for name, messages in refused.fields.items():
        field = getattr(form, names.get(name, name), None)
        if field is not None:
            field.errors = [*field.errors, *messages]
            placed = True
    return placed


@backoffice.errorhandler(ServiceUnavailable)
def _not_answering(error: ServiceUnavailable) -> Any:
    """A service of the back office (the ledger, notifications) did not answer: a page
    saying so and what to do, never a stack trace."""
    return render_template("backoffice/finance/unavailable.html", service=error.service), 503


def _choices(pairs: Iterable[tuple[str, Any]]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


@backoffice.errorhandler(ServiceRefused)
def _refused(error: ServiceRefused) -> Any:
    """A refusal no page put next to a field (each page handles those it expects): the
    service's own message, with its 4xx status, never a 500."""
    return render_template(
        "backoffice/problem.html", title=_("The ledger refused the request"), detail=error.message
    ), error.status


class QueryForm(FlaskForm):
    """A form sent with GET: its fields are the page's address, no CSRF needed (it changes
    nothing)."""

    class Meta:
        csrf = False


def _days_in_order(form: Any) -> bool:
    if form.since.data and form.until.data and form.since.data > form.until.data:
        form.until.errors = [*form.until.errors, _("The last day comes after the first.")]
        return False
    return True


# ---- the campaigns' books -------------------------------------------------------------


@backoffice.get("/finance")
@role_required(FINANCE)
def finance_campaigns() -> Any:
    """The campaigns, each with a link to its dashboard."""
    with reading(current_app.extensions["donations"].engine) as conn:
        campaigns = views.all_campaigns(conn)
    return render_template("backoffice/finance/campaigns.html", campaigns=campaigns)


class HistoryForm(QueryForm):
    interval = SelectField(
        _l("Chart by"), choices=_choices(INTERVALS.items()), default="month", validate_choice=True
    )


def _bucket_label(starts_at: str, interval: str) -> str:
    pattern = {"month": "MMM y", "week": "d MMM", "day": "d MMM"}[interval]
    start = moment(starts_at)
    assert start is not None
    return format_day_pattern(start, pattern, current_locale())


def charts(history: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's two charts (data: URLs) and the labels of their tables."""
    currency = history["currency"]
    buckets = history["buckets"]
    labels = [_bucket_label(b["starts_at"], history["interval"]) for b in buckets]
    money_series = [
        Series(str(name), [b[key] for b in buckets])
        for key, name in (
            ("donated", _("Donated")),
            ("net", _("Net")),
            ("refunded", _("Refunded")),
            ("paid_out", _("Paid out")),
        )
    ]
    meals_series = [Series(_("Meals funded so far"), [b["meals_total"] for b in buckets])]
    return {
        "labels": labels,
        "money": svg_data_url(
            money_chart_svg(
                _("Money per period (%(currency)s)", currency=currency),
                labels,
                money_series,
                lambda minor: money(minor, currency),
            )
        ),
        "meals": svg_data_url(
            meals_chart_svg(_("Meals funded over time"), labels, meals_series, number)
        ),
    }


@backoffice.get("/finance/campaigns/<slug>")
@role_required(FINANCE)
def finance_dashboard(slug: str) -> Any:
    """A campaign's figures from the ledger's summary, and its history as two charts with a
    table of the same figures each."""
    form = HistoryForm(request.args)
    status = 200
    if not form.validate():
        form.interval.data = "month"
        status = 422
    client = ledger()
    try:
        summary = client.summary(slug)
    except ServiceRefused as refused:
        if refused.status == 404:
            abort(404, _("The ledger has no campaign at this address yet."))
        raise
    history = None
    try:
        history = client.history(slug, interval=form.interval.data)
    except ServiceRefused as refused:
        if not refused_fields(form, refused, {}):
            form.interval.errors = [refused.message]
        status = 422
    return render_template(
        "backoffice/finance/dashboard.html",
        summary=summary,
        history=history,
        charts=charts(history) if history else None,
        form=form,
        moment=moment,
    ), status


# ---- the journal ----------------------------------------------------------------------


class JournalForm(QueryForm):
    since = DateField(_l("From"), validators=[Optional()], format=DAY_FORMAT)
    until = DateField(_l("To (included)"), validators=[Optional()], format=DAY_FORMAT)
    account = StringField(
        _l("Account"),
        validators=[Optional(), Length(max=200, message=_l("At most 200 characters."))],
    )
    kind = SelectField(
        _l("Kind"), choices=_choices([("", _l("any kind")), *KINDS.items()]), default=""
    )
    campaign = SelectField(
        _l("Campaign"), choices=_choices([("", _l("every campaign"))]), default=""
    )
    stripe_id = StringField(
        _l("Stripe id"),
        validators=[Optional(), Length(max=200, message=_l("At most 200 characters."))],
    )

    def filters(self) -> dict[str, Any]:
        """The filters as the ledger's journal takes them."""
        return {
            "since": day_start(self.since.data),
            "until": day_after(self.until.data),
            "account": (self.account.data or "").strip() or None,
            "kind": self.kind.data or None,
            "campaign": self.campaign.data or None,
            "stripe_id": (self.stripe_id.data or "").strip() or None,
        }

    def query(self) -> dict[str, Any]:
        """The filters as typed, for the paging and CSV links."""
        names = ("since", "until", "account", "kind", "campaign", "stripe_id")
        return {name: value for name in names if (value := request.args.get(name, "").strip())}


def _journal_form() -> JournalForm:
    form = JournalForm(request.args)
    with reading(current_app.extensions["donations"].engine) as conn:
        campaigns = views.all_campaigns(conn)
    form.campaign.choices = _choices(
        [("", _("every campaign")), *((c.slug, c.title) for c in campaigns)]
    )
    return form


def typed_days(*fields: Any) -> None:
    """A day that could not be read gets the page's own message, not WTForms'."""
    for field in fields:
        if field.errors and field.data is None:
            field.errors = [_("Write a day such as 2026-03-31.")]


def _journal_valid(form: JournalForm) -> bool:
    valid = form.validate()
    typed_days(form.since, form.until)
    return _days_in_order(form) and valid


@backoffice.get("/finance/journal")
@role_required(FINANCE)
def finance_journal() -> Any:
    """A page of the journal's entries with their lines, the filters above it, a link to
    the next page (the ledger's cursor) and one to the CSV of every matching line."""
    form = _journal_form()
    page = None
    status = 200
    cursor = request.args.get("cursor") or None
    seen = request.args.get("seen", "0")
    offset = int(seen) if seen.isdigit() and len(seen) < 10 else 0
    if _journal_valid(form):
        try:
            page = ledger().journal_page(cursor=cursor, limit=JOURNAL_PAGE, **form.filters())
        except ServiceRefused as refused:
            if not refused_fields(form, refused, {}):
                raise  # a cursor of no page of the ledger's: its message, as a page
            status = 422
    else:
        status = 422
    next_url = None
    if page and page["next_cursor"]:
        query = form.query() | {
            "cursor": page["next_cursor"],
            "seen": str(offset + len(page["entries"])),
        }
        next_url = url_for("backoffice.finance_journal", **query)
    return render_template(
        "backoffice/finance/journal.html",
        form=form,
        page=page,
        offset=offset,
        next_url=next_url,
        first_url=url_for("backoffice.finance_journal", **form.query()) if cursor else None,
        csv_url=url_for("backoffice.finance_journal_csv", **form.query()),
        kinds=KINDS,
        stripe_url=stripe_url,
        moment=moment,
    ), status


@backoffice.get("/finance/journal.csv")
@role_required(FINANCE)
def finance_journal_csv() -> Any:
    """Every journal line matching the filters, the ledger's CSV streamed through as it
    comes (a year of books is not held in memory)."""
    form = _journal_form()
    if not _journal_valid(form):
        return finance_journal()
    try:
        chunks = ledger().journal_csv(**form.filters())
    except ServiceRefused:
        return finance_journal()
    day = datetime.now(UTC).strftime(DAY_FORMAT)
    return Response(
        chunks,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="journal-{day}.csv"'},
    )


# ---- the trial balance ----------------------------------------------------------------


def _not_in_the_future(_form: Any, field: Any) -> None:
    if field.data and field.data > datetime.now(UTC).date() + timedelta(days=366):
        raise ValidationError(_("Choose a day at most a year from now."))


class TrialBalanceForm(QueryForm):
    at = DateField(
        _l("At the end of the day"), validators=[Optional(), _not_in_the_future], format=DAY_FORMAT
    )


@backoffice.get("/finance/trial-balance")
@role_required(FINANCE)
def finance_trial_balance() -> Any:
    """Every account's balance at the end of a UTC day (today unless asked), and whether
    the books balance in each currency."""
    form = TrialBalanceForm(request.args)
    if not form.validate():
        typed_days(form.at)
        return render_template("backoffice/finance/trial_balance.html", form=form, trial=None), 422
    if form.at.data is None:
        form.at.data = datetime.now(UTC).date()
    trial = ledger().trial_balance(at=day_end(form.at.data))
    return render_template("backoffice/finance/trial_balance.html", form=form, trial=trial)
