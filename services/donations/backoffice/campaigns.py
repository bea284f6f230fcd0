"""The campaign managers' pages: the campaigns with their meals funded; a campaign written or
edited with its texts in French and English and a preview of its story; publishing and
closing, each confirmed on a page of its own; a live campaign's meal price from a date on,
with the prices before it.

Every change goes through the handlers the admin JSON API calls (handlers/campaigns.py) in
one unit of work, so its events reach the outbox exactly as the API's do; a form the rules
refuse is shown again with the error next to its field, what was typed kept, nothing saved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from babel.dates import format_datetime
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from services.shared.db import reading
from services.shared.i18n import DEFAULT_LOCALE
from services.shared.money import Money

from .. import views
from ..domain.accounts import ADMIN
from ..domain.campaigns import Campaign, CampaignRuleBroken, CampaignStatus
from ..handlers import campaigns as handlers
from ..handlers.campaigns import UnknownCampaign
from ..i18n import current_locale, money
from ..markdown_text import render_markdown
from ..unit_of_work import DonationsUnitOfWork
from .auth import backoffice, nav, role_required
from .campaign_forms import OFFICE_TIMEZONE, OTHER_LOCALES, CampaignForm, MealPriceForm
from .campaign_forms import NewCampaignForm as NewForm

STATUS = {
    "draft": _l("draft"),
    "live": _l("live"),
    "closed": _l("closed"),
}

# What the rules refuse, said next to the field at fault (the domain's words are English
# and meant for the API's callers).
REFUSED = {
    "slug": _l("A campaign already has this address."),
    "meal_price": _l("This price cannot be kept."),
    "currency": _l("A live campaign keeps its currency."),
    "effective_from": _l("A new price takes effect now or later, not in the past."),
}

nav(ADMIN, "campaigns", _l("Campaigns"))


def _engine() -> Any:
    return current_app.extensions["donations"].engine


def _campaign(slug: str) -> Campaign:
    """The campaign with this slug, or a 404 page."""
    with reading(_engine()) as conn:
        found = views.campaign(conn, slug)
    if found is None:
        abort(404)
    return found


def _run(change: Callable[[DonationsUnitOfWork], Any]) -> Any:
    """A change in one unit of work: all of it is saved with its events, or none of it."""
    with DonationsUnitOfWork(_engine()) as uow:
        return change(uow)


def _refused(form: Any, error: CampaignRuleBroken) -> None:
    """The rules' refusal as an error next to its field (the form's first field if none)."""
    name = error.field if error.field in form else next(iter(form)).name
    form[name].errors = [*form[name].errors, REFUSED.get(error.field, error.message)]


def _state_refused(campaign: Campaign) -> Any:
    """A change the campaign's state no longer allows (another manager got there first):
    a 409 page saying so, as it is now; nothing was changed."""
    campaign = _campaign(campaign.slug)
    detail = _(
        "“%(title)s” is %(status)s: this is no longer possible.",
        title=campaign.title,
        status=STATUS[campaign.status.value],
    )
    return render_template(
        "backoffice/problem.html", title=_("Nothing was changed"), detail=detail
    ), 409


@backoffice.get("/campaigns")
@role_required(ADMIN)
def campaigns() -> Any:
    """Every campaign with its state, meals funded, and what can be done with it."""
    with reading(_engine()) as conn:
        rows = views.campaigns_with_meals(conn)
    return render_template("backoffice/campaigns/list.html", campaigns=rows, status=STATUS)


def _previews(form: CampaignForm) -> dict[str, Any] | None:
    """The story as donors will read it in each language, when Preview was pressed."""
    if request.form.get("action") != "preview":
        return None
    previews = {DEFAULT_LOCALE: render_markdown(form.story_markdown.data or "")}
    for locale in OTHER_LOCALES:
        story = form[f"story_markdown_{locale}"].data or form.story_markdown.data or ""
        previews[locale] = render_markdown(story)
    return previews


def _form_page(form: CampaignForm, campaign: Campaign | None, status: int = 200) -> Any:
    return render_template(
        "backoffice/campaigns/form.html",
        form=form,
        campaign=campaign,
        previews=_previews(form),
        status=STATUS,
    ), status


@backoffice.route("/campaigns/new", methods=["GET", "POST"])
@role_required(ADMIN)
def new_campaign() -> Any:
    """Write a draft: nothing is announced until it is published."""
    form = NewForm()
    if request.method == "GET":
        form.currency.data = form.currency.data or "EUR"
        return _form_page(form, None)
    if request.form.get("action") == "preview":
        form.validate()
        return _form_page(form, None)
    body = form.checked_body() if form.validate() else None
    if body is None:
        return _form_page(form, None, 422)
    price = Money(body.pop("meal_price"), body.pop("currency"))
    command = handlers.CreateCampaign(body.pop("slug"), price, body)
    try:
        created = _run(lambda uow: handlers.create_campaign(command, uow))
    except CampaignRuleBroken as refused:
        _refused(form, refused)
        return _form_page(form, None, 422)
    flash(
        _(
            "The draft “%(title)s” is saved. Donors see it once it is published.",
            title=created.title,
        )
    )
    return redirect(url_for("backoffice.campaigns"), 303)


def _edit_form(campaign: Campaign) -> CampaignForm:
    """The edit form; a live campaign's price changes from a date on, on its own page."""
    form = CampaignForm() if request.method == "POST" else CampaignForm(formdata=None)
    if request.method == "GET":
        form.fill(campaign)
    if campaign.status is not CampaignStatus.DRAFT:
        del form.meal_price
        del form.currency
    return form


