"""The news editor of the back office on PostgreSQL, with the REAL notifications app served
over HTTP: a bad field shows its error next to it and saves nothing; the previews show the
post's page and the email notifications renders ("Dear difteurs," in English, "Chers
difteurs," in French), and say so when notifications does not answer; a draft is saved, a
post scheduled and published after a confirmation step (its event in donations' outbox, as
the admin API writes it); a published post's delivery counts are notifications' own JSON and
a failed email is sent again; campaign managers only (403 for finance, 401 without a
session)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.donations import store
from tests.support import infra
from tests.support.backoffice import csrf_token, sign_in
from tests.support.news_office import (
    FINANCE,
    MANAGER,
    SLUG,
    TOKEN,
    NewsOffice,
    news_office,
)

pytestmark = pytest.mark.integration

NEWS = f"/backoffice/news/{SLUG}"
PARIS = ZoneInfo("Europe/Paris")
BODY = "The doors open on **Monday** at noon.\n\nCome and cook with us."


@pytest.fixture
def notifications_database_url(postgres_admin_url: str) -> Iterator[str]:
    with infra.fresh_database(postgres_admin_url, prefix="n") as url:
        yield url


@pytest.fixture
def office(
    database_url: str, notifications_database_url: str, stripe_mock_url: str
) -> Iterator[NewsOffice]:
    with news_office(database_url, notifications_database_url, stripe_mock_url) as office:
        yield office


def manager(office: NewsOffice, email: str = MANAGER) -> FlaskClient:
    """A signed-in browser that prefers English."""
    client = office.app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert sign_in(client, email).status_code == 303
    return client


def send(client: FlaskClient, url: str, **fields: str) -> Any:
    """The editor's form as typed, with the CSRF token of the page at `url`."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    values = {"title": "", "body_markdown": "", "locale": "en", "publish_at": "", **fields}
    return client.post(url, data={"csrf_token": csrf_token(page.text), **values})


def typed_moment(moment: datetime) -> str:
    """A moment as a datetime-local field holds it, in Paris time."""
    return moment.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def posts(office: NewsOffice) -> list[Any]:
    with office.engine.connect() as conn:
        return list(conn.execute(select(store.news_posts)).all())


def outbox_size(office: NewsOffice) -> int:
    with office.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(store.outbox)).scalar_one())


def api(office: NewsOffice, method: str, path: str) -> Any:
    """notifications' own answer, as an operator with its token gets it."""
    answer = requests.request(
        method,
        office.notifications_url + path,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    return answer.json()


def publish(client: FlaskClient, title: str = "Bagnolet opens") -> str:
    """Write and publish a post through the editor and its confirmation; the post's URL."""
    confirm = send(client, f"{NEWS}/new", title=title, body_markdown=BODY, action="publish")
    assert confirm.status_code == 200
    done = client.post(
        f"{NEWS}/new",
        data={
            "csrf_token": csrf_token(confirm.text),
            "title": title,
            "body_markdown": BODY,
            "locale": "en",
            "publish_at": "",
            "action": "confirm-publish",
        },
    )
    assert done.status_code == 303, done.status_code
    return str(done.headers["Location"])


def test_a_bad_field_shows_its_error_next_to_it_keeps_what_was_typed_and_saves_nothing(
    office: NewsOffice,
) -> None:
    client = manager(office)
    events_before = outbox_size(office)

    untitled = send(client, f"{NEWS}/new", body_markdown=BODY, action="draft")
    assert untitled.status_code == 422
    assert 'id="title-error">Give the post a title.</p>' in untitled.text
    assert 'aria-invalid="true"' in untitled.text and "Come and cook with us." in untitled.text

    past = typed_moment(datetime.now(UTC) - timedelta(hours=1))
    late = send(
        client, f"{NEWS}/new", title="Bruz", body_markdown=BODY, publish_at=past, action="schedule"
    )
    assert late.status_code == 422
    assert 'id="publish_at-error">Choose a moment in the future.</p>' in late.text
    assert f'value="{past}"' in late.text and 'value="Bruz"' in late.text

    later = typed_moment(datetime.now(UTC) + timedelta(days=1))
    dated = send(
        client, f"{NEWS}/new", title="Bruz", body_markdown=BODY, publish_at=later, action="draft"
    )
    assert dated.status_code == 422
    assert "A draft has no date: clear it to keep a draft, or press Schedule." in dated.text

    garbled = send(
        client,
        f"{NEWS}/new",
        title="Bruz",
        body_markdown=BODY,
        publish_at="next monday",
        action="schedule",
    )
    assert garbled.status_code == 422 and 'id="publish_at-error"' in garbled.text

    assert posts(office) == [] and outbox_size(office) == events_before


def test_a_draft_is_saved_edited_then_scheduled_after_a_confirmation_and_announces_nothing(
    office: NewsOffice,
) -> None:
    client = manager(office)
    events_before = outbox_size(office)

    saved = send(client, f"{NEWS}/new", title="Bruz soon", body_markdown=BODY, action="draft")
    assert saved.status_code == 303
    [draft] = posts(office)
    assert (draft.title, draft.publish_at, draft.published_at) == ("Bruz soon", None, None)
    editor = client.get(saved.headers["Location"])
    assert "The draft is saved." in editor.text and "Bruz soon" in editor.text

    when = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=2)
    url = f"{NEWS}/{draft.id}"
    confirm = send(
        client,
        url,
        title="Bruz opens",
        body_markdown=BODY,
        publish_at=typed_moment(when),
        action="schedule",
    )
    assert confirm.status_code == 200 and "Schedule this post?" in confirm.text
    assert posts(office)[0].title == "Bruz soon"  # nothing saved before the confirmation

    back = client.post(
        url,
        data={
            "csrf_token": csrf_token(confirm.text),
            "title": "Bruz opens",
            "body_markdown": BODY,
            "locale": "en",
            "publish_at": typed_moment(when),
            "action": "edit",
        },
    )
    assert back.status_code == 200 and 'value="Bruz opens"' in back.text
    done = client.post(
        url,
        data={
            "csrf_token": csrf_token(confirm.text),
            "title": "Bruz opens",
            "body_markdown": BODY,
            "locale": "en",
            "publish_at": typed_moment(when),
            "action": "confirm-schedule",
        },
    )
    assert done.status_code == 303
    [scheduled] = posts(office)
    assert scheduled.id == draft.id and scheduled.title == "Bruz opens"
    assert scheduled.publish_at.astimezone(UTC) == when and scheduled.published_at is None
    assert "The post is scheduled for" in client.get(done.headers["Location"]).text
    assert outbox_size(office) == events_before  # the worker announces it when due

    listing = client.get(NEWS)
    assert "Bruz opens" in listing.text and ">scheduled<" in listing.text


