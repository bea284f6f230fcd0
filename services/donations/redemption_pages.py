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
from datetime import timedelta
from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import ngettext
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from services.shared.i18n import LOCALES, format_money
from services.shared.money import Money

from .api import donations_service
from .domain import codes
from .domain.programmes import (
    DiftAlreadyDirected,
    DiftExpired,
    DiftState,
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
from .i18n import current_locale, number
from .redemption_choice import allocations_of, error_text, offer_of, preview_of, read_choice
from .unit_of_work import DonationsUnitOfWork

dift_pages = Blueprint("dift_pages", __name__, template_folder="templates")

# A link token carries at least 128 bits: 22 URL-safe characters. Anything shorter is not a
# link, and a printed code in a URL would skip the code page's rate limit.
MIN_LINK_TOKEN_LENGTH = 22
SESSION_CODE = "dift_code"

# --- rendering ------------------------------------------------------------------------------------


def _lang() -> dict[str, Any]:
    """?lang= kept from page to page, when the visitor chose a language."""
    chosen = request.args.get("lang")
    return {"lang": chosen} if chosen in LOCALES else {}


def meals(count: int) -> str:
    """A number of meals, in words of the page's language ("1 repas", "3 meals")."""
    return ngettext("%(count)s meal", "%(count)s meals", count, count=number(count))


def amount(value: Money) -> str:
    """An amount of money in the page's language ("20,00 €", "€20.00")."""
    return format_money(value, current_locale())


def render_dift_page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A redemption page (or another company page) in the visitor's language: texts from the
    catalogs, `meals` and `amount` beside the CLDR globals; `errors` (field -> (text key, its
    values), see redemption_choice.read_choice) become the messages shown next to the fields."""
    errors = context.get("errors") or {}
    context["errors"] = {field: error_text(key, values) for field, (key, values) in errors.items()}
    return (
        render_template(template, meals=meals, amount=amount, locale=current_locale(), **context),
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


def _choose_page(
    flow: Flow,
    view: DiftView,
    form: MultiDict[str, str] | None = None,
    errors: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> tuple[str, int]:
    return render_dift_page(
        "dift_choose.html",
        422 if errors else 200,
        offer=offer_of(view),
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
            offer=offer_of(view),
            allocations=preview_of(view, choice),
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
        allocations = allocations_of(view, pairs)
        return render_dift_page(
            "dift_thanks.html",
            offer=offer_of(view),
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
