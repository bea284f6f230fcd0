"""The donor-facing unsubscribe page, reached from the links and the RFC 8058 headers of news
and impact emails.

GET only shows what the link would do and a button: mail scanners and link previews fetch
every link in a message, and must not unsubscribe anyone. POST does it; it is also what a
mail client's one-click "Unsubscribe" sends (body `List-Unsubscribe=One-Click`). A link that
is not ours, or was altered, gets a clear page and changes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, request

from services.shared import i18n

from . import handlers
from .consent import ConsentKeys, InvalidUnsubscribeLink, UnsubscribeRequest
from .emails import render_page, words
from .unit_of_work import NotificationsUnitOfWork

log = logging.getLogger(__name__)

pages = Blueprint("unsubscribe", __name__)


def _service() -> Any:
    return current_app.extensions["notifications"]


def _lang() -> str:
    """?lang= (the page's language links), else the browser's preference, else French."""
    chosen = request.args.get("lang")
    if chosen in i18n.LOCALES:
        return str(chosen)
    return request.accept_languages.best_match(i18n.LOCALES) or i18n.DEFAULT_LOCALE


def _page(status: int, heading: str, lines: list[str], confirm: str = "") -> Response:
    lang = _lang()
    html = render_page(
        "unsubscribe.html",
        lang,
        heading=heading,
        lines=lines,
        confirm=confirm,
        action=request.path,
        other=[code for code in i18n.LOCALES if code != lang],
    )
    response = Response(html, status=status, mimetype="text/html")
    # The token is a credential of sorts: keep it out of caches and referrers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _read(token: str) -> UnsubscribeRequest | Response:
    _ = words(_lang()).gettext
    try:
        return ConsentKeys(_service().settings.signing_secret).read_unsubscribe_token(token)
    except InvalidUnsubscribeLink:
        log.info("unsubscribe link refused: not valid")
        return _page(
            400,
            _("Invalid link"),
            [
                _(
                    "This unsubscribe link is not valid: it may have been cut or altered. "
                    "Nothing has changed. Please use the whole link from the email."
                )
            ],
        )


def _campaign(asked: UnsubscribeRequest) -> str | None:
    """The campaign's title, or None for a link about every campaign."""
    _ = words(_lang()).gettext
    if asked.campaign_id is None:
        return None
    with NotificationsUnitOfWork(_service().engine) as uow:
        campaign = uow.campaigns.get(asked.campaign_id)
    return campaign.title if campaign else _("this campaign")


@pages.get("/unsubscribe/<token>")
def confirm(token: str) -> Response:
    """Show what the link does, with a button to do it; change nothing."""
    asked = _read(token)
    if isinstance(asked, Response):
        return asked
    _ = words(_lang()).gettext
    title = _campaign(asked)
    question = (
        _("Stop receiving news from every campaign?")
        if title is None
        else _("Stop receiving news from %(campaign)s?") % {"campaign": title}
    )
    return _page(
        200,
        _("Unsubscribe"),
        [question + " " + _("Receipts for your gifts will still reach you.")],
        confirm=_("Unsubscribe me"),
    )


@pages.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> Response:
    """Unsubscribe (the page's button, or a mail client's RFC 8058 one-click POST)."""
    asked = _read(token)
    if isinstance(asked, Response):
        return asked
    with NotificationsUnitOfWork(_service().engine) as uow:
        changed = handlers.unsubscribe(asked, uow, datetime.now(UTC))
    log.info(
        "unsubscribed from %s (%d campaign(s) changed, one-click=%s)",
        asked.campaign_id or "every campaign",
        changed,
        request.form.get("List-Unsubscribe") == "One-Click",
    )
    _ = words(_lang()).gettext
    title = _campaign(asked)
    done = (
        _("You will no longer receive news from any campaign.")
        if title is None
        else _("You will no longer receive news from %(campaign)s.") % {"campaign": title}
    )
    return _page(
        200,
        _("Done"),
        [done + " " + _("A new gift with the box ticked subscribes you again.")],
    )
