"""A campaign manager's news posts: each campaign's posts (drafts, scheduled, published) with
their delivery counts, the editor (Preview, Save draft, Schedule, Publish now, the last two
after a confirmation step), and a published post's deliveries with a Resend button for each
failed one.

Posts are written through handlers/news.py, so a post published here is announced through
the outbox exactly as the admin API's is. What became of its emails is the notifications
service's to say (NotificationsClient): when it does not answer, the page says so and the
rest still works. The live previews are news_preview.py's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from services.shared.db import reading

from .. import views
from ..domain.campaigns import Campaign, CampaignRuleBroken, post_url
from ..handlers import news
from ..handlers.campaigns import UnknownCampaign
from ..i18n import current_locale
from ..service_clients import NotificationsClient, ServiceRefused, ServiceUnavailable
from ..unit_of_work import DonationsUnitOfWork
from .auth import backoffice, nav, role_required
from .news_preview import Draft, editor_response, previews

ADMIN = "admin"
# The campaign managers' clock: a date typed without a zone is Paris time.
OFFICE_TIME = ZoneInfo("Europe/Paris")
TYPED_MOMENT = "%Y-%m-%dT%H:%M"

# Each language in its own words, as a language menu names them.
LANGUAGES = {"fr": "Français", "en": "English"}
STATUS = {
    "draft": _l("draft"),
    "scheduled": _l("scheduled"),
    "published": _l("published"),
}
COUNTED = (
    ("sent", _l("sent")),
    ("failed", _l("failed")),
    ("skipped", _l("skipped (unsubscribed)")),
    ("pending", _l("pending")),
)

nav(ADMIN, "news_campaigns", _l("News"))


def _service() -> Any:
    return current_app.extensions["donations"]


def notifications() -> NotificationsClient:
    """The notifications service the settings name (DIFTS_NOTIFICATIONS_URL / _TOKEN)."""
    return NotificationsClient.of(_service().settings)


def office_time(moment: datetime | None) -> str:
    """A moment as campaign managers read it: Paris time, in the page's language."""
    if moment is None:
        return ""
    return format_datetime(moment, "medium", tzinfo=OFFICE_TIME, locale=current_locale())


class NewsPostForm(FlaskForm):
    """The editor's fields; which button was pressed comes as `action`."""

    title = StringField(
        _l("Title"),
        validators=[
            DataRequired(_l("Give the post a title.")),
            Length(max=300, message=_l("A title has at most 300 characters.")),
        ],
    )
    body_markdown = TextAreaField(
        _l("Text"),
        validators=[
            DataRequired(_l("Write the text of the post.")),
            Length(max=50_000, message=_l("A post has at most 50,000 characters.")),
        ],
    )
    locale = SelectField(
        _l("Language of the post"),
        choices=[SelectChoice(code, name, {"lang": code}) for code, name in LANGUAGES.items()],
        validate_choice=True,
    )
    publish_at = StringField(_l("Publication date and time"), render_kw={"type": "datetime-local"})

    def moment(self) -> datetime | None:
        """The typed publication moment (Paris time) in UTC, or None when left empty."""
        typed = (self.publish_at.data or "").strip()
        if not typed:
            return None
        try:
            local = datetime.strptime(typed[:16], TYPED_MOMENT)
        except ValueError as error:
            raise ValidationError(_("Write a date and time such as 2030-05-01T09:30.")) from error
        return local.replace(tzinfo=OFFICE_TIME).astimezone(UTC)

    def checked(self, intent: str) -> bool:
        """Whether the fields are valid for `intent` (draft, schedule, publish, preview); the
        errors are put next to their fields."""
        valid = self.validate()
        try:
            moment = self.moment()
        except ValidationError as error:
            self.publish_at.errors = [str(error)]
            return False
        if intent == news.SCHEDULE and moment is None:
            self.publish_at.errors = [_("Choose when to publish the post.")]
        elif intent == news.SCHEDULE and moment is not None and moment <= datetime.now(UTC):
            self.publish_at.errors = [_("Choose a moment in the future.")]
        elif intent == news.DRAFT and moment is not None:
            self.publish_at.errors = [
                _("A draft has no date: clear it to keep a draft, or press Schedule.")
            ]
        else:
            return valid
        return False