@backoffice.route("/campaigns/<slug>/edit", methods=["GET", "POST"])
@role_required(ADMIN)
def edit_campaign(slug: str) -> Any:
    """Edit a campaign's facts and texts; a live campaign's new facts are announced."""
    campaign = _campaign(slug)
    if campaign.status is CampaignStatus.CLOSED:
        return _state_refused(campaign)
    form = _edit_form(campaign)
    if request.method == "GET":
        return _form_page(form, campaign)
    if request.form.get("action") == "preview":
        form.validate()
        return _form_page(form, campaign)
    body = form.checked_body() if form.validate() else None
    if body is None:
        return _form_page(form, campaign, 422)
    command = handlers.EditCampaign(slug, body)
    try:
        edited = _run(lambda uow: handlers.edit_campaign(command, uow))
    except CampaignRuleBroken as refused:
        if refused.field in ("status", "campaign"):
            return _state_refused(campaign)
        _refused(form, refused)
        return _form_page(form, campaign, 422)
    flash(_("“%(title)s” is saved.", title=edited.title))
    return redirect(url_for("backoffice.campaigns"), 303)


def _confirm(slug: str, move: str) -> Any:
    """Ask before publishing or closing (GET), then do it through the handler (POST)."""
    campaign = _campaign(slug)
    if request.method == "GET":
        return render_template(
            "backoffice/campaigns/confirm.html", campaign=campaign, move=move, status=STATUS
        )
    change = handlers.go_live if move == "publish" else handlers.close_campaign
    try:
        moved = _run(lambda uow: change(slug, uow))
    except (CampaignRuleBroken, UnknownCampaign):
        return _state_refused(campaign)
    if move == "publish":
        flash(_("“%(title)s” is live: donors can give to it.", title=moved.title))
    else:
        flash(_("“%(title)s” is closed: it takes no more gifts.", title=moved.title))
    return redirect(url_for("backoffice.campaigns"), 303)


@backoffice.route("/campaigns/<slug>/publish", methods=["GET", "POST"])
@role_required(ADMIN)
def publish_campaign(slug: str) -> Any:
    """Publish a draft, once confirmed: it takes gifts and is announced."""
    return _confirm(slug, "publish")


@backoffice.route("/campaigns/<slug>/close", methods=["GET", "POST"])
@role_required(ADMIN)
def close_campaign(slug: str) -> Any:
    """Close a live campaign, once confirmed: it takes no more gifts."""
    return _confirm(slug, "close")


def _price_page(campaign: Campaign, form: MealPriceForm, status: int = 200) -> Any:
    with reading(_engine()) as conn:
        history = views.meal_price_history(conn, campaign.id)
    return render_template(
        "backoffice/campaigns/meal_price.html",
        campaign=campaign,
        form=form,
        history=history,
        at=at,
        status=STATUS,
    ), status


@backoffice.route("/campaigns/<slug>/meal-price", methods=["GET", "POST"])
@role_required(ADMIN)
def meal_price(slug: str) -> Any:
    """A live campaign's meal price from a date on (never in the past), with its history."""
    campaign = _campaign(slug)
    currency = campaign.meal_price.currency
    if request.method == "GET":
        form = MealPriceForm(currency, formdata=None)
        tomorrow = datetime.now(OFFICE_TIMEZONE).replace(second=0, microsecond=0)
        form.effective_from.data = (tomorrow + timedelta(days=1)).replace(tzinfo=None)
        return _price_page(campaign, form)
    form = MealPriceForm(currency)
    if campaign.status is not CampaignStatus.LIVE:
        return _state_refused(campaign)
    if not form.validate():
        return _price_page(campaign, form, 422)
    price = form.price()
    assert price is not None  # validate checked it
    command = handlers.ChangeMealPrice(slug, Money(price, currency), form.moment())
    try:
        _run(lambda uow: handlers.change_meal_price(command, uow))
    except CampaignRuleBroken as refused:
        if refused.field in ("status", "campaign"):
            return _state_refused(campaign)
        _refused(form, refused)
        return _price_page(campaign, form, 422)
    flash(
        _(
            "From %(when)s, one meal costs %(price)s.",
            when=at(form.moment()),
            price=money(price, currency),
        )
    )
    return redirect(url_for("backoffice.meal_price", slug=slug), 303)


def at(moment: datetime) -> str:
    """A moment as the campaign managers read it: a short date and time, Paris time."""
    return format_datetime(moment, "short", tzinfo=OFFICE_TIMEZONE, locale=current_locale())
