"""The news editor's two previews of what is typed, nothing saved: the post's page as donors
will read it (the donor site's own post.html, in a sandboxed srcdoc iframe), and the email
they will get, rendered by the notifications service's own templates (POST
/api/v1/previews/news, "Dear difteurs," in English, "Chers difteurs," in French).

The email's subject and text version are shown on the editor page (escaped); its HTML, which
is notifications' and carries inline styles, is never put into the page: a sandboxed iframe
loads it from email-preview, whose answer has a CSP of its own (those inline styles, and no
script, no request, no form). The editor page's CSP is the donor pages' with frame-src 'self'
for that iframe.

The live part is static/news-editor.js: on input (debounced) it POSTs the form to /preview
and swaps the panes in; without JavaScript the editor's Preview button renders the same panes
server-side, and the email's HTML comes with one more button."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from flask import abort, current_app, make_response, render_template, request
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from services.shared.db import reading

from .. import views
from ..domain.campaigns import Campaign
from ..markdown_text import render_markdown
from ..pages import render_page
from ..service_clients import NotificationsClient, ServiceRefused, ServiceUnavailable
from .auth import backoffice, role_required

EDITOR_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)
# The email's own inline styles and nothing else; `sandbox` even if it is opened on its own.
EMAIL_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; sandbox; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
LOCALES = ("fr", "en")


@dataclass(frozen=True)
class Draft:
    """What the editor holds: a post's text before it is saved."""

    title: str
    body_markdown: str
    locale: str

    @property
    def written(self) -> bool:
        """Whether there is anything to preview."""
        return bool(self.title.strip() or self.body_markdown.strip())

    @property
    def complete(self) -> bool:
        """Whether notifications can render its email (it needs a title and a text)."""
        return bool(self.title.strip() and self.body_markdown.strip())


def editor_response(html: str, status: int) -> Response:
    """An editor page, with the policy that lets its iframe load the email preview."""
    response = make_response(html, status)
    response.headers["Content-Security-Policy"] = EDITOR_POLICY
    return response


def page_preview(campaign: Campaign, draft: Draft) -> str:
    """The post's page as the donor site renders it, dated now (its template, its texts)."""
    stand_in = SimpleNamespace(
        id="preview",
        campaign_id=campaign.id,
        title=draft.title,
        body_markdown=draft.body_markdown,
        locale=draft.locale,
        publish_at=None,
        published_at=datetime.now(UTC),
    )
    html, _status = render_page(
        "post.html",
        campaign=campaign,
        post=stand_in,
        body_html=render_markdown(draft.body_markdown),
    )
    return html


def email_preview(
    campaign: Campaign, draft: Draft, client: NotificationsClient
) -> tuple[dict[str, Any] | None, str | None, int]:
    """The email notifications renders for `draft` ({subject, text, html}), or None with why
    not and the status that says it."""
    if not draft.complete:
        return None, _("Write a title and a text to preview the email."), 422
    try:
        email = client.news_preview(
            campaign_title=campaign.title,
            campaign_slug=campaign.slug,
            cause_name=campaign.cause,
            title=draft.title,
            body_markdown=draft.body_markdown,
            locale=draft.locale,
        )
    except ServiceUnavailable:
        problem = _(
            "The notifications service does not answer, so the email cannot be previewed now; "
            "the page preview works. Try again in a moment."
        )
        return None, problem, 503
    except ServiceRefused as refused:
        problem = _(
            "The notifications service refused to preview this email: %(reason)s",
            reason=refused.message,
        )
        return None, problem, 422
    return email, None, 200


def previews(campaign: Campaign, draft: Draft, client: NotificationsClient) -> dict[str, Any]:
    """Both previews of `draft`: the page's HTML (for an iframe's srcdoc) and the email's
    subject and text, or why notifications did not render the email."""
    email, problem, _status = email_preview(campaign, draft, client)
    return {
        "page": page_preview(campaign, draft),
        "email": email,
        "email_problem": problem,
        "draft": draft,
    }


def _posted() -> Draft:
    locale = request.form.get("locale", "fr")
    return Draft(
        title=request.form.get("title", "")[:300],
        body_markdown=request.form.get("body_markdown", "")[:50_000],
        locale=locale if locale in LOCALES else "fr",
    )


def _campaign(slug: str) -> Campaign:
    with reading(current_app.extensions["donations"].engine) as conn:
        campaign = views.campaign(conn, slug)
    if campaign is None:
        abort(404, _("There is no campaign at this address."))
    return campaign


def _client() -> NotificationsClient:
    return NotificationsClient.of(current_app.extensions["donations"].settings)


@backoffice.post("/news/<slug>/preview")
@role_required("admin")
def news_preview(slug: str) -> Any:
    """The preview panes of the posted fields (for the editor's script); saves nothing."""
    campaign = _campaign(slug)
    draft = _posted()
    return render_template(
        "backoffice/news/_previews.html",
        campaign=campaign,
        previews=previews(campaign, draft, _client()) if draft.written else None,
    )


@backoffice.post("/news/<slug>/email-preview")
@role_required("admin")
def news_email_preview(slug: str) -> Response:
    """The email's HTML as notifications renders it, for the editor's sandboxed iframe."""
    campaign = _campaign(slug)
    email, problem, status = email_preview(campaign, _posted(), _client())
    if email is not None:
        html = str(email["html"])
    else:
        html = render_template("backoffice/news/email_problem.html", problem=problem)
    response = make_response(html, status)
    response.headers["Content-Security-Policy"] = EMAIL_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response
