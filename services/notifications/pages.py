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

from flask import Blueprint, Response, current_app, render_template_string, request

from . import handlers
from .consent import ConsentKeys, InvalidUnsubscribeLink, UnsubscribeRequest
from .emails import TEMPLATES
from .unit_of_work import NotificationsUnitOfWork

log = logging.getLogger(__name__)

pages = Blueprint("unsubscribe", __name__)

_PAGE = (TEMPLATES / "unsubscribe.html").read_text(encoding="utf-8")


def _service() -> Any:
    return current_app.extensions["notifications"]


def _page(status: int, heading: str, lines: list[str], confirm: str = "") -> Response:
    html = render_template_string(
        _PAGE, heading=heading, lines=lines, confirm=confirm, action=request.path
    )
    response = Response(html, status=status, mimetype="text/html")
    # The token is a credential of sorts: keep it out of caches and referrers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _read(token: str) -> UnsubscribeRequest | Response:
    try:
        return ConsentKeys(_service().settings.signing_secret).read_unsubscribe_token(token)
    except InvalidUnsubscribeLink:
        log.info("unsubscribe link refused: not valid")
        return _page(
            400,
            "Lien non valide · Invalid link",
            [
                "Ce lien de désinscription n'est pas valide : il a peut-être été coupé ou "
                "modifié. Rien n'a changé. Utilisez le lien complet de l'email.",
                "This unsubscribe link is not valid: it may have been cut or altered. "
                "Nothing has changed. Please use the whole link from the email.",
            ],
        )


def _scope(asked: UnsubscribeRequest) -> tuple[str, str]:
    if asked.campaign_id is None:
        return "de toutes les campagnes", "from every campaign"
    with NotificationsUnitOfWork(_service().engine) as uow:
        campaign = uow.campaigns.get(asked.campaign_id)
    title = campaign.title if campaign else "cette campagne"
    return f"de {title}", f"from {campaign.title if campaign else 'this campaign'}"


@pages.get("/unsubscribe/<token>")
def confirm(token: str) -> Response:
    """Show what the link does, with a button to do it; change nothing."""
    asked = _read(token)
    if isinstance(asked, Response):
        return asked
    fr, en = _scope(asked)
    return _page(
        200,
        "Se désinscrire · Unsubscribe",
        [
            f"Ne plus recevoir les nouvelles {fr} ? Les reçus de vos dons continueront "
            "de vous parvenir.",
            f"Stop receiving news {en}? Receipts for your gifts will still reach you.",
        ],
        confirm="Me désinscrire · Unsubscribe me",
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
    fr, en = _scope(asked)
    return _page(
        200,
        "C'est fait · Done",
        [
            f"Vous ne recevrez plus les nouvelles {fr}. Un nouveau don avec la case "
            "cochée vous réabonnera.",
            f"You will no longer receive news {en}. A new gift with the box ticked "
            "subscribes you again.",
        ],
    )
