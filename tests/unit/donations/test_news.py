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
