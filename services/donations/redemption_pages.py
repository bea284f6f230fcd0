"""The redemption pages: where a dift's recipient, who pays nothing, chooses the causes of the
company's shortlist that receive it, in French or English as the donor pages are.

Two ways in, then the same steps:

- the personal link of an invitation, `/difts/<link token>`;
- a printed code typed in at `/difts/code` (rate-limited per client address: wrong codes
  count, and too many of them answer 429); the code, once it opened a dift, is kept in the
  page session (a signed cookie), never in a URL.

The steps: the offer (the company's brand and message, the value, each cause's summary and
what the value funds there) with the choice (all to one cause, or a split in whole euros
summing to the value) and the consent to the chosen causes' news; a confirmation of the
choice; then the thank-you page saying what the dift funds. Every form carries its CSRF token;
every choice is checked again on the server, and a wrong one comes back with the message
next to the field and what was typed kept. A dift directed already (409), expired (410), or a
link or code that opens none (404) gets a page that says so, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from services.shared.money import CURRENCY_EXPONENTS, Money, from_major_units, major_units

from .api import donations_service
from .domain import codes
from .domain.campaigns import Campaign
from .domain.programmes import (
    DiftAlreadyDirected,
    DiftExpired,
    DiftRuleBroken,
    DiftState,
    FallbackRule,
    direction,
)
from .handlers.difts import (
    DiftView,
    DirectDift,
    UnknownDift,
    direct_dift,
    open_dift,
    record_wrong_code,
    redemption_allowed,
    view_dift,
)
from .i18n import page_locale
from .unit_of_work import DonationsUnitOfWork

dift_pages = Blueprint("dift_pages", __name__, template_folder="templates")

# A link token carries at least 128 bits: 22 URL-safe characters. Anything shorter is not a
# link, and a printed code in a URL would skip the code page's rate limit.
MIN_LINK_TOKEN_LENGTH = 22
MAX_SHARE_DIGITS = 7
SESSION_CODE = "dift_code"

# The donor pages' texts these pages share (until they go through the catalogs too).
DONOR_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "certified": "Certified association",
        "meal_price": "{price} funds one meal",
        "difts_received": "Already funded {count} difts",
        "no_news": "No news yet.",
    },
    "fr": {
        "certified": "Association labellisée",
        "meal_price": "{price} financent un repas",
        "difts_received": "Déjà {count} difts reçus",
        "no_news": "Pas encore de nouvelles.",
    },
}

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "offer_title": "{brand} offers you a dift",
        "offer_value": "Your dift: {value}",
        "offer_lead": "{brand} has paid for it; you pay nothing. Choose the cause that receives "
        "it, or share it between several.",
        "expires": "Choose before {date}.",
        "fallback_split_evenly": "After that, it is shared evenly between these causes.",
        "fallback_one_campaign": "After that, it goes to {cause}.",
        "fallback_credit_back": "After that, it goes back to {brand}.",
        "causes": "The causes {brand} chose",
        "unit": "{value} = {meals} at {cause}",
        "unit_part": "{value} = part of a meal at {cause}",
        "meals_1": "1 meal",
        "meals_n": "{count} meals",
        "choice_legend": "How do you give your dift?",
        "choice_one": "All to one cause",
        "choice_split": "Share it between causes",
        "one_legend": "The cause that receives all of it",
        "split_legend": "Your shares, in whole euros, adding up to {whole}",
        "cents_note": "The remaining {cents} go with the first cause you give to.",
        "share_label": "{title} ({symbol})",
        "updates": "Send me news of the causes I choose, by email (stop whenever you like)",
        "continue": "Continue",
        "error_choice": "Choose how to give your dift: all to one cause, or shared.",
        "error_one": "Choose one of the causes.",
        "error_shares": "Type whole euros for each cause (0 for none), adding up to {whole}; "
        "these add up to {typed}.",
        "error_shares_format": "Type whole euros only, such as 10 (no cents, no signs).",
        "confirm_title": "Check your choice",
        "confirm_lead": "Your dift of {value} from {brand} goes to:",
        "allocation": "{amount} to {title} ({cause})",
        "updates_yes": "You will get news of these causes by email.",
        "updates_no": "You will not get news of these causes.",
        "confirm": "Confirm my choice",
        "change": "Change my choice",
        "thanks_title": "Thank you!",
        "thanks_lead": "Your dift of {value} from {brand} funds:",
        "funds": "{amount} for {title} ({cause}): {meals}",
        "funds_part": "{amount} for {title} ({cause}): part of a meal ({price} funds one)",
        "thanks_updates": "{causes} will send you their news by email.",
        "thanks_more": "See the cause",
        "unknown_title": "This dift cannot be found",
        "unknown_body": "The link or the code is incomplete or opens no dift. Check the link in "
        "your email, or type the code again exactly as it is printed.",
        "directed_title": "This dift has been directed already",
        "directed_body": "Its causes were chosen and the choice cannot change.",
        "see_choice": "See what it funds",
        "expired_title": "This dift has expired",
        "expired_body": "The time to choose is over: it went where the company said it would "
        "go after that date.",
        "code_title": "Use a dift code",
        "code_label": "Your code, as printed",
        "code_hint": "For example 7K3M-Q9TX-4AC: capitals, spaces and dashes do not matter.",
        "code_submit": "Open my dift",
        "code_error": "This code opens no dift: it may be incomplete or mistyped. Check it and "
        "try again.",
        "too_many_title": "Too many tries",
        "too_many_body": "Too many wrong codes were typed from your connection. Wait "
        "{minutes} minutes, then try again.",
        "form_errors": "Please check the form:",
    },
    "fr": {
        "offer_title": "{brand} vous offre un dift",
        "offer_value": "Votre dift : {value}",
        "offer_lead": "{brand} l'a payé ; vous ne payez rien. Choisissez la cause qui le "
        "reçoit, ou partagez-le entre plusieurs.",
        "expires": "Choisissez avant le {date}.",
        "fallback_split_evenly": "Ensuite, il sera partagé à parts égales entre ces causes.",
        "fallback_one_campaign": "Ensuite, il ira à {cause}.",
        "fallback_credit_back": "Ensuite, il reviendra à {brand}.",
        "causes": "Les causes choisies par {brand}",
        "unit": "{value} = {meals} à {cause}",
        "unit_part": "{value} = une part de repas à {cause}",
        "meals_1": "1 repas",
        "meals_n": "{count} repas",
        "choice_legend": "Comment donnez-vous votre dift ?",
        "choice_one": "Tout à une cause",
        "choice_split": "Le partager entre plusieurs causes",
        "one_legend": "La cause qui reçoit tout",
        "split_legend": "Vos parts, en euros entiers, pour un total de {whole}",
        "cents_note": "Les {cents} restants vont avec la première cause à qui vous donnez.",
        "share_label": "{title} ({symbol})",
        "updates": "Recevoir par e-mail les nouvelles des causes choisies (vous pouvez arrêter "
        "quand vous voulez)",
        "continue": "Continuer",
        "error_choice": "Choisissez comment donner votre dift : tout à une cause, ou partagé.",
        "error_one": "Choisissez une des causes.",
        "error_shares": "Indiquez des euros entiers pour chaque cause (0 pour aucune), pour un "
        "total de {whole} ; ceux-ci font {typed}.",
        "error_shares_format": "Indiquez seulement des euros entiers, comme 10 (sans centimes "
        "ni signe).",
        "confirm_title": "Vérifiez votre choix",
        "confirm_lead": "Votre dift de {value} offert par {brand} va à :",
        "allocation": "{amount} à {title} ({cause})",
        "updates_yes": "Vous recevrez par e-mail les nouvelles de ces causes.",
        "updates_no": "Vous ne recevrez pas les nouvelles de ces causes.",
        "confirm": "Je confirme mon choix",
        "change": "Modifier mon choix",
        "thanks_title": "Merci !",
        "thanks_lead": "Votre dift de {value} offert par {brand} finance :",
        "funds": "{amount} pour {title} ({cause}) : {meals}",
        "funds_part": "{amount} pour {title} ({cause}) : une part de repas ({price} en "
        "financent un)",
        "thanks_updates": "{causes} vous enverront leurs nouvelles par e-mail.",
        "thanks_more": "Voir la cause",
        "unknown_title": "Ce dift est introuvable",
        "unknown_body": "Le lien ou le code est incomplet ou n'ouvre aucun dift. Vérifiez le "
        "lien de votre e-mail, ou tapez le code à nouveau tel qu'il est imprimé.",
        "directed_title": "Ce dift a déjà été dirigé",
        "directed_body": "Ses causes ont été choisies et ce choix ne peut plus changer.",
        "see_choice": "Voir ce qu'il finance",
        "expired_title": "Ce dift a expiré",
        "expired_body": "Le temps de choisir est passé : il est allé là où l'entreprise avait "
        "prévu qu'il aille après cette date.",
        "code_title": "Utiliser un code dift",
        "code_label": "Votre code, tel qu'il est imprimé",
        "code_hint": "Par exemple 7K3M-Q9TX-4AC : majuscules, espaces et tirets sont indifférents.",
        "code_submit": "Ouvrir mon dift",
        "code_error": "Ce code n'ouvre aucun dift : il est peut-être incomplet ou mal recopié. "
        "Vérifiez-le et réessayez.",
        "too_many_title": "Trop d'essais",
        "too_many_body": "Trop de codes erronés ont été tapés depuis votre connexion. "
        "Attendez {minutes} minutes, puis réessayez.",
        "form_errors": "Vérifiez le formulaire :",
    },
}


# --- rendering ------------------------------------------------------------------------------------


def _lang() -> dict[str, Any]:
    """?lang= kept from page to page, when the visitor chose a language."""
    chosen = request.args.get("lang")
    return {"lang": chosen} if chosen in TEXTS else {}


def render_dift_page(
    template: str,
    status: int = 200,
    more_texts: dict[str, dict[str, str]] | None = None,
    **context: Any,
) -> tuple[str, int]:
    """A redemption page (or another company page, with `more_texts`) in the visitor's
    language, with money, meals and dates written for it."""
    locale = page_locale()
    texts = {**DONOR_TEXTS[locale], **TEXTS[locale], **(more_texts or {}).get(locale, {})}

    def t(key: str, **values: Any) -> str:
        return texts[key].format(**values)

    def money(amount: int, currency: str) -> str:
        return Money(amount, currency).format(locale)

    def meals(count: int) -> str:
        return t("meals_1") if count == 1 else t("meals_n", count=count)

    def amount(value: Money) -> str:
        return value.format(locale)

    def day(moment: date) -> str:
        if locale == "fr":
            return moment.strftime("%d/%m/%Y")
        return f"{moment:%B} {moment.day}, {moment.year}"

    def texts_of(errors: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, str]:
        return {
            field: t(
                key, **{k: amount(v) if isinstance(v, Money) else v for k, v in values.items()}
            )
            for field, (key, values) in errors.items()
        }

    context["errors"] = texts_of(context.get("errors") or {})
    return (
        render_template(
            template,
            t=t,
            money=money,
            amount=amount,
            meals=meals,
            day=day,
            locale=locale,
            **context,
        ),
        status,
    )


@dataclass(frozen=True)
class Flow:
    """The dift a visitor is on, and the URLs of its steps: by link token or by code."""

    secret: str
    by_code: bool

    def url(self, step: str) -> str:
        """The URL of `step` (choose, confirm, direct, thanks) for this dift."""
        if self.by_code:
            return url_for(f"dift_pages.code_{step}", **_lang())
        return url_for(f"dift_pages.link_{step}", token=self.secret, **_lang())


def _problem(kind: str, status: int, flow: Flow | None = None) -> tuple[str, int]:
    see = flow.url("thanks") if flow is not None and kind == "directed" else None
    return render_dift_page("dift_problem.html", status, kind=kind, see_url=see)


def _guarded(flow: Flow, step: Callable[[], Any]) -> Any:
    """`step`, or the clear page of a dift that cannot be directed (nothing changed)."""
    try:
        return step()
    except UnknownDift:
        return _problem("unknown", 404)
    except DiftAlreadyDirected:
        return _problem("directed", 409, flow)
    except DiftExpired:
        return _problem("expired", 410)


# --- the offer and the choice ---------------------------------------------------------------------


def _meals_for(amount: Money, campaign: Campaign) -> int:
    whole, _rest = amount.divmod(campaign.meal_price)
    return whole


def _offer(view: DiftView) -> dict[str, Any]:
    """What every step shows of the dift: the brand, the message, the value, the causes."""
    programme, value = view.programme, view.dift.value
    unit = 10 ** CURRENCY_EXPONENTS[value.currency]
    by_id = {campaign.id: campaign for campaign in view.shortlist}
    fallback = programme.fallback_rule
    fallback_cause = by_id.get(programme.fallback_campaign_id or "")
    return {
        "brand": view.brand_name,
        "programme": programme.name,
        "occasion": programme.occasion,
        "message_html": view.message_html,
        "value": value,
        "whole": Money(major_units(value) * unit, value.currency),
        "cents": Money(value.amount % unit, value.currency),
        "symbol": "€" if value.currency == "EUR" else value.currency,
        "expires_at": programme.expires_at,
        "fallback": fallback.value,
        "fallback_cause": fallback_cause.cause if fallback_cause else "",
        "is_split_evenly": fallback is FallbackRule.SPLIT_EVENLY,
        "causes": [
            {"campaign": campaign, "meals": _meals_for(value, campaign)}
            for campaign in view.shortlist
        ],
    }


@dataclass(frozen=True)
class Choice:
    """A recipient's choice as the form gave it, checked against the dift."""

    one_campaign_id: str | None
    shares: list[tuple[str, Money]] | None
    updates_opt_in: bool


