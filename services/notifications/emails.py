"""The words of every email the service sends: one template per email (subject, plain text,
HTML), its texts translated by the service's gettext catalog in the recipient's language, its
amounts, numbers and days written by Babel from CLDR (services.shared.i18n), never by hand.

No I/O beyond reading the templates and the catalogs: handlers render here, messages.py turns
the words into an RFC 5322 message, the sender only transmits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

import nh3
from babel.lists import format_list
from babel.support import NullTranslations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from services.shared.i18n import catalog as service_catalog
from services.shared.i18n import (
    format_day,
    format_fraction,
    format_money,
    format_money_whole,
    format_number,
)
from services.shared.money import Money

from .domain import Dift, Funds, ReceiptFacts
from .messages import Letterhead, language, one_line

TEMPLATES = Path(__file__).parent / "templates"
TRANSLATIONS = Path(__file__).parent / "translations"


def words(lang: str) -> NullTranslations:
    """The service's catalog in `lang` ("fr", "en"); English is the msgids themselves."""
    return service_catalog(TRANSLATIONS, lang)


def _strong(value: object) -> Markup:
    """`value`, escaped, in bold: how an HTML email stresses an amount or a name inside a
    translated sentence (the sentence's msgid is the plain text's, so both say the same)."""
    return Markup("<strong>{}</strong>").format(value)


@cache
def _environment(lang: str) -> Environment:
    """The templates with gettext in `lang`: one environment per language, built once, so a
    render never swaps the translations of a template another thread is rendering."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        # HTML templates escape every value; text templates must not (no &amp; in plain text).
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # Newstyle gettext formats each text itself, escaping its values in HTML templates.
    environment.install_gettext_translations(words(lang), newstyle=True)  # type: ignore[attr-defined]
    environment.filters["strong"] = _strong
    return environment


def render_page(name: str, lang: str, **context: object) -> str:
    """One of the service's own pages (the unsubscribe page), in `lang`, as the emails are."""
    return _environment(lang).get_template(name).render(lang=lang, **context)


@dataclass(frozen=True)
class UnsubscribeLinks:
    """The two ways out an email about news offers: this campaign, or every campaign."""

    this_campaign: str
    every_campaign: str


@dataclass(frozen=True)
class RenderedEmail:
    """An email's words: subject, plain text and HTML."""

    subject: str
    text: str
    html: str


def _render(name: str, lang: str, context: dict[str, object]) -> RenderedEmail:
    """Email `name` (its three templates) in `lang`, with `context`."""
    templates = _environment(lang)
    context = {**context, "lang": lang}
    subject = one_line(templates.get_template(f"{name}.subject.txt").render(context), limit=250)
    return RenderedEmail(
        subject=subject,
        text=templates.get_template(f"{name}.txt").render(context),
        # The HTML's <title> is the subject (escaped there, as every value of an HTML template).
        html=templates.get_template(f"{name}.html").render({**context, "subject": subject}),
    )


def _day(moment: datetime, lang: str, letterhead: Letterhead) -> str:
    """A day as the recipient's language writes it, in the cause's time zone."""
    return format_day(moment, lang, "long", letterhead.timezone)


def _campaign_words(
    title: str, cause: str, slug: str, letterhead: Letterhead, lang: str
) -> dict[str, object]:
    """How every email names the campaign: its title, its cause (donors give to the cause;
    the title says what for), both together ("Les Petites Cantines (Bagnolet)", the cause in
    bold in HTML) and the link to its page."""
    title, cause = one_line(title), one_line(cause) or one_line(title)
    named, named_html = cause, _strong(cause)
    if title != cause:
        pattern = words(lang).gettext("%(cause)s: %(campaign_title)s")
        named = pattern % {"cause": cause, "campaign_title": title}
        named_html = escape(pattern) % {"cause": named_html, "campaign_title": title}
    return {
        "campaign_title": title,
        "cause": cause,
        "named": named,
        "named_html": named_html,
        "campaign_url": letterhead.campaign_url(slug),
    }


# --- donations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refund:
    """The facts a refund confirmation states."""

    donation_id: str
    campaign_title: str
    campaign_slug: str
    cause: str
    amount: Money
    total_refunded: Money
    fully_refunded: bool
    donor_name: str
    locale: str
    refunded_at: datetime


def render_receipt(receipt: ReceiptFacts, letterhead: Letterhead) -> RenderedEmail:
    """The thank-you receipt of one donation, in the donor's language, with the meals the
    ledger counted for it."""
    lang = language(receipt.locale)
    context: dict[str, object] = {
        "donor_name": one_line(receipt.donor_name),
        **_campaign_words(
            receipt.campaign_title, receipt.cause, receipt.campaign_slug, letterhead, lang
        ),
        "amount": format_money(receipt.amount, lang),
        "meals": receipt.meals,
        "meals_said": format_number(receipt.meals, lang),
        "meal_price": format_money(receipt.meal_price, lang),
        "towards_next": format_money(receipt.carried, lang)
        if receipt.carried.is_positive()
        else "",
        "reference": receipt.donation_id,
        "date": _day(receipt.given_at, lang, letterhead),
    }
    return _render("receipt", lang, context)