def test_publishing_asks_for_a_confirmation_then_announces_the_post_through_the_outbox(
    office: NewsOffice,
) -> None:
    client = manager(office)
    confirm = send(
        client, f"{NEWS}/new", title="Bagnolet opens", body_markdown=BODY, action="publish"
    )
    assert confirm.status_code == 200 and "Publish this post now?" in confirm.text
    assert posts(office) == [] and office.announced() == []

    location = publish(client)

    [post] = posts(office)
    assert post.published_at is not None
    [event] = office.announced()
    assert event.data["post_id"] == post.id and event.data["title"] == "Bagnolet opens"
    assert event.data["body_markdown"] == BODY
    assert event.data["url"] == f"http://donations.test/campaigns/{SLUG}/news/{post.id}"
    assert location.endswith(f"{NEWS}/{post.id}")
    # A published post is no longer in the editor, and a late form changes nothing.
    late = send(client, location, title="Another title", body_markdown=BODY, action="draft")
    assert late.status_code == 303 and posts(office)[0].title == "Bagnolet opens"
    assert len(office.announced()) == 1


def test_a_published_post_shows_notifications_counts_and_resends_a_failed_email(
    office: NewsOffice,
) -> None:
    client = manager(office)
    location = publish(client)
    [event] = office.announced()
    deliveries = office.deliver(event, donors=4)
    assert len(deliveries) == 4
    office.mark(sent=[deliveries[1].id, deliveries[2].id], failed=[deliveries[0].id])
    post_id = event.data["post_id"]

    page = client.get(location)
    assert page.status_code == 200
    counts = api(office, "GET", f"/api/v1/posts/{post_id}/counts")
    assert {k: counts[k] for k in ("sent", "failed", "pending")} == {
        "sent": 2,
        "failed": 1,
        "pending": 1,
    }
    shown = dict(re.findall(r'data-count="(\w+)">(\d+)<', page.text))
    assert shown == {key: str(counts[key]) for key in ("sent", "failed", "skipped", "pending")}
    assert "d***@example.org" in page.text and "donor-0@example.org" not in page.text

    listing = client.get(NEWS)
    row = listing.text[listing.text.index("Bagnolet opens") :]
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)[:4]] == [
        counts["sent"],
        counts["failed"],
        counts["skipped"],
        counts["pending"],
    ]

    resend = f"{location}/deliveries/{deliveries[0].id}/resend"
    answer = client.post(resend, data={"csrf_token": csrf_token(page.text)})
    assert answer.status_code == 303
    after = client.get(answer.headers["Location"])
    assert "The email to d***@example.org goes out again." in after.text
    again = api(office, "GET", f"/api/v1/deliveries?post_id={post_id}&status=pending")
    assert deliveries[0].id in {found["id"] for found in again}
    assert api(office, "GET", f"/api/v1/posts/{post_id}/counts")["failed"] == 0
    # Only a failed email of this post is sent again: not a sent one, not a made-up id.
    for other in (deliveries[1].id, "no-such-delivery"):
        refused = client.post(
            f"{location}/deliveries/{other}/resend", data={"csrf_token": csrf_token(page.text)}
        )
        assert refused.status_code == 404
    assert client.post(resend, data={}).status_code == 400  # no CSRF token


