"""Finance staff's checks of the books against Stripe and their closing: the reconciliation
of a payout or a period rendered as a report (BALANCED or not, matched, mismatches with
their differences, only in Stripe, only in the ledger), the re-sync of what only Stripe has
(after a confirmation step; the ledger books each missing movement once however often it is
asked), and the close of a month (after a confirmation step).

The ledger does the work and says what it did (LedgerClient); these pages only ask, after
the person confirms, and show its answer. finance.py has the other finance pages and the
page shown when the ledger does not answer."""

from __future__ import annotations

import re
from typing import Any

from flask import render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import DateField, HiddenField, StringField
from wtforms.validators import DataRequired, Optional, Regexp

from ..service_clients import ServiceRefused
from .auth import backoffice, nav, role_required
from .finance import (
    DAY_FORMAT,
    FINANCE,
    KINDS,
    QueryForm,
    day_after,
    day_start,
    ledger,
    moment,
    refused_fields,
    stripe_url,
    typed_days,
)

nav(FINANCE, "finance_reconciliation", _l("Reconciliation"))
nav(FINANCE, "finance_close", _l("Close a month"))

PAYOUT = re.compile(r"^po_[A-Za-z0-9]{1,200}$")


class ReconciliationForm(QueryForm):
    """A payout, or a period of days (the last one included)."""

    payout = StringField(
        _l("Payout id"),
        validators=[Optional(), Regexp(PAYOUT, message=_l("A Stripe payout id starts with po_."))],
    )
    since = DateField(_l("From"), validators=[Optional()], format=DAY_FORMAT)
    until = DateField(_l("To (included)"), validators=[Optional()], format=DAY_FORMAT)

    def asked(self) -> bool:
        """Whether anything was typed (an empty form shows no report and no error)."""
        return any(
            field.raw_data and field.raw_data[0].strip()
            for field in (self.payout, self.since, self.until)
        )

    def checked(self) -> bool:
        """Whether the form names one payout or one whole period; errors next to fields."""
        valid = self.validate()
        typed_days(self.since, self.until)
        if not valid:
            return False
        if self.payout.data and (self.since.data or self.until.data):
            self.payout.errors = [_("Give a payout or a period, not both.")]
        elif not self.payout.data and not (self.since.data and self.until.data):
            for field in (self.since, self.until):
                if not field.data:
                    field.errors = [_("Give a payout id, or both days of a period.")]
        elif self.since.data and self.until.data and self.since.data > self.until.data:
            self.until.errors = [_("The last day comes after the first.")]
        else:
            return True
        return False

    def scope(self) -> dict[str, str]:
        """The scope as the page's address and the re-sync form carry it."""
        if self.payout.data:
            return {"payout": self.payout.data}
        assert self.since.data and self.until.data
        return {
            "since": self.since.data.strftime(DAY_FORMAT),
            "until": self.until.data.strftime(DAY_FORMAT),
        }


def _reconcile(form: ReconciliationForm) -> dict[str, Any]:
    if form.payout.data:
        return ledger().reconcile_payout(form.payout.data)
    since, until = day_start(form.since.data), day_after(form.until.data)
    assert since and until
    return ledger().reconcile_period(since, until)


def _report_page(form: ReconciliationForm, **more: Any) -> Any:
    """The form, and the report when it names a payout or a period the ledger could read."""
    report = None
    status = 200
    if form.asked():
        if form.checked():
            try:
                report = _reconcile(form)
            except ServiceRefused as refused:
                if not refused_fields(form, refused, {}):
                    (form.payout if form.payout.data else form.since).errors = [refused.message]
                status = 404 if refused.status == 404 else 422
        else:
            status = 422
    return render_template(
        "backoffice/finance/reconciliation.html",
        form=form,
        report=report,
        scope=form.scope() if report is not None else {},
        kinds=KINDS,
        stripe_url=stripe_url,
        moment=moment,
        **more,
    ), status


@backoffice.get("/finance/reconciliation")
@role_required(FINANCE)
def finance_reconciliation() -> Any:
    """Stripe's balance transactions of a payout or a period matched to the journal."""
    return _report_page(ReconciliationForm(request.args))


class ResyncForm(FlaskForm):
    """The re-sync buttons: the report's scope, and whether the person confirmed."""

    payout = HiddenField()
    since = HiddenField()
    until = HiddenField()
    confirmed = HiddenField()


@backoffice.post("/finance/reconciliation/resync")
@role_required(FINANCE)
def finance_resync() -> Any:
    """First the confirmation step (what will be asked), then the ledger's re-sync: what it
    booked, what was booked already and what needs a person; then the report again."""
    sent = ResyncForm()
    # The scope comes back as the report's address wrote it: read it as that form reads it.
    scope = {key: request.form.get(key, "") for key in ("payout", "since", "until")}
    form = ReconciliationForm(MultiDict({key: value for key, value in scope.items() if value}))
    if not sent.validate() or not form.checked():
        return render_template(
            "backoffice/problem.html",
            title=_("Nothing to re-sync"),
            detail=_("Open a reconciliation report and use its Re-sync button."),
        ), 422
    if sent.confirmed.data != "yes":
        return render_template(
            "backoffice/finance/resync_confirm.html", form=form, scope=form.scope(), moment=moment
        )
    try:
        if form.payout.data:
            done = ledger().resync(payout=form.payout.data)
        else:
            since, until = day_start(form.since.data), day_after(form.until.data)
            done = ledger().resync(since=since, until=until)
    except ServiceRefused as refused:  # Stripe knows no such payout, say: the report says so
        return _report_page(form, resync_refused=refused.message)
    return _report_page(form, resynced=done)


class CloseForm(FlaskForm):
    month = StringField(
        _l("Month"),
        validators=[
            DataRequired(_l("Choose the month to close.")),
            Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", message=_l("Write a month such as 2026-03.")),
        ],
        render_kw={"type": "month", "placeholder": "2026-03"},
    )
    confirmed = HiddenField()


@backoffice.route("/finance/close", methods=["GET", "POST"])
@role_required(FINANCE)
def finance_close() -> Any:
    """Close a month to new postings: the month, a confirmation step, then what the ledger
    answered (closed, already closed, or refused with its reason next to the field)."""
    form = CloseForm()
    if request.method == "GET":
        return render_template("backoffice/finance/close.html", form=form)
    if not form.validate():
        return render_template("backoffice/finance/close.html", form=form), 422
    if form.confirmed.data != "yes":
        return render_template("backoffice/finance/close_confirm.html", form=form)
    try:
        answer = ledger().close_period(form.month.data or "")
    except ServiceRefused as refused:
        if not refused_fields(form, refused, {}):
            form.month.errors = [refused.message]
        return render_template("backoffice/finance/close.html", form=form, refused=True), 422
    return render_template("backoffice/finance/close.html", form=form, answer=answer)