def render_refund(refund: Refund, letterhead: Letterhead) -> RenderedEmail:
    """The confirmation of one refund, in the donor's language."""
    lang = language(refund.locale)
    context: dict[str, object] = {
        "donor_name": one_line(refund.donor_name),
        **_campaign_words(
            refund.campaign_title, refund.cause, refund.campaign_slug, letterhead, lang
        ),
        "amount": format_money(refund.amount, lang),
        "total_refunded": format_money(refund.total_refunded, lang),
        "fully_refunded": refund.fully_refunded,
        "reference": refund.donation_id,
        "date": _day(refund.refunded_at, lang, letterhead),
    }
    return _render("refund", lang, context)


# --- campaigns: news and milestones ---------------------------------------------------------


@dataclass(frozen=True)
class NewsPost:
    """A campaign's news post, as its author wrote it."""

    campaign_title: str
    campaign_slug: str
    cause: str
    title: str
    body_markdown: str
    body_html: str
    url: str


@dataclass(frozen=True)
class Milestone:
    """A campaign crossed a milestone of funded meals: the meals it stands at, the share of
    the goal it is (if one: "quarter", "half", "three_quarters", "goal"), the count then."""

    campaign_title: str
    campaign_slug: str
    cause: str
    meals_funded: int
    goal_meals: int | None
    meals: int | None = None
    goal_words: str | None = None


def render_news(
    post: NewsPost, locale: str, letterhead: Letterhead, unsubscribe: UnsubscribeLinks
) -> RenderedEmail:
    """A news post for the campaign's donors ("Dear difteurs,"): the Markdown as the plain text,
    the HTML (cleaned again here, whatever the publisher promised) as the HTML part."""
    lang = language(locale)
    context: dict[str, object] = {
        **_campaign_words(post.campaign_title, post.cause, post.campaign_slug, letterhead, lang),
        "title": one_line(post.title),
        "body_markdown": post.body_markdown.strip(),
        "body_html": Markup(nh3.clean(post.body_html)),  # noqa: S704 - cleaned by nh3 just now
        "post_url": post.url if post.url.startswith(("https://", "http://")) else "",
        "unsubscribe_url": unsubscribe.this_campaign,
        "unsubscribe_all_url": unsubscribe.every_campaign,
    }
    return _render("news", lang, context)


def goal_phrase(goal_words: str | None, lang: str) -> str | None:
    """ "a quarter of the goal", "la moitié de l'objectif": the share of the goal a milestone
    is, in `lang`; None when it is not a share of a goal."""
    _ = words(lang).gettext
    phrases = {
        "quarter": _("a quarter of the goal"),
        "half": _("half of the goal"),
        "three_quarters": _("three quarters of the goal"),
        "goal": _("the whole goal"),
    }
    return phrases.get(goal_words or "")


def render_impact(
    milestone: Milestone, locale: str, letterhead: Letterhead, unsubscribe: UnsubscribeLinks
) -> RenderedEmail:
    """ "Together you funded 500 meals: a quarter of the goal": a campaign's milestone, for its
    donors, naming what was reached (and the count now, when it is past the milestone)."""
    lang = language(locale)
    meals = milestone.meals if milestone.meals is not None else milestone.meals_funded
    meals_now = milestone.meals_funded if milestone.meals_funded > meals else None
    context: dict[str, object] = {
        **_campaign_words(
            milestone.campaign_title, milestone.cause, milestone.campaign_slug, letterhead, lang
        ),
        "meals": meals,
        "meals_said": format_number(meals, lang),
        "meals_now": meals_now,
        "meals_now_said": format_number(meals_now, lang) if meals_now else "",
        "goal_phrase": goal_phrase(milestone.goal_words, lang),
        "goal_meals": milestone.goal_meals,
        "goal_meals_said": format_number(milestone.goal_meals, lang)
        if milestone.goal_meals
        else "",
        "unsubscribe_url": unsubscribe.this_campaign,
        "unsubscribe_all_url": unsubscribe.every_campaign,
    }
    return _render("impact", lang, context)


# --- company difts --------------------------------------------------------------------------


@dataclass(frozen=True)
class DiftAllocation:
    """The part of a directed dift that went to one campaign, and its meal price when this
    service knows it (from the dift's shortlist)."""

    campaign_title: str
    campaign_slug: str
    amount: Money
    meal_price: Money | None = None


