"""What the service says and how it goes into an email: rendering templates in the donor's
language, and building RFC 5322 messages that no field of an event can add headers to.

No I/O beyond reading the templates: handlers render here, the sender only transmits.
"""

from __future__ import annotations

import email.policy
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import nh3
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from services.shared.money import CURRENCY_EXPONENTS, Money

from .domain import Dift, Funds, ReceiptFacts

TEMPLATES = Path(__file__).parent / "templates"

_templates = Environment(
    loader=FileSystemLoader(TEMPLATES),
    # HTML templates escape every value; text templates must not (no &amp; in plain text).
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

_MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
}

_SPACES = re.compile(r"\s+")

# Headers up to RFC 5322's hard limit of 998 characters are written on one line: folding a
# long unsubscribe URL would turn it into RFC 2047 encoded words, which mail clients do not
# read in List-Unsubscribe (a structured header).
_HEADERS_UNFOLDED = email.policy.default.clone(max_line_length=998)


class UnsendableAddress(ValueError):
    """The recipient's address cannot be written into a message we can send."""


@dataclass(frozen=True)
class Letterhead:
    """Who the service writes as, where its links point, and which clock its dates use."""

    sender: Address
    public_url: str
    timezone: ZoneInfo
    # Where this service's own pages (unsubscribe) are reached from a donor's mailbox.
    notifications_url: str = "http://127.0.0.1:8003"

    @classmethod
    def from_settings(
        cls,
        mail_from: str,
        public_url: str,
        timezone: str,
        notifications_url: str = "http://127.0.0.1:8003",
    ) -> Letterhead:
        """Parse MAIL_FROM ("difts <thanks@difts.localhost>") and the time zone once, at start."""
        name, addr_spec = parseaddr(mail_from)
        if "@" not in addr_spec:
            raise ValueError(f"MAIL_FROM has no address: {mail_from!r}")
        return cls(
            Address(display_name=one_line(name), addr_spec=addr_spec),
            public_url.rstrip("/"),
            ZoneInfo(timezone),
            notifications_url.rstrip("/"),
        )

    def unsubscribe_url(self, token: str) -> str:
        """The page (GET: confirm; POST: one-click) of an unsubscribe token."""
        return f"{self.notifications_url}/unsubscribe/{quote(token, safe='')}"

    def campaign_url(self, slug: str) -> str:
        """The donor page of a campaign."""
        return f"{self.public_url}/campaigns/{quote(slug, safe='')}"


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


_GOAL_PHRASES = {
    "en": {
        "quarter": "a quarter of the goal",
        "half": "half of the goal",
        "three_quarters": "three quarters of the goal",
        "goal": "the whole goal",
    },
    "fr": {
        "quarter": "un quart de l'objectif",
        "half": "la moitié de l'objectif",
        "three_quarters": "les trois quarts de l'objectif",
        "goal": "tout l'objectif",
    },
}


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


def language(locale: str) -> str:
    """The language we write in for a donor's locale: French for fr*, else English."""
    return "fr" if locale.strip().lower().startswith("fr") else "en"


def one_line(value: str, limit: int = 200) -> str:
    """`value` with every control character and run of whitespace made a single space: safe
    for a header's words and a greeting, whatever the event carried."""
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value)
    return _SPACES.sub(" ", cleaned).strip()[:limit]


def format_date(moment: datetime, lang: str, timezone: ZoneInfo) -> str:
    """A day as people write it: "14 March 2025", "14 mars 2025"."""
    local = moment.astimezone(timezone)
    return f"{local.day} {_MONTHS[lang][local.month - 1]} {local.year}"


def _campaign_words(title: str, cause: str, slug: str, letterhead: Letterhead) -> dict[str, str]:
    """How every email names the campaign: its title, its cause (donors give to the cause;
    the title says what for) and the link to its page."""
    return {
        "campaign_title": one_line(title),
        "cause": one_line(cause) or one_line(title),
        "campaign_url": letterhead.campaign_url(slug),
    }