def _whole_euros(text: str) -> int | None:
    cleaned = text.strip()
    if not cleaned:
        return 0
    # ASCII digits only: other scripts' digits are digits to str.isdigit, not to a person.
    if not (cleaned.isascii() and cleaned.isdigit()) or len(cleaned) > MAX_SHARE_DIGITS:
        return None
    return int(cleaned)


def read_choice(
    form: MultiDict[str, str], view: DiftView
) -> tuple[Choice | None, dict[str, tuple[str, dict[str, Any]]]]:
    """The choice in the form, checked with the domain's rules, or the errors per field
    (field -> (text key, its values)): "choice", "campaign" or "shares"."""
    value, currency = view.dift.value, view.dift.value.currency
    ids = [campaign.id for campaign in view.shortlist]
    choice = form.get("choice", "")
    typed = {cid: form.get(f"share_{cid}", "") for cid in ids}
    if choice not in ("one", "split"):
        if any(text.strip() for text in typed.values()):
            choice = "split"
        elif form.get("campaign"):
            choice = "one"
        else:
            return None, {"choice": ("error_choice", {})}
    updates = form.get("updates_opt_in") == "on"
    whole = Money(major_units(value) * 10 ** CURRENCY_EXPONENTS[currency], currency)
    if choice == "one":
        campaign_id = form.get("campaign", "")
        try:
            direction(view.programme, value, one_campaign_id=campaign_id)
        except DiftRuleBroken:
            return None, {"campaign": ("error_one", {})}
        return Choice(campaign_id, None, updates), {}
    units = {cid: _whole_euros(text) for cid, text in typed.items()}
    if any(count is None for count in units.values()):
        return None, {"shares": ("error_shares_format", {})}
    shares = [(cid, from_major_units(count or 0, currency)) for cid, count in units.items()]
    try:
        direction(view.programme, value, shares=shares)
    except DiftRuleBroken:
        total = Money(sum(share.amount for _cid, share in shares), currency)
        return None, {"shares": ("error_shares", {"whole": whole, "typed": total})}
    return Choice(None, shares, updates), {}