@dataclass(frozen=True)
class DiftConfirmation:
    """What the confirmation of a directed dift states."""

    brand_name: str
    value: Money
    allocations: tuple[DiftAllocation, ...]
    recipient_name: str
    locale: str
    updates_opt_in: bool
    directed_at: datetime


def what_it_funds(amount: Money, meal_price: Money, title: str, lang: str) -> str:
    """ "20 € = 1 repas à Les Petites Cantines Bagnolet": what an amount funds in a cause's
    own unit; less than a meal is said as the share of one ("20 € = 74 % d'un repas à ...",
    rounded down; "less than 1%" below that)."""
    gettext, ngettext = words(lang).gettext, words(lang).ngettext
    funds = Funds.of(amount, meal_price)
    said = {"amount": format_money_whole(amount, lang), "cause": one_line(title)}
    if funds.meals:
        return ngettext(
            "%(amount)s = %(meals)s meal at %(cause)s",
            "%(amount)s = %(meals)s meals at %(cause)s",
            funds.meals,
        ) % {**said, "meals": format_number(funds.meals, lang)}
    if funds.percent_of_a_meal:
        share = format_fraction(Decimal(funds.percent_of_a_meal).scaleb(-2), lang)
        return gettext("%(amount)s = %(share)s of a meal at %(cause)s") % {**said, "share": share}
    share = format_fraction(Decimal("0.01"), lang)
    return gettext("%(amount)s = less than %(share)s of a meal at %(cause)s") % {
        **said,
        "share": share,
    }


def _link(url: str | None) -> str:
    """A personal link fit for an email: http(s) only, or the email cannot be written."""
    if not url or not url.startswith(("https://", "http://")):
        raise ValueError("a dift's link must be an http(s) URL")
    return url


def _dift_words(dift: Dift, lang: str, letterhead: Letterhead) -> dict[str, object]:
    """What a dift's invitation and reminder both say: who offers it, what it is worth and
    funds in each shortlisted cause, the personal link, the expiry."""
    recipient = dift.recipient
    return {
        "recipient_name": one_line(recipient.name) if recipient else "",
        "brand": one_line(dift.brand_name),
        "value": format_money_whole(dift.value, lang),
        "causes": [
            {
                "title": one_line(cause.title),
                "phrase": what_it_funds(dift.value, cause.meal_price, cause.title, lang),
                "url": letterhead.campaign_url(cause.slug),
            }
            for cause in dift.shortlist
        ],
        "redeem_url": _link(dift.redeem_url),
        "expires_on": _day(dift.expires_at, lang, letterhead),
    }


def render_invitation(
    dift: Dift, letterhead: Letterhead, message_markdown: str = "", message_html: str = ""
) -> RenderedEmail:
    """A company's dift to its recipient, in their language: the company's brand and message
    (its Markdown as the text, its HTML cleaned again here as the HTML), the value and what it
    funds in each shortlisted cause, the personal link, the expiry."""
    lang = language(dift.recipient.locale if dift.recipient else "fr")
    context: dict[str, object] = {
        **_dift_words(dift, lang, letterhead),
        "message_markdown": message_markdown.strip(),
        "message_html": Markup(nh3.clean(message_html)),  # noqa: S704 - cleaned by nh3 just now
    }
    return _render("dift_invitation", lang, context)


def render_reminder(dift: Dift, letterhead: Letterhead) -> RenderedEmail:
    """The one reminder of a dift nobody directed yet, a few days before it expires."""
    lang = language(dift.recipient.locale if dift.recipient else "fr")
    return _render("dift_reminder", lang, _dift_words(dift, lang, letterhead))


def render_dift_confirmation(
    confirmation: DiftConfirmation, letterhead: Letterhead
) -> RenderedEmail:
    """Where a directed dift went (each campaign and its amount) and what it funds there."""
    lang = language(confirmation.locale)
    parts = [
        {
            "title": one_line(part.campaign_title) or part.campaign_slug,
            "amount": format_money_whole(part.amount, lang),
            "phrase": what_it_funds(part.amount, part.meal_price, part.campaign_title, lang)
            if part.meal_price is not None and part.meal_price.currency == part.amount.currency
            else "",
            "url": letterhead.campaign_url(part.campaign_slug),
        }
        for part in confirmation.allocations
    ]
    context: dict[str, object] = {
        "recipient_name": one_line(confirmation.recipient_name),
        "brand": one_line(confirmation.brand_name),
        "value": format_money_whole(confirmation.value, lang),
        "allocations": parts,
        # "A, B et C" / "A, B, and C", as the language joins names.
        "news_of": format_list([str(part["title"]) for part in parts], locale=lang)
        if confirmation.updates_opt_in and parts
        else "",
        "date": _day(confirmation.directed_at, lang, letterhead),
    }
    return _render("dift_confirmation", lang, context)