def render_receipt(receipt: ReceiptFacts, letterhead: Letterhead) -> RenderedEmail:
    """The thank-you receipt of one donation, in the donor's language, with the meals the
    ledger counted for it."""
    lang = language(receipt.locale)
    context: dict[str, object] = {
        "donor_name": one_line(receipt.donor_name),
        **_campaign_words(receipt.campaign_title, receipt.cause, receipt.campaign_slug, letterhead),
        "amount": receipt.amount.format(lang),
        "meals": receipt.meals,
        "meal_price": receipt.meal_price.format(lang),
        "towards_next": receipt.carried.format(lang) if receipt.carried.is_positive() else "",
        "reference": receipt.donation_id,
        "date": format_date(receipt.given_at, lang, letterhead.timezone),
    }
    return _render("receipt", lang, context)


def _render(name: str, lang: str, context: dict[str, object]) -> RenderedEmail:
    subject = _templates.get_template(f"{name}.{lang}.subject.txt").render(context)
    return RenderedEmail(
        subject=one_line(subject, limit=250),
        text=_templates.get_template(f"{name}.{lang}.txt").render(context),
        html=_templates.get_template(f"{name}.{lang}.html").render(context),
    )


def render_refund(refund: Refund, letterhead: Letterhead) -> RenderedEmail:
    """The confirmation of one refund, in the donor's language."""
    lang = language(refund.locale)
    context: dict[str, object] = {
        "donor_name": one_line(refund.donor_name),
        **_campaign_words(refund.campaign_title, refund.cause, refund.campaign_slug, letterhead),
        "amount": refund.amount.format(lang),
        "total_refunded": refund.total_refunded.format(lang),
        "fully_refunded": refund.fully_refunded,
        "reference": refund.donation_id,
        "date": format_date(refund.refunded_at, lang, letterhead.timezone),
    }
    return _render("refund", lang, context)


def render_news(
    post: NewsPost, locale: str, letterhead: Letterhead, unsubscribe: UnsubscribeLinks
) -> RenderedEmail:
    """A news post for the campaign's donors ("Dear difteurs,"): the Markdown as the plain text,
    the HTML (cleaned again here, whatever the publisher promised) as the HTML part."""
    lang = language(locale)
    context: dict[str, object] = {
        **_campaign_words(post.campaign_title, post.cause, post.campaign_slug, letterhead),
        "title": one_line(post.title),
        "body_markdown": post.body_markdown.strip(),
        "body_html": Markup(nh3.clean(post.body_html)),  # noqa: S704 - cleaned by nh3 just now
        "post_url": post.url if post.url.startswith(("https://", "http://")) else "",
        "unsubscribe_url": unsubscribe.this_campaign,
        "unsubscribe_all_url": unsubscribe.every_campaign,
    }
    return _render("news", lang, context)


