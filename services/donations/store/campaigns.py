"""Campaigns (with the meal price in force), their news posts, and the ledger's count of each
campaign's meals funded, on the unit of work's transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from services.shared.db import insert_if_absent
from services.shared.money import Money

from ..domain.campaigns import (
    CAMPAIGN_FIELDS,
    TRANSLATED_FIELDS,
    Campaign,
    CampaignStatus,
    CampaignTexts,
    MealPriceChange,
    NewsPost,
)
from .rows import by_id, columns, record
from .tables import campaign_meals, campaign_texts, campaigns, meal_price_changes, news_posts

# What a campaign manager's edits and the campaign's life change (a draft's meal price and
# currency aside); what the money is used for is kept as a JSON list.
CHANGEABLE = (
    *(name for name in CAMPAIGN_FIELDS if name != "money_uses"),
    "status",
    "published_at",
    "closed_at",
)


def meal_price_at(conn: Connection, campaign_id: str, at: datetime) -> int | None:
    """The meal price a change set in force by `at` (the latest), if any did."""
    changes = meal_price_changes.c
    price = conn.execute(
        select(changes.meal_price)
        .where(changes.campaign_id == campaign_id, changes.effective_from <= at)
        .order_by(changes.effective_from.desc(), changes.created_at.desc())
        .limit(1)
    ).scalar()
    return int(price) if price is not None else None


def campaign_of(conn: Connection, row: Any) -> Campaign:
    """A campaign row as the domain's Campaign, priced with the meal price in force now."""
    price = meal_price_at(conn, row.id, datetime.now(UTC))
    return record(
        row,
        Campaign,
        meal_price=Money(price if price is not None else row.meal_price, row.currency),
        status=CampaignStatus(row.status),
        money_uses=tuple(json.loads(row.money_uses)),
        translations=translations_of(conn, row.id),
    )


def translations_of(conn: Connection, campaign_id: str) -> dict[str, CampaignTexts]:
    """A campaign's texts per language, as written for each."""
    rows = conn.execute(select(campaign_texts).where(campaign_texts.c.campaign_id == campaign_id))
    return {
        row.locale: record(row, CampaignTexts, money_uses=tuple(json.loads(row.money_uses)))
        for row in rows
    }


def _write_translations(conn: Connection, campaign: Campaign) -> None:
    """Replace a campaign's texts per language with those it has now."""
    texts = campaign_texts.c
    conn.execute(delete(campaign_texts).where(texts.campaign_id == campaign.id))
    for locale, written in sorted(campaign.translations.items()):
        values = {**columns(written, *TRANSLATED_FIELDS)}
        values["money_uses"] = json.dumps(list(written.money_uses))
        conn.execute(
            campaign_texts.insert().values(campaign_id=campaign.id, locale=locale, **values)
        )


def _changeable(campaign: Campaign) -> dict[str, Any]:
    return {**columns(campaign, *CHANGEABLE), "money_uses": json.dumps(list(campaign.money_uses))}


def _price(campaign: Campaign) -> dict[str, Any]:
    price = campaign.meal_price
    return {"meal_price": price.amount, "currency": price.currency}


class Campaigns:
    """The campaigns, by id or slug, and the changes of their meal price."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, campaign_id: str) -> Campaign | None:
        """The campaign with this id, if any."""
        row = by_id(self.conn, campaigns, campaign_id)
        return campaign_of(self.conn, row) if row is not None else None

    def by_slug(self, slug: str) -> Campaign | None:
        """The campaign with this slug, if any."""
        row = self.conn.execute(select(campaigns).where(campaigns.c.slug == slug)).first()
        return campaign_of(self.conn, row) if row is not None else None

    def add(self, campaign: Campaign) -> None:
        """Store a new campaign."""
        values = {**columns(campaign, "id", "slug", "created_at"), **_price(campaign)}
        self.conn.execute(campaigns.insert().values(**values, **_changeable(campaign)))
        _write_translations(self.conn, campaign)

    def save(self, campaign: Campaign) -> None:
        """Write a campaign's texts and state. The stored meal price is a draft's: a live
        campaign's changes from a date on (meal_price_changes), so it is written for drafts
        only, and a campaign's currency is a draft's to change."""
        values = _changeable(campaign)
        if campaign.status is CampaignStatus.DRAFT:
            values.update(_price(campaign))
        self.conn.execute(update(campaigns).where(campaigns.c.id == campaign.id).values(**values))
        _write_translations(self.conn, campaign)

    def meal_price_at(self, campaign_id: str, at: datetime) -> int | None:
        """The meal price a change set in force by `at`, if any did."""
        return meal_price_at(self.conn, campaign_id, at)

    def add_meal_price_change(self, change: MealPriceChange) -> None:
        """Store a live campaign's meal price from a date on."""
        self.conn.execute(meal_price_changes.insert().values(**columns(change)))


class NewsPosts:
    """The campaigns' news posts."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, post_id: str, lock: bool = False) -> NewsPost | None:
        """The post, if any; `lock` holds it until the transaction ends (one publisher)."""
        row = by_id(self.conn, news_posts, post_id, lock)
        return record(row, NewsPost) if row is not None else None

    def by_seed_key(self, seed_key: str) -> NewsPost | None:
        """The post seed-demo wrote under this key, if any."""
        query = select(news_posts).where(news_posts.c.seed_key == seed_key)
        row = self.conn.execute(query).first()
        return record(row, NewsPost) if row is not None else None

    def add(self, post: NewsPost) -> None:
        """Store a new post."""
        self.conn.execute(news_posts.insert().values(**columns(post)))

    def save(self, post: NewsPost) -> None:
        """Write when a post was published."""
        published = columns(post, "published_at")
        self.conn.execute(update(news_posts).where(news_posts.c.id == post.id).values(**published))

    def revise(self, post: NewsPost) -> None:
        """Write a post's new text, language and date (only while it is not published)."""
        revised = columns(post, "title", "body_markdown", "locale", "publish_at")
        posts = news_posts.c
        self.conn.execute(
            update(news_posts)
            .where(posts.id == post.id, posts.published_at.is_(None))
            .values(**revised)
        )

    def due(self, now: datetime, limit: int = 100) -> list[str]:
        """The scheduled posts not published yet whose time has come, soonest first."""
        posts = news_posts.c
        query = (
            select(posts.id)
            .where(posts.published_at.is_(None), posts.publish_at.is_not(None))
            .where(posts.publish_at <= now)
            .order_by(posts.publish_at)
            .limit(limit)
        )
        return list(self.conn.execute(query).scalars())


class CampaignMeals:
    """The ledger's count of meals funded per campaign (its meals_funded events)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record(self, campaign_id: str, meals_funded: int, now: datetime) -> None:
        """Keep a campaign's latest count."""
        counted = {"meals_funded": meals_funded, "updated_at": now}
        row = {"campaign_id": campaign_id, **counted}
        if not insert_if_absent(self.conn, campaign_meals, row, key="campaign_id"):
            self.conn.execute(
                update(campaign_meals)
                .where(campaign_meals.c.campaign_id == campaign_id)
                .values(**counted)
            )
