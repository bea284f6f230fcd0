"""A campaign's news posts: written by the campaign manager, published now or when they are
due (by the worker), each announced once to the campaign's donors. The back office's editor
also keeps drafts (no date: nobody publishes them) and rewrites a post until it is published."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from ..domain.campaigns import CampaignRuleBroken, NewsPost, post_url
from . import UnitOfWork
from .campaigns import require_campaign
from .publishing import announce_post


@dataclass(frozen=True)
class WriteNewsPost:
    """A news post for a campaign: published at once unless `publish_at` is later.
    `published_at` back-dates a post written earlier, and `seed_key` makes writing it again
    write nothing (seed data)."""

    slug: str
    title: str
    body_markdown: str
    public_url: str
    publish_at: datetime | None = None
    locale: str = "fr"
    seed_key: str | None = None
    published_at: datetime | None = None


def write_news_post(command: WriteNewsPost, uow: UnitOfWork) -> NewsPost:
    """Store a news post; publish it now unless it is scheduled for later (the worker
    publishes it when due). Returns the post as stored."""
    now = datetime.now(UTC)
    campaign = require_campaign(uow, command.slug).open_for_changes()
    if command.seed_key is not None:
        seeded = uow.news.by_seed_key(command.seed_key)
        if seeded is not None:
            return seeded
    post = NewsPost(
        id=str(uuid.uuid4()),
        campaign_id=campaign.id,
        title=command.title,
        body_markdown=command.body_markdown,
        locale=command.locale,
        created_at=now,
        publish_at=command.publish_at,
        seed_key=command.seed_key,
    )
    uow.news.add(post)
    if post.due(now):
        _publish(uow, post.id, command.public_url, command.published_at or now)
    stored = uow.news.get(post.id)  # as the database keeps its moments, for the answer
    assert stored is not None
    return stored


# What the editor's buttons ask of a post.
DRAFT, SCHEDULE, PUBLISH = "draft", "schedule", "publish"
INTENTS = (DRAFT, SCHEDULE, PUBLISH)


class UnknownNewsPost(LookupError):
    """No post of this campaign has this id."""


@dataclass(frozen=True)
class SaveNewsPost:
    """A post from the back office's editor: kept as a draft (`publish_at` None), scheduled
    for a later `publish_at`, or published now. With `post_id` it rewrites that post (not
    published yet); without, it writes a new one."""

    slug: str
    title: str
    body_markdown: str
    public_url: str
    intent: str = DRAFT
    publish_at: datetime | None = None
    locale: str = "fr"
    post_id: str | None = None


def _date_for(command: SaveNewsPost, now: datetime) -> datetime | None:
    """The publication date the intent asks for, or CampaignRuleBroken on publish_at."""
    if command.intent not in INTENTS:
        raise CampaignRuleBroken("intent", f"unknown intent {command.intent!r}")
    if command.intent == SCHEDULE:
        if command.publish_at is None or command.publish_at <= now:
            raise CampaignRuleBroken("publish_at", "a post is scheduled for a later moment")
        return command.publish_at
    if command.intent == DRAFT and command.publish_at is not None:
        raise CampaignRuleBroken("publish_at", "a draft has no publication date")
    return None  # a draft has none; a post published now is not scheduled


def save_news_post(command: SaveNewsPost, uow: UnitOfWork) -> NewsPost:
    """Keep, schedule or publish a post from the editor, in one transaction: a post published
    now is announced through the outbox as write_news_post announces it. Returns the post as
    stored."""
    now = datetime.now(UTC)
    campaign = require_campaign(uow, command.slug).open_for_changes()
    publish_at = _date_for(command, now)
    if command.post_id is None:
        post = NewsPost(
            id=str(uuid.uuid4()),
            campaign_id=campaign.id,
            title=command.title,
            body_markdown=command.body_markdown,
            locale=command.locale,
            created_at=now,
            publish_at=publish_at,
        )
        uow.news.add(post)
    else:
        # Locked: the worker publishing a scheduled post waits, or has published it already.
        found = uow.news.get(command.post_id, lock=True)
        if found is None or found.campaign_id != campaign.id:
            raise UnknownNewsPost(command.post_id)
        post = found.revised(command.title, command.body_markdown, command.locale, publish_at)
        uow.news.revise(post)
    if command.intent == PUBLISH:
        _publish(uow, post.id, command.public_url, now)
    stored = uow.news.get(post.id)
    assert stored is not None
    return stored


def _publish(uow: UnitOfWork, post_id: str, public_url: str, when: datetime) -> bool:
    """Publish a post once (a second worker finds it done) and announce it."""
    post = uow.news.get(post_id, lock=True)
    if post is None or post.published_at is not None:
        return False
    published = post.published(when)
    uow.news.save(published)
    campaign = uow.campaigns.get(post.campaign_id)
    assert campaign is not None  # posts reference campaigns by foreign key
    announce_post(uow, campaign, published, post_url(public_url, campaign.slug, post.id))
    return True


def publish_due_posts(public_url: str, uow: UnitOfWork) -> int:
    """Publish the scheduled news posts whose time has come; return how many."""
    now = datetime.now(UTC)
    return sum(1 for post_id in uow.news.due(now) if _publish(uow, post_id, public_url, now))
