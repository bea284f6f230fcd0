"""The donor pages, rendered on the server in French or English (flask-babel's catalogs and
CLDR formats, see i18n.py): the campaign page with its giving form, the thank-you and cancel
pages, one page per news post."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from services.shared.money import CURRENCY_EXPONENTS, Money

from . import views
from .api import donations_service, start_gift
from .domain.campaigns import CampaignStatus
from .domain.giving import parse_major_amount
from .handlers.giving import cancel_donation
from .i18n import current_locale
from .markdown_text import render_markdown
from .schemas import DonationRequestSchema
from .unit_of_work import DonationsUnitOfWork

pages = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/donor-static",
)

# The giving form's fields the schema may name, and what the donor reads next to each.
FIELD_ERRORS = {
    "amount": _l(
        "Choose a number of meals, or type an amount such as 20 or 13.50, within the limits."
    ),
    "meals": _l("Choose a number of meals."),
    "donor": _l("Give a valid email address (and a name of at most 200 characters)."),
    "public_message": _l("The message is too long."),
    "campaign": _l("This campaign no longer takes gifts."),
}


def field_error(field: str) -> str:
    """The message for a field the schema refused, in the page's language."""
    known = FIELD_ERRORS.get(field)
    if known is not None:
        return str(known)
    return gettext("Something in the form is not valid: %(field)s.", field=field)


def render_page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A donor page in the donor's language (flask-babel's choice: ?lang=, the session, the
    browser, French); texts come from the catalogs, numbers from the CLDR template globals."""
    return (
        render_template(
            template,
            field_error=field_error,
            locale=current_locale(),
            **context,
        ),
        status,
    )


def _campaign_or_404(conn: Any, slug: str) -> Any:
    campaign = views.campaign(conn, slug)
    if campaign is None or campaign.status is CampaignStatus.DRAFT:
        abort(404)
    return campaign


def _campaign_page(slug: str, errors: dict[str, Any] | None = None, form: Any = None) -> Any:
    settings = donations_service().settings
    with donations_service().engine.connect() as conn:
        campaign = _campaign_or_404(conn, slug)
        view = views.campaign_view(conn, campaign, settings, current_locale())
        posts = views.published_posts(conn, campaign.id, limit=10)
        messages = views.public_messages(conn, campaign.id)
    fee = donations_service().rules.fee
    presets = [(meals, (campaign.meal_price * meals).amount) for meals in settings.preset_meals]
    examples = [
        (amount, fee.to_cover(Money(amount, campaign.meal_price.currency)).amount)
        for _meals, amount in presets[:2]
    ]
    return render_page(
        "campaign.html",
        422 if errors else 200,
        campaign=view,
        posts=posts,
        messages=messages,
        presets=presets,
        fee_terms=(settings.fee_percent_bp, settings.fee_fixed),
        fee_examples=examples,
        errors=errors or {},
        form=form or {},
    )


@pages.get("/")
def index() -> Any:
    """The live campaigns."""
    with donations_service().engine.connect() as conn:
        rows = views.live_campaigns(conn)
    return render_page("index.html", campaigns=rows)


@pages.get("/campaigns/<slug>")
def campaign_page(slug: str) -> Any:
    """A campaign: the cause, its story, meals funded, news, messages, the giving form."""
    return _campaign_page(slug)


def _form_to_gift(form: Any, currency: str) -> dict[str, Any]:
    """The giving form's fields as the API's gift body (amounts in minor units)."""
    body: dict[str, Any] = {
        "donor": {"email": form.get("email", "").strip(), "name": form.get("name", "").strip()},
        "currency": currency,
        "locale": current_locale(),
        "anonymous": form.get("anonymous") == "on",
        "show_message": form.get("show_message") == "on",
        "updates_opt_in": form.get("updates_opt_in") == "on",
        "cover_fee": form.get("cover_fee") == "on",
    }
    if form.get("public_message", "").strip():
        body["public_message"] = form["public_message"].strip()
    choice = form.get("meals", "")
    if choice == "custom":
        amount = parse_major_amount(form.get("custom_amount", ""), CURRENCY_EXPONENTS[currency])
        body["amount"] = amount if amount is not None else "invalid"
    else:
        # ASCII digits only: "¹" and other scripts' digits are digits to str.isdigit, not to int.
        plain_count = choice.isascii() and choice.isdigit() and len(choice) < 6
        body["meals"] = int(choice) if plain_count else "invalid"
    return body


@pages.post("/campaigns/<slug>/give")
def give(slug: str) -> Any:
    """The giving form: validate, start the donation, send the donor to pay."""
    with donations_service().engine.connect() as conn:
        campaign = _campaign_or_404(conn, slug)
    body = _form_to_gift(request.form, campaign.meal_price.currency)
    try:
        loaded = DonationRequestSchema().load(body)
    except ValidationError as error:
        return _campaign_page(slug, errors=error.normalized_messages(), form=request.form)
    try:
        donation = start_gift(loaded, slug)
    except HTTPException as error:
        data = getattr(error, "data", {}) or {}
        errors = (data.get("errors") or {}).get("json") or {
            "campaign": [str(data.get("message", error))]
        }
        if error.code and error.code >= 500:
            raise
        return _campaign_page(slug, errors=errors, form=request.form)
    if donations_service().settings.test_checkout:
        return redirect(url_for("test_checkout.page", donation_id=donation["id"]), 303)
    return redirect(donation["checkout_url"], 303)


@pages.get("/campaigns/<slug>/news/<post_id>")
def news_post(slug: str, post_id: str) -> Any:
    """One published news post."""
    with donations_service().engine.connect() as conn:
        campaign = _campaign_or_404(conn, slug)
        post = views.post(conn, post_id)
    if post is None or post.campaign_id != campaign.id or post.published_at is None:
        abort(404)
    return render_page(
        "post.html", campaign=campaign, post=post, body_html=render_markdown(post.body_markdown)
    )


def _donation_page(donation_id: str, template: str, **extra: Any) -> Any:
    with donations_service().engine.connect() as conn:
        donation = views.donation(conn, donation_id)
        campaign = views.campaign_by_id(conn, donation.campaign_id) if donation else None
        meals = views.meals_funded(conn, campaign.id) if campaign else 0
    if donation is None or campaign is None:
        abort(404)
    return render_page(template, donation=donation, campaign=campaign, meals_funded=meals, **extra)


@pages.get("/donations/<donation_id>/thanks")
def thanks(donation_id: str) -> Any:
    """Where Stripe sends the donor back: the donation's status until it is confirmed."""
    return _donation_page(donation_id, "thanks.html")


