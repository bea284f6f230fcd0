"""Campaigns (with the meal price in force), their news posts, and the ledger's count of each
campaign's meals funded, on the unit of work's transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from services.shared.db import as_utc, insert_if_absent
from services.shared.money import Money

from ..domain import Campaign, CampaignStatus, MealPriceChange, NewsPost
from .rows import by_id, moment
from .tables import campaign_meals, campaigns, meal_price_changes, news_posts


def meal_price_at(conn: Connection, campaign_id: str, at: datetime) -> int | None:
    """The meal price a change set in force by `at` (the latest), if any did."""
    price = conn.execute(
        select(meal_price_changes.c.meal_price)
        .where(
            meal_price_changes.c.campaign_id == campaign_id,
            meal_price_changes.c.effective_from <= at,
        )
        .order_by(
            meal_price_changes.c.effective_from.desc(), meal_price_changes.c.created_at.desc()
        )
        .limit(1)
    ).scalar()
    return int(price) if price is not None else None


def campaign_of(conn: Connection, row: Any) -> Campaign:
    """A campaign row as the domain's Campaign, priced with the meal price in force now."""
    price = meal_price_at(conn, row.id, datetime.now(UTC))
    return Campaign(
        id=row.id,
        slug=row.slug,
        title=row.title,
        cause=row.cause,
        meal_price=Money(price if price is not None else row.meal_price, row.currency),
        goal_meals=row.goal_meals,
        status=CampaignStatus(row.status),
        cause_certified=bool(row.cause_certified),
        action_zone=row.action_zone or "",
        summary=row.summary or "",
        story_markdown=row.story_markdown or "",
        money_uses=tuple(json.loads(row.money_uses or "[]")),
        created_at=moment(row.created_at),
        published_at=moment(row.published_at),
        closed_at=moment(row.closed_at),
    )


def _changeable(campaign: Campaign) -> dict[str, Any]:
    """The columns a campaign manager's edits and the campaign's life change."""
    return {
        "title": campaign.title,
        "cause": campaign.cause,
        "cause_certified": campaign.cause_certified,
        "action_zone": campaign.action_zone,
        "summary": campaign.summary,
        "story_markdown": campaign.story_markdown,
        "money_uses": json.dumps(list(campaign.money_uses)),
        "goal_meals": campaign.goal_meals,
        "status": campaign.status.value,
        "published_at": campaign.published_at,
        "closed_at": campaign.closed_at,
    }


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
        self.conn.execute(
            campaigns.insert().values(
                id=campaign.id,
                slug=campaign.slug,
                currency=campaign.meal_price.currency,
                meal_price=campaign.meal_price.amount,
                created_at=campaign.created_at,
                **_changeable(campaign),
            )
        )

    def save(self, campaign: Campaign) -> None:
        """Write a campaign's texts and state. The stored meal price is a draft's: a live
        campaign's changes from a date on (meal_price_changes), so it is written for drafts
        only, and a campaign's currency is a draft's to change."""
        values = _changeable(campaign)
        if campaign.status is CampaignStatus.DRAFT:
            price = campaign.meal_price
            values.update(meal_price=price.amount, currency=price.currency)
        self.conn.execute(update(campaigns).where(campaigns.c.id == campaign.id).values(**values))

    def meal_price_at(self, campaign_id: str, at: datetime) -> int | None:
        """The meal price a change set in force by `at`, if any did."""
        return meal_price_at(self.conn, campaign_id, at)

    def add_meal_price_change(self, change: MealPriceChange) -> None:
        """Store a live campaign's meal price from a date on."""
        self.conn.execute(
            meal_price_changes.insert().values(
                id=change.id,
                campaign_id=change.campaign_id,
                meal_price=change.meal_price.amount,
                previous_meal_price=change.previous,
                effective_from=change.effective_from,
                created_at=change.created_at,
            )
        )


def _post(row: Any) -> NewsPost:
    return NewsPost(
        id=row.id,
        campaign_id=row.campaign_id,
        title=row.title,
        body_markdown=row.body_markdown,
        locale=row.locale,
        created_at=as_utc(row.created_at),
        publish_at=moment(row.publish_at),
        published_at=moment(row.published_at),
        seed_key=row.seed_key,
    )


class NewsPosts:
    """The campaigns' news posts."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, post_id: str, lock: bool = False) -> NewsPost | None:
        """The post, if any; `lock` holds it until the transaction ends (one publisher)."""
        row = by_id(self.conn, news_posts, post_id, lock)
        return _post(row) if row is not None else None

    def by_seed_key(self, seed_key: str) -> NewsPost | None:
        """The post seed-demo wrote under this key, if any."""
        row = self.conn.execute(select(news_posts).where(news_posts.c.seed_key == seed_key)).first()
        return _post(row) if row is not None else None

    def add(self, post: NewsPost) -> None:
        """Store a new post."""
        self.conn.execute(
            news_posts.insert().values(
                id=post.id,
                campaign_id=post.campaign_id,
                title=post.title,
                body_markdown=post.body_markdown,
                locale=post.locale,
                publish_at=post.publish_at,
                published_at=post.published_at,
                created_at=post.created_at,
                seed_key=post.seed_key,
            )
        )

    def save(self, post: NewsPost) -> None:
        """Write when a post was published."""
        self.conn.execute(
            update(news_posts)
            .where(news_posts.c.id == post.id)
            .values(published_at=post.published_at)
        )

    def due(self, now: datetime, limit: int = 100) -> list[str]:
        """The scheduled posts not published yet whose time has come, soonest first."""
        return list(
            self.conn.execute(
                select(news_posts.c.id)
                .where(
                    news_posts.c.published_at.is_(None),
                    news_posts.c.publish_at.is_not(None),
                    news_posts.c.publish_at <= now,
                )
                .order_by(news_posts.c.publish_at)
                .limit(limit)
            ).scalars()
        )


class CampaignMeals:
    """The ledger's count of meals funded per campaign (its meals_funded events)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record(self, campaign_id: str, meals_funded: int, now: datetime) -> None:
        """Keep a campaign's latest count."""
        row = {"campaign_id": campaign_id, "meals_funded": meals_funded, "updated_at": now}
        if not insert_if_absent(self.conn, campaign_meals, row, key="campaign_id"):
            self.conn.execute(
                update(campaign_meals)
                .where(campaign_meals.c.campaign_id == campaign_id)
                .values(meals_funded=meals_funded, updated_at=now)
            )