def test_the_previews_show_the_page_and_the_email_in_english_and_in_french(
    office: NewsOffice,
) -> None:
    client = manager(office)
    page = client.get(f"{NEWS}/new")
    token = csrf_token(page.text)
    english = client.post(
        f"{NEWS}/preview",
        data={
            "csrf_token": token,
            "title": "Bagnolet opens",
            "body_markdown": BODY,
            "locale": "en",
        },
    )
    assert english.status_code == 200
    srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', english.text).group(1))
    assert "<h1>Bagnolet opens</h1>" in srcdoc and "<strong>Monday</strong>" in srcdoc
    assert "Les Petites Cantines" in srcdoc
    assert "Dear difteurs," in html.unescape(english.text)
    email = client.post(
        f"{NEWS}/email-preview",
        data={
            "csrf_token": token,
            "title": "Bagnolet opens",
            "body_markdown": BODY,
            "locale": "en",
        },
    )
    assert email.status_code == 200 and "Dear difteurs," in email.text
    assert "<strong>Monday</strong>" in email.text
    policy = email.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert email.headers["X-Frame-Options"] == "SAMEORIGIN"

    french = client.post(
        f"{NEWS}/email-preview",
        data={
            "csrf_token": token,
            "title": "Bagnolet ouvre",
            "body_markdown": "Les portes ouvrent lundi.",
            "locale": "fr",
        },
    )
    assert "Chers difteurs," in french.text and "Dear difteurs" not in french.text

    # Without the script, the Preview button renders the same panes in the editor.
    typed = client.post(
        f"{NEWS}/new",
        data={
            "csrf_token": token,
            "title": "Bagnolet opens",
            "body_markdown": BODY,
            "locale": "en",
            "publish_at": "",
            "action": "preview",
        },
    )
    assert typed.status_code == 200 and "Dear difteurs," in html.unescape(typed.text)
    assert "frame-src 'self'" in typed.headers["Content-Security-Policy"]
    assert posts(office) == []


def test_the_email_preview_says_so_when_notifications_does_not_answer(
    database_url: str, notifications_database_url: str, stripe_mock_url: str
) -> None:
    silent = f"http://127.0.0.1:{infra.free_port()}"
    with news_office(database_url, notifications_database_url, stripe_mock_url, silent) as office:
        client = manager(office)
        page = client.get(f"{NEWS}/new")
        typed = {
            "csrf_token": csrf_token(page.text),
            "title": "Bagnolet opens",
            "body_markdown": BODY,
            "locale": "en",
        }
        panes = client.post(f"{NEWS}/preview", data=typed)
        assert panes.status_code == 200
        assert 'id="email-problem"' in panes.text
        assert "The notifications service does not answer" in panes.text
        assert "&lt;h1&gt;Bagnolet opens&lt;/h1&gt;" in panes.text  # the page preview works
        email = client.post(f"{NEWS}/email-preview", data=typed)
        assert email.status_code == 503 and "does not answer" in email.text
        assert "default-src 'none'" in email.headers["Content-Security-Policy"]
        # The rest of the editor works: a draft is saved; the list says counts are missing.
        saved = client.post(f"{NEWS}/new", data={**typed, "publish_at": "", "action": "draft"})
        assert saved.status_code == 303 and len(posts(office)) == 1
        assert client.get(NEWS).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/backoffice/news"),
        ("GET", NEWS),
        ("GET", f"{NEWS}/new"),
        ("POST", f"{NEWS}/new"),
        ("POST", f"{NEWS}/preview"),
        ("POST", f"{NEWS}/email-preview"),
        ("GET", f"{NEWS}/some-post"),
        ("POST", f"{NEWS}/some-post/deliveries/some-delivery/resend"),
    ],
)
def test_the_news_pages_are_for_campaign_managers_only(
    office: NewsOffice, method: str, path: str
) -> None:
    finance = manager(office, FINANCE)
    token = csrf_token(finance.get("/backoffice/").text)
    refused = finance.open(
        path, method=method, data={"csrf_token": token} if method == "POST" else None
    )
    assert refused.status_code == 403
    anonymous = office.app.test_client()
    page = anonymous.get("/backoffice/sign-in")
    unsigned = anonymous.open(
        path,
        method=method,
        data={"csrf_token": csrf_token(page.text)} if method == "POST" else None,
    )
    assert unsigned.status_code == 401 and 'name="password"' in unsigned.text
    assert posts(office) == []
