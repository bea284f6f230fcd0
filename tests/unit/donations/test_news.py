"""News posts through the handlers on an in-memory unit of work: published at once or when
due, each announced once; seeded posts are written once; a closed campaign posts no more."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.donations.domain.campaigns import CampaignRuleBroken, NewsPost
from services.donations.handlers import campaigns, news
from services.shared.events import UPDATE_PUBLISHED
from tests.unit.donations.conftest import SLUG, announced
from tests.unit.donations.fakes import FakeUnitOfWork

URL = "http://donations.test"


def write(uow: FakeUnitOfWork, **changes: object) -> NewsPost:
    values: dict = {"title": "Bruz", "body_markdown": "A **14th** canteen", **changes}
    with uow:
        return news.write_news_post(news.WriteNewsPost(SLUG, public_url=URL, **values), uow)


def test_a_post_is_published_at_once_and_announced_with_its_page(uow: FakeUnitOfWork) -> None:
    post = write(uow)
    assert post.published_at is not None
    [(_topic, _key, event)] = uow.outbox.queued
    assert event.type == UPDATE_PUBLISHED
    assert event.data["body_html"] == "<p>A <strong>14th</strong> canteen</p>\n"
    assert event.data["url"] == f"{URL}/campaigns/{SLUG}/news/{post.id}"


def test_a_scheduled_post_is_published_once_when_due(uow: FakeUnitOfWork) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    post = write(uow, publish_at=soon)
    assert post.published_at is None
    with uow:
        assert news.publish_due_posts(URL, uow) == 0
    # Its time comes.
    uow.news.rows[post.id] = replace(post, publish_at=soon - timedelta(days=1))
    with uow:
        assert news.publish_due_posts(URL, uow) == 1
    with uow:
        assert news.publish_due_posts(URL, uow) == 0
    assert announced(uow) == [UPDATE_PUBLISHED]


def test_a_seeded_post_is_written_once(uow: FakeUnitOfWork) -> None:
    first = write(uow, seed_key="demo-bruz")
    again = write(uow, seed_key="demo-bruz", title="Another title")
    assert again.id == first.id and len(uow.news.rows) == 1


def test_a_closed_campaign_posts_no_more(uow: FakeUnitOfWork) -> None:
    with uow:
        campaigns.close_campaign(SLUG, uow)
    with pytest.raises(CampaignRuleBroken) as closed:
        write(uow)
    assert closed.value.field == "campaign" and uow.news.rows == {}


# --- the back office's editor: drafts, schedules, rewrites ----------------------------------


def save(uow: FakeUnitOfWork, intent: str, **changes: object) -> NewsPost:
    values: dict = {"title": "Bruz", "body_markdown": "A **14th** canteen", **changes}
    with uow:
        command = news.SaveNewsPost(SLUG, public_url=URL, intent=intent, **values)
        return news.save_news_post(command, uow)


def test_a_draft_is_kept_unpublished_unannounced_and_never_due(uow: FakeUnitOfWork) -> None:
    draft = save(uow, news.DRAFT)
    assert (draft.status, draft.publish_at, draft.published_at) == ("draft", None, None)
    with uow:
        assert news.publish_due_posts(URL, uow) == 0
    assert announced(uow) == []


def test_a_draft_is_rewritten_then_published_once_with_its_last_text(uow: FakeUnitOfWork) -> None:
    draft = save(uow, news.DRAFT)
    save(uow, news.DRAFT, post_id=draft.id, title="Bruz opens")
    published = save(uow, news.PUBLISH, post_id=draft.id, title="Bruz opens", locale="en")
    assert published.id == draft.id and published.status == "published"
    assert len(uow.news.rows) == 1
    [(_topic, _key, event)] = uow.outbox.queued
    assert (event.data["title"], event.data["locale"]) == ("Bruz opens", "en")


def test_a_scheduled_post_needs_a_later_date_and_the_worker_publishes_it(
    uow: FakeUnitOfWork,
) -> None:
    with pytest.raises(CampaignRuleBroken) as undated:
        save(uow, news.SCHEDULE)
    with pytest.raises(CampaignRuleBroken) as past:
        save(uow, news.SCHEDULE, publish_at=datetime.now(UTC) - timedelta(minutes=1))
    assert undated.value.field == past.value.field == "publish_at"
    assert uow.news.rows == {}
    soon = datetime.now(UTC) + timedelta(hours=1)
    scheduled = save(uow, news.SCHEDULE, publish_at=soon)
    assert (scheduled.status, scheduled.publish_at) == ("scheduled", soon)
    uow.news.rows[scheduled.id] = replace(scheduled, publish_at=soon - timedelta(days=1))
    with uow:
        assert news.publish_due_posts(URL, uow) == 1
    assert announced(uow) == [UPDATE_PUBLISHED]


def test_a_scheduled_post_goes_back_to_draft_without_its_date(uow: FakeUnitOfWork) -> None:
    scheduled = save(uow, news.SCHEDULE, publish_at=datetime.now(UTC) + timedelta(days=1))
    draft = save(uow, news.DRAFT, post_id=scheduled.id)
    assert (draft.status, draft.publish_at) == ("draft", None)


def test_a_draft_with_a_date_is_refused(uow: FakeUnitOfWork) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(CampaignRuleBroken) as dated:
        save(uow, news.DRAFT, publish_at=later)
    assert dated.value.field == "publish_at" and uow.news.rows == {}


def test_a_published_post_changes_no_more(uow: FakeUnitOfWork) -> None:
    published = save(uow, news.PUBLISH)
    with pytest.raises(CampaignRuleBroken) as refused:
        save(uow, news.DRAFT, post_id=published.id, title="Another title")
    assert refused.value.field == "post"
    assert uow.news.rows[published.id].title == "Bruz"
    assert announced(uow) == [UPDATE_PUBLISHED]


def test_another_campaigns_post_is_unknown(uow: FakeUnitOfWork) -> None:
    with pytest.raises(news.UnknownNewsPost):
        save(uow, news.DRAFT, post_id="no-such-post")