@pages.get("/donations/<donation_id>/canceled")
def canceled(donation_id: str) -> Any:
    """Where Stripe sends a donor who left its payment page. Only a page: link prefetchers and
    mail scanners fetch GETs, so the donation changes only when the donor asks (the POST
    below) or Stripe says the session expired."""
    settings = donations_service().settings
    with donations_service().engine.connect() as conn:
        donation = views.donation(conn, donation_id)
    if donation is None:
        abort(404)
    pay_url = (
        url_for("test_checkout.page", donation_id=donation_id)
        if settings.test_checkout
        else donation.checkout_url
    )
    return _donation_page(donation_id, "canceled.html", pay_url=pay_url)


@pages.post("/donations/<donation_id>/cancel")
def cancel(donation_id: str) -> Any:
    """The donor cancels a pending donation (a payment Stripe still confirms later wins)."""
    with DonationsUnitOfWork(donations_service().engine) as uow:
        status = cancel_donation(donation_id, uow)
    if status is None:
        abort(404)
    return redirect(url_for("pages.canceled", donation_id=donation_id), 303)


def security_headers(response: Response) -> Response:
    """Headers every donor page carries: the CSP allows this site, and Stripe Checkout's
    scripts, frames and API, and nothing else. Stripe's webhook is no page: its answer is
    read by no browser, and goes without them."""
    if request.path.startswith("/webhooks/"):
        return response
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self' https://js.stripe.com; "
        "style-src 'self'; img-src 'self' data: https://*.stripe.com; "
        "connect-src 'self' https://api.stripe.com; "
        "frame-src https://js.stripe.com https://hooks.stripe.com https://checkout.stripe.com; "
        "form-action 'self' https://checkout.stripe.com; frame-ancestors 'none'; "
        "base-uri 'self'; object-src 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