def render_impact(
    milestone: Milestone, locale: str, letterhead: Letterhead, unsubscribe: UnsubscribeLinks
) -> RenderedEmail:
    """ "Together you funded 500 meals: a quarter of the goal": a campaign's milestone, for its
    donors, naming what was reached (and the count now, when it is past the milestone)."""
    lang = language(locale)
    meals = milestone.meals if milestone.meals is not None else milestone.meals_funded
    context: dict[str, object] = {
        **_campaign_words(
            milestone.campaign_title, milestone.cause, milestone.campaign_slug, letterhead
        ),
        "meals": meals,
        "meals_now": milestone.meals_funded if milestone.meals_funded > meals else None,
        "goal_phrase": _GOAL_PHRASES[lang].get(milestone.goal_words or ""),
        "goal_meals": milestone.goal_meals,
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


def whole_amount(money: Money, lang: str) -> str:
    """An amount as a dift states it: "20 €", "€20" when it is whole, else with its cents."""
    exponent = CURRENCY_EXPONENTS[money.currency]
    written = money.format(lang)
    if not exponent or money.amount % 10**exponent:
        return written
    head, _cents, tail = written.rpartition(("," if lang == "fr" else ".") + "0" * exponent)
    return head + tail


def what_it_funds(amount: Money, meal_price: Money, title: str, lang: str) -> str:
    """ "20 € = 1 repas à Les Petites Cantines Bagnolet": what an amount funds in a cause's
    own unit; less than a meal is said as the share of one ("20 € = 74 % d'un repas à ...",
    rounded down; "moins de 1 %" below that)."""
    funds = Funds.of(amount, meal_price)
    value, name = whole_amount(amount, lang), one_line(title)
    if lang == "fr":
        if funds.meals:
            return f"{value} = {funds.meals}\u00a0repas à {name}"
        share = (
            f"{funds.percent_of_a_meal}\u00a0%" if funds.percent_of_a_meal else "moins de 1\u00a0%"
        )
        return f"{value} = {share} d'un repas à {name}"
    if funds.meals:
        return f"{value} = {funds.meals} meal{'s' if funds.meals > 1 else ''} at {name}"
    share = f"{funds.percent_of_a_meal}%" if funds.percent_of_a_meal else "less than 1%"
    return f"{value} = {share} of a meal at {name}"


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
        "value": whole_amount(dift.value, lang),
        "causes": [
            {
                "title": one_line(cause.title),
                "phrase": what_it_funds(dift.value, cause.meal_price, cause.title, lang),
                "url": letterhead.campaign_url(cause.slug),
            }
            for cause in dift.shortlist
        ],
        "redeem_url": _link(dift.redeem_url),
        "expires_on": format_date(dift.expires_at, lang, letterhead.timezone),
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
            "amount": whole_amount(part.amount, lang),
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
        "value": whole_amount(confirmation.value, lang),
        "allocations": parts,
        "news_of": ", ".join(str(part["title"]) for part in parts)
        if confirmation.updates_opt_in
        else "",
        "date": format_date(confirmation.directed_at, lang, letterhead.timezone),
    }
    return _render("dift_confirmation", lang, context)


def build_message(
    rendered: RenderedEmail,
    to_name: str,
    to_email: str,
    letterhead: Letterhead,
    now: datetime,
    unsubscribe: UnsubscribeLinks | None = None,
) -> EmailMessage:
    """A multipart (text + HTML) message to one person. Every header is set through the
    standard library's header objects, so no value can start a header of its own. Emails
    about news carry RFC 8058 one-click unsubscribe headers for this campaign."""
    try:
        recipient = Address(display_name=one_line(to_name), addr_spec=to_email.strip())
    except (ValueError, IndexError) as error:
        raise UnsendableAddress(f"cannot address {mask_email(to_email)}: {error}") from error
    message = EmailMessage(policy=_HEADERS_UNFOLDED)
    message["From"] = letterhead.sender
    message["To"] = recipient
    message["Subject"] = one_line(rendered.subject, limit=250)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=letterhead.sender.domain)
    # RFC 3834: an automatic message, so auto-responders do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    if unsubscribe is not None:
        # RFC 2369 / RFC 8058: mail clients show an "Unsubscribe" button that POSTs here.
        message["List-Unsubscribe"] = f"<{unsubscribe.this_campaign}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Quoted-printable keeps the message ASCII, so any relay accepts it (no 8BITMIME needed).
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message


def serialize(message: EmailMessage) -> str:
    """The message as it goes on the wire; UnsendableAddress if it cannot be written in ASCII
    (an address with a non-ASCII local part needs SMTPUTF8, which we do not use)."""
    try:
        wire = message.as_string()
    except ValueError as error:
        raise UnsendableAddress(f"cannot write the message: {error}") from error
    if not wire.isascii():
        raise UnsendableAddress("the message would need SMTPUTF8")
    return wire


def mask_email(address: str) -> str:
    """An address fit for logs and operators' screens: "j***@example.org"."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


_EMAIL_LIKE = re.compile(r"[^\s<>\"'(),;:@]+@[^\s<>\"'(),;:]+")


def redact(text: str) -> str:
    """`text` (an SMTP reply, say) with every email address in it masked, for logs."""
    return _EMAIL_LIKE.sub(lambda match: mask_email(match.group(0)), text)