def _campaign(slug: str) -> Campaign:
    with reading(_service().engine) as conn:
        campaign = views.campaign(conn, slug)
    if campaign is None:
        abort(404, _("There is no campaign at this address."))
    return campaign


def _stored_post(campaign: Campaign, post_id: str) -> Any:
    with reading(_service().engine) as conn:
        post = views.post(conn, post_id)
    if post is None or post.campaign_id != campaign.id:
        abort(404, _("This campaign has no such news post."))
    return post


@backoffice.get("/news")
@role_required(ADMIN)
def news_campaigns() -> Any:
    """The campaigns, each with a link to its news."""
    with reading(_service().engine) as conn:
        campaigns = views.all_campaigns(conn)
    return render_template("backoffice/news/campaigns.html", campaigns=campaigns)


def _counts(client: NotificationsClient, posts: list[Any]) -> tuple[dict[str, Any], bool]:
    """Each published post's delivery counts, and whether notifications answered."""
    counts: dict[str, Any] = {}
    for post in posts:
        if post.published_at is None:
            continue
        try:
            counts[post.id] = client.post_counts(post.id)
        except (ServiceUnavailable, ServiceRefused):
            return counts, False
    return counts, True


@backoffice.get("/news/<slug>")
@role_required(ADMIN)
def news_posts(slug: str) -> Any:
    """A campaign's posts, the latest written first, with the counts of the published ones."""
    campaign = _campaign(slug)
    with reading(_service().engine) as conn:
        posts = views.campaign_posts(conn, campaign.id)
    counts, answered = _counts(notifications(), posts)
    return render_template(
        "backoffice/news/posts.html",
        campaign=campaign,
        posts=posts,
        counts=counts,
        answered=answered,
        counted=COUNTED,
        status=STATUS,
        when=office_time,
    )


def _typed(form: NewsPostForm) -> Draft:
    """What the editor's fields hold, for the previews."""
    return Draft(
        title=form.title.data or "",
        body_markdown=form.body_markdown.data or "",
        locale=form.locale.data or "fr",
    )


def _editor(
    campaign: Campaign, form: NewsPostForm, post: Any, status: int, problem: str | None = None
) -> Response:
    """The editor with its previews (of what is typed, else of the stored post)."""
    draft = _typed(form)
    return editor_response(
        render_template(
            "backoffice/news/editor.html",
            campaign=campaign,
            form=form,
            post=post,
            problem=problem,
            previews=previews(campaign, draft, notifications()) if draft.written else None,
            status_names=STATUS,
            when=office_time,
        ),
        status,
    )


def _confirmation(campaign: Campaign, form: NewsPostForm, post: Any, intent: str) -> Response:
    """The step before publishing or scheduling: what will happen, and the buttons."""
    moment = form.moment() if intent == news.SCHEDULE else None
    return editor_response(
        render_template(
            "backoffice/news/confirm.html",
            campaign=campaign,
            form=form,
            post=post,
            intent=intent,
            moment=office_time(moment),
            languages=LANGUAGES,
        ),
        200,
    )


def _save(campaign: Campaign, form: NewsPostForm, post: Any, intent: str) -> Response:
    """Save the post as the intent asks; the post's page, or the editor with what refused."""
    command = news.SaveNewsPost(
        campaign.slug,
        title=form.title.data or "",
        body_markdown=form.body_markdown.data or "",
        public_url=_service().settings.public_url,
        intent=intent,
        publish_at=form.moment() if intent == news.SCHEDULE else None,
        locale=form.locale.data or "fr",
        post_id=post.id if post is not None else None,
    )
    try:
        with DonationsUnitOfWork(_service().engine) as uow:
            saved = news.save_news_post(command, uow)
    except UnknownCampaign:
        abort(404, _("There is no campaign at this address."))
    except news.UnknownNewsPost:
        abort(404, _("This campaign has no such news post."))
    except CampaignRuleBroken as refused:
        if refused.field == "post":
            flash(_("This post was published meanwhile: it changes no more."))
            return redirect(
                url_for("backoffice.news_post", slug=campaign.slug, post_id=post.id), 303
            )
        if refused.field == "publish_at":
            form.publish_at.errors = [_("Choose a moment in the future.")]
            return _editor(campaign, form, post, 422)
        return _editor(
            campaign, form, post, 409, _("This campaign is closed: it posts no more news.")
        )
    done = {
        news.DRAFT: _("The draft is saved."),
        news.SCHEDULE: _(
            "The post is scheduled for %(moment)s.", moment=office_time(saved.publish_at)
        ),
        news.PUBLISH: _("The post is published: its emails are on their way to the donors."),
    }
    flash(done[intent])
    return redirect(url_for("backoffice.news_post", slug=campaign.slug, post_id=saved.id), 303)


