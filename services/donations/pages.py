"""The donor pages, rendered on the server in French or English (by Accept-Language): the
campaign page with its giving form, the thank-you and cancel pages, one page per news post."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
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

LOCALES = ("fr", "en")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "certified": "Certified association",
        "action_zone": "Action zone",
        "story": "Their story",
        "money_uses": "What your gift is used for",
        "meal_price": "{price} funds one meal",
        "meals_funded": "{meals} meals funded",
        "difts_received": "Already funded {count} difts",
        "goal": "Goal: {goal} meals",
        "news": "News from the cause",
        "no_news": "No news yet.",
        "messages": "Messages from difteurs",
        "anonymous_donor": "An anonymous difteur",
        "give": "Give",
        "meals_option": "{count} meals · {amount}",
        "meal_option": "{count} meal · {amount}",
        "custom": "Another amount",
        "custom_amount": "Amount ({currency})",
        "email": "Email (for your receipt)",
        "name": "Your name",
        "anonymous": "Give anonymously (your name is never shown)",
        "message": "A message for the cause (optional, at most {max} characters)",
        "show_message": "Show my message on this page",
        "updates": "Send me this campaign's news by email",
        "cover_fee": "Add the estimated processing fee ({terms}) so the cause receives my "
        "whole gift",
        "fee_examples": "For example: {examples}.",
        "pay": "Give now",
        "closed": "This campaign has ended and no longer takes gifts.",
        "thanks_title": "Thank you!",
        "status_pending": "Confirming your payment… this page updates itself in a moment.",
        "status_succeeded": "Your donation is confirmed.",
        "status_failed": "The payment failed; nothing was taken.",
        "status_expired": "The payment page expired; nothing was taken.",
        "status_canceled": "You canceled the payment; nothing was taken.",
        "status_refunded": "This donation was refunded.",
        "status_disputed": "This donation is disputed.",
        "your_gift": "Your gift: {amount} ({meals} meals)",
        "back": "Back to the campaign",
        "canceled_title": "Payment canceled",
        "try_again": "You can give again whenever you like.",
        "left_title": "You left the payment page",
        "left_pending": "Nothing has been taken. You can go back to paying, or cancel this "
        "donation.",
        "pay_again": "Go back to paying",
        "cancel_donation": "Cancel this donation",
        "published": "Published on {date}",
        "test_checkout": "Test checkout (development only)",
        "test_checkout_note": "This page plays Stripe's payment page with stripe-mock: paying "
        "signs and posts the webhook Stripe would send. It does not exist in production.",
        "pay_test": "Pay {amount}",
        "campaigns": "Campaigns",
        "form_errors": "Please check the form:",
        "error_amount": "Choose a number of meals, or type an amount such as 20 or 13.50, "
        "within the limits.",
        "error_meals": "Choose a number of meals.",
        "error_donor": "Give a valid email address (and a name of at most 200 characters).",
        "error_public_message": "The message is too long.",
        "error_campaign": "This campaign no longer takes gifts.",
        "error_other": "Something in the form is not valid: {field}.",
    },
    "fr": {
        "certified": "Association labellisée",
        "action_zone": "Zone d'action",
        "story": "Leur histoire",
        "money_uses": "À quoi sert votre don",
        "meal_price": "{price} financent un repas",
        "meals_funded": "{meals} repas financés",
        "difts_received": "Déjà {count} difts reçus",
        "goal": "Objectif : {goal} repas",
        "news": "Nouvelles de l'association",
        "no_news": "Pas encore de nouvelles.",
        "messages": "Messages des difteurs",
        "anonymous_donor": "Un difteur anonyme",
        "give": "Donner",
        "meals_option": "{count} repas · {amount}",
        "meal_option": "{count} repas · {amount}",
        "custom": "Un autre montant",
        "custom_amount": "Montant ({currency})",
        "email": "E-mail (pour votre reçu)",
        "name": "Votre nom",
        "anonymous": "Donner anonymement (votre nom n'est jamais affiché)",
        "message": "Un message pour l'association (facultatif, {max} caractères au plus)",
        "show_message": "Afficher mon message sur cette page",
        "updates": "Recevoir par e-mail les nouvelles de cette campagne",
        "cover_fee": "Ajouter les frais de paiement estimés ({terms}) pour que l'association "
        "reçoive tout mon don",
        "fee_examples": "Par exemple : {examples}.",
        "pay": "Je donne",
        "closed": "Cette campagne est terminée et ne reçoit plus de dons.",
        "thanks_title": "Merci !",
        "status_pending": "Confirmation du paiement… cette page se met à jour dans un instant.",
        "status_succeeded": "Votre don est confirmé.",
        "status_failed": "Le paiement a échoué ; rien n'a été prélevé.",
        "status_expired": "La page de paiement a expiré ; rien n'a été prélevé.",
        "status_canceled": "Vous avez annulé le paiement ; rien n'a été prélevé.",
        "status_refunded": "Ce don a été remboursé.",
        "status_disputed": "Ce don fait l'objet d'une contestation.",
        "your_gift": "Votre don : {amount} ({meals} repas)",
        "back": "Retour à la campagne",
        "canceled_title": "Paiement annulé",
        "try_again": "Vous pouvez donner de nouveau quand vous le souhaitez.",
        "left_title": "Vous avez quitté la page de paiement",
        "left_pending": "Rien n'a été prélevé. Vous pouvez reprendre le paiement, ou annuler ce "
        "don.",
        "pay_again": "Reprendre le paiement",
        "cancel_donation": "Annuler ce don",
        "published": "Publié le {date}",
        "test_checkout": "Paiement de test (développement seulement)",
        "test_checkout_note": "Cette page joue la page de paiement de Stripe avec stripe-mock : "
        "payer signe et envoie le webhook que Stripe enverrait. Elle n'existe pas en production.",
        "pay_test": "Payer {amount}",
        "campaigns": "Campagnes",
        "form_errors": "Vérifiez le formulaire :",
        "error_amount": "Choisissez un nombre de repas, ou un montant comme 20 ou 13,50, "
        "dans les limites.",
        "error_meals": "Choisissez un nombre de repas.",
        "error_donor": "Indiquez une adresse e-mail valide (et un nom de 200 caractères au plus).",
        "error_public_message": "Le message est trop long.",
        "error_campaign": "Cette campagne ne reçoit plus de dons.",
        "error_other": "Un champ du formulaire n'est pas valide : {field}.",
    },
}


def page_locale() -> str:
    """The donor's language: ?lang= if given, else the browser's preference, else French."""
    chosen = request.args.get("lang")
    if chosen in LOCALES:
        return str(chosen)
    return request.accept_languages.best_match(LOCALES) or "fr"


def render_page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A donor page in the donor's language, with money and percentages written for it."""
    locale = page_locale()
    texts = TEXTS[locale]

    def t(key: str, **values: Any) -> str:
        return texts[key].format(**values)

    def field_error(field: str) -> str:
        known = f"error_{field}"
        return t(known) if known in texts else t("error_other", field=field)

    def money(amount: int, currency: str) -> str:
        return Money(amount, currency).format(locale)

    def percent(basis_points: int) -> str:
        whole, hundredths = divmod(basis_points, 100)
        mark = "," if locale == "fr" else "."
        text = f"{whole}{mark}{hundredths:02d}".rstrip("0").rstrip(mark)
        return f"{text}\u00a0%" if locale == "fr" else f"{text}%"

    return (
        render_template(
            template,
            t=t,
            money=money,
            percent=percent,
            field_error=field_error,
            locale=locale,
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
        "locale": page_locale(),
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