def _allocations(view: DiftView, pairs: list[tuple[str, Money]]) -> list[dict[str, Any]]:
    by_id = {campaign.id: campaign for campaign in view.shortlist}
    return [
        {"campaign": by_id[cid], "amount": amount, "meals": _meals_for(amount, by_id[cid])}
        for cid, amount in pairs
        if cid in by_id and amount.is_positive()
    ]


def _preview(view: DiftView, choice: Choice) -> list[dict[str, Any]]:
    """Where the choice sends the value (the cents with the first cause, as the domain does)."""
    allocations = direction(
        view.programme,
        view.dift.value,
        one_campaign_id=choice.one_campaign_id,
        shares=choice.shares,
    )
    return _allocations(view, [(a.campaign_id, a.amount) for a in allocations])


def _choose_page(
    flow: Flow,
    view: DiftView,
    form: MultiDict[str, str] | None = None,
    errors: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> tuple[str, int]:
    return render_dift_page(
        "dift_choose.html",
        422 if errors else 200,
        offer=_offer(view),
        form=form or MultiDict(),
        errors=errors or {},
        confirm_url=flow.url("confirm"),
    )


def _open(flow: Flow) -> DiftView:
    with DonationsUnitOfWork(donations_service().engine) as uow:
        return open_dift(flow.secret, uow)


def _choose(flow: Flow) -> Any:
    return _guarded(flow, lambda: _choose_page(flow, _open(flow)))


def _confirm(flow: Flow) -> Any:
    def step() -> Any:
        view = _open(flow)
        if request.form.get("edit"):
            return _choose_page(flow, view, request.form)
        choice, errors = read_choice(request.form, view)
        if choice is None:
            return _choose_page(flow, view, request.form, errors)
        return render_dift_page(
            "dift_confirm.html",
            offer=_offer(view),
            allocations=_preview(view, choice),
            updates_opt_in=choice.updates_opt_in,
            form=request.form,
            shortlist=view.shortlist,
            direct_url=flow.url("direct"),
            edit_url=flow.url("confirm"),
        )

    return _guarded(flow, step)


def _direct(flow: Flow) -> Any:
    def step() -> Any:
        view = _open(flow)
        choice, errors = read_choice(request.form, view)
        if choice is None:
            return _choose_page(flow, view, request.form, errors)
        command = DirectDift(
            flow.secret,
            allocations=choice.shares,
            one_campaign_id=choice.one_campaign_id,
            updates_opt_in=choice.updates_opt_in,
        )
        with DonationsUnitOfWork(donations_service().engine) as uow:
            direct_dift(command, uow)
        return redirect(flow.url("thanks"), 303)

    return _guarded(flow, step)


def _thanks(flow: Flow) -> Any:
    def step() -> Any:
        with DonationsUnitOfWork(donations_service().engine) as uow:
            view = view_dift(flow.secret, uow)
        if view.dift.state is DiftState.EXPIRED:
            raise DiftExpired()
        if view.dift.state is not DiftState.DIRECTED:
            return redirect(flow.url("choose"), 303)
        pairs = [(a.campaign_id, a.amount) for a in view.dift.allocations]
        allocations = _allocations(view, pairs)
        return render_dift_page(
            "dift_thanks.html",
            offer=_offer(view),
            allocations=allocations,
            updates_opt_in=view.dift.updates_opt_in,
        )

    return _guarded(flow, step)


# --- by personal link -----------------------------------------------------------------------------


def _link(token: str) -> Flow | None:
    """The flow of a link token; None for what cannot be one (a printed code in a URL
    would skip the rate limit of the code page)."""
    if len(token) < MIN_LINK_TOKEN_LENGTH or codes.read_printed_code(token) is not None:
        return None
    return Flow(token, by_code=False)


def _by_link(token: str, step: Callable[[Flow], Any]) -> Any:
    flow = _link(token)
    return step(flow) if flow is not None else _problem("unknown", 404)


@dift_pages.get("/difts/<token>")
def link_choose(token: str) -> Any:
    """The dift of an invitation's personal link: the offer and the choice."""
    return _by_link(token, _choose)


@dift_pages.post("/difts/<token>/confirm")
def link_confirm(token: str) -> Any:
    """The choice checked: confirm it, or the form again with the error next to the field."""
    return _by_link(token, _confirm)


@dift_pages.get("/difts/<token>/confirm")
def link_confirm_again(token: str) -> Response:
    """A confirmation fetched again (a language switch): back to the choice."""
    return redirect(url_for("dift_pages.link_choose", token=token, **_lang()), 303)


@dift_pages.post("/difts/<token>/direct")
def link_direct(token: str) -> Any:
    """The confirmed choice: the dift is directed once, then the thank-you page."""
    return _by_link(token, _direct)


@dift_pages.get("/difts/<token>/thanks")
def link_thanks(token: str) -> Any:
    """What the directed dift funds."""
    return _by_link(token, _thanks)


# --- by printed code ------------------------------------------------------------------------------


def _client() -> str:
    return request.remote_addr or "unknown"


def _code_page(status: int = 200, typed: str = "", error: bool = False) -> tuple[str, int]:
    return render_dift_page("dift_code.html", status, typed=typed, error=error)


def _too_many() -> tuple[str, int]:
    minutes = max(1, donations_service().settings.wrong_codes_window_seconds // 60)
    return render_dift_page("dift_problem.html", 429, kind="too_many", minutes=minutes)


@dift_pages.get("/difts/code")
def code_entry() -> Any:
    """Where a printed code is typed in."""
    return _code_page()


@dift_pages.post("/difts/code")
def code_submit() -> Any:
    """A typed code: too many wrong ones from this client answer 429; a wrong one comes back
    with the message next to the field (and counts); a right one opens its dift."""
    typed = request.form.get("code", "")[:100]
    engine = donations_service().engine
    settings = donations_service().settings
    with DonationsUnitOfWork(engine) as uow:
        allowed = redemption_allowed(
            _client(),
            uow,
            allowed=settings.wrong_codes_allowed,
            window=timedelta(seconds=settings.wrong_codes_window_seconds),
        )
    if not allowed:
        return _too_many()
    code = codes.read_printed_code(typed)
    flow = Flow(code or "", by_code=True)

    def opened() -> Any:
        _open(flow)
        session[SESSION_CODE] = flow.secret
        return redirect(url_for("dift_pages.code_choose", **_lang()), 303)

    try:
        if code is None:
            raise UnknownDift("not a code")
        return _guarded_known(flow, opened)
    except UnknownDift:
        with DonationsUnitOfWork(engine) as uow:
            record_wrong_code(_client(), uow)
        return _code_page(404, typed=typed, error=True)


def _guarded_known(flow: Flow, step: Callable[[], Any]) -> Any:
    """`step`, with directed and expired difts answered by their page; UnknownDift raised."""
    try:
        return step()
    except DiftAlreadyDirected:
        session[SESSION_CODE] = flow.secret
        return _problem("directed", 409, flow)
    except DiftExpired:
        return _problem("expired", 410)


def _by_code(step: Callable[[Flow], Any]) -> Any:
    code = session.get(SESSION_CODE)
    if not isinstance(code, str) or codes.read_printed_code(code) != code:
        return redirect(url_for("dift_pages.code_entry", **_lang()), 303)
    return step(Flow(code, by_code=True))


@dift_pages.get("/difts/code/choose")
def code_choose() -> Any:
    """The dift of the code typed in: the offer and the choice."""
    return _by_code(_choose)


@dift_pages.post("/difts/code/confirm")
def code_confirm() -> Any:
    """The choice checked: confirm it, or the form again with the error next to the field."""
    return _by_code(_confirm)


@dift_pages.get("/difts/code/confirm")
def code_confirm_again() -> Response:
    """A confirmation fetched again: back to the choice."""
    return redirect(url_for("dift_pages.code_choose", **_lang()), 303)


@dift_pages.post("/difts/code/direct")
def code_direct() -> Any:
    """The confirmed choice: the dift is directed once, then the thank-you page."""
    return _by_code(_direct)


@dift_pages.get("/difts/code/thanks")
def code_thanks() -> Any:
    """What the directed dift funds."""
    return _by_code(_thanks)