def _answer(campaign: Campaign, post: Any) -> Response:
    """The editor's answer to a press of one of its buttons."""
    form = NewsPostForm()
    action = request.form.get("action", "preview")
    intent = action.removeprefix("confirm-")
    if intent not in (*news.INTENTS, "preview", "edit"):
        intent = "preview"
    if intent in ("preview", "edit"):
        return _editor(campaign, form, post, 200)
    if not form.checked(intent):
        return _editor(campaign, form, post, 422)
    if intent != news.DRAFT and not action.startswith("confirm-"):
        return _confirmation(campaign, form, post, intent)
    return _save(campaign, form, post, intent)


@backoffice.route("/news/<slug>/new", methods=["GET", "POST"])
@role_required(ADMIN)
def news_new(slug: str) -> Any:
    """Write a new post for a campaign."""
    campaign = _campaign(slug)
    if request.method == "GET":
        return _editor(campaign, NewsPostForm(formdata=None, locale=current_locale()), None, 200)
    return _answer(campaign, None)


@backoffice.route("/news/<slug>/<post_id>", methods=["GET", "POST"])
@role_required(ADMIN)
def news_post(slug: str, post_id: str) -> Any:
    """A post not published yet in the editor; a published one with its deliveries."""
    campaign = _campaign(slug)
    post = _stored_post(campaign, post_id)
    if post.published_at is not None:
        if request.method == "POST":
            flash(_("This post was published meanwhile: it changes no more."))
            return redirect(url_for("backoffice.news_post", slug=slug, post_id=post_id), 303)
        return _published(campaign, post)
    if request.method == "GET":
        typed = (
            post.publish_at.astimezone(OFFICE_TIME).strftime(TYPED_MOMENT)
            if post.publish_at
            else ""
        )
        form = NewsPostForm(
            formdata=None,
            title=post.title,
            body_markdown=post.body_markdown,
            locale=post.locale,
            publish_at=typed,
        )
        return _editor(campaign, form, post, 200)
    return _answer(campaign, post)


def _published(campaign: Campaign, post: Any) -> Any:
    """A published post: its delivery counts and its failed deliveries, from notifications."""
    client = notifications()
    try:
        counts = client.post_counts(post.id)
        failed = client.post_deliveries(post.id, status="failed")
    except (ServiceUnavailable, ServiceRefused):
        counts, failed = None, []
    return render_template(
        "backoffice/news/published.html",
        campaign=campaign,
        post=post,
        counts=counts,
        counted=COUNTED,
        failed=failed,
        url=post_url(_service().settings.public_url, campaign.slug, post.id),
        when=office_time,
    )


@backoffice.post("/news/<slug>/<post_id>/deliveries/<delivery_id>/resend")
@role_required(ADMIN)
def news_resend(slug: str, post_id: str, delivery_id: str) -> Response:
    """Send one failed email of a published post again, and say how it went."""
    campaign = _campaign(slug)
    post = _stored_post(campaign, post_id)
    client = notifications()
    try:
        # Only this post's failed emails: an id of another's sends nothing.
        failed = {found["id"] for found in client.post_deliveries(post.id, status="failed")}
        if delivery_id not in failed:
            abort(404, _("This post has no such failed email."))
        delivery = client.resend(delivery_id)
    except ServiceUnavailable:
        flash(_("The notifications service does not answer: nothing was sent. Try again soon."))
    except ServiceRefused as refused:
        flash(_("This email cannot be sent again (%(reason)s).", reason=refused.message))
    else:
        flash(_("The email to %(recipient)s goes out again.", recipient=delivery["recipient"]))
    return redirect(url_for("backoffice.news_post", slug=slug, post_id=post_id), 303)
