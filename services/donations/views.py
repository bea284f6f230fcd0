"""Reads for the API and the donor pages, straight from the database (no handler, no
domain rules): campaigns as donors see them, with the ledger's count of meals funded and the
company difts they received, news posts, the messages donors allowed to be shown, donations by
their unguessable id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, distinct, func, select

from . import store
from .config import Settings
from .domain.campaigns import Campaign, CampaignStatus, post_url
from .domain.donations import Donation, DonationStatus
from .markdown_text import render_markdown


def campaign(conn: Connection, slug: str) -> Campaign | None:
    """The campaign with this slug, with the meal price in force, if any."""
    return store.Campaigns(conn).by_slug(slug)


def campaign_by_id(conn: Connection, campaign_id: str) -> Campaign | None:
    """The campaign with this id, with the meal price in force, if any."""
    return store.Campaigns(conn).get(campaign_id)


def live_campaigns(conn: Connection) -> list[Any]:
    """The campaigns taking gifts."""
    return list(
        conn.execute(
            store.campaigns.select().where(store.campaigns.c.status == CampaignStatus.LIVE.value)
        ).all()
    )


def all_campaigns(conn: Connection) -> list[Any]:
    """Every campaign (drafts, live, closed), by title, for the back office."""
    rows = store.campaigns
    return list(conn.execute(rows.select().order_by(rows.c.title)).all())


def campaigns_with_meals(conn: Connection) -> list[Any]:
    """Every campaign for the campaign managers' list, newest first, with the ledger's count
    of its meals funded (`meals_funded`, 0 before its first event)."""
    campaigns, meals = store.campaigns, store.campaign_meals
    return list(
        conn.execute(
            select(
                campaigns.c.slug,
                campaigns.c.title,
                campaigns.c.status,
                func.coalesce(meals.c.meals_funded, 0).label("meals_funded"),
            )
            .select_from(campaigns.outerjoin(meals, meals.c.campaign_id == campaigns.c.id))
            .order_by(campaigns.c.created_at.desc(), campaigns.c.slug)
        ).all()
    )


def meal_price_history(conn: Connection, campaign_id: str) -> list[Any]:
    """A campaign's meal price changes, the latest to take effect first."""
    changes = store.meal_price_changes
    return list(
        conn.execute(
            select(changes)
            .where(changes.c.campaign_id == campaign_id)
            .order_by(changes.c.effective_from.desc(), changes.c.created_at.desc())
        ).all()
    )


def meals_funded(conn: Connection, campaign_id: str) -> int:
    """The ledger's latest count of meals funded for a campaign (0 before its first event)."""
    value = conn.execute(
        select(store.campaign_meals.c.meals_funded).where(
            store.campaign_meals.c.campaign_id == campaign_id
        )
    ).scalar()
    return int(value or 0)


def difts_received(conn: Connection, campaign_id: str) -> int:
    """How many company difts went to a campaign, directed by their recipients or by an
    expiry's fallback (the page's "already funded N difts")."""
    allocations = store.dift_allocations.c
    return int(
        conn.execute(
            select(func.count(distinct(allocations.dift_id))).where(
                allocations.campaign_id == campaign_id
            )
        ).scalar_one()
    )


def giving_options(settings: Settings, campaign: Campaign) -> dict[str, Any]:
    """What the donation form offers: presets, limits and the fee estimate's terms."""
    return {
        "preset_meals": list(settings.preset_meals),
        "min_amount": settings.min_amount,
        "max_amount": settings.max_amount,
        "fee_percent_bp": settings.fee_percent_bp,
        "fee_fixed": settings.fee_fixed,
        "message_max_length": settings.message_max_length,
        "currency": campaign.meal_price.currency,
    }


def campaign_view(
    conn: Connection, campaign: Campaign, settings: Settings, locale: str | None = None
) -> dict[str, Any]:
    """A campaign as the API and the pages show it: its default texts, or with `locale` (a
    donor page's language) the texts written for that language, each falling back to the
    default one; `translations` has what was written for each language."""
    texts = campaign.texts_in(locale) if locale else campaign
    return {
        "id": campaign.id,
        "slug": campaign.slug,
        "title": texts.title,
        "cause": campaign.cause,
        "cause_certified": campaign.cause_certified,
        "action_zone": campaign.action_zone,
        "summary": texts.summary,
        "story_markdown": texts.story_markdown,
        "story_html": render_markdown(texts.story_markdown),
        "money_uses": list(texts.money_uses),
        "translations": {
            language: {
                "title": written.title,
                "summary": written.summary,
                "story_markdown": written.story_markdown,
                "money_uses": list(written.money_uses),
            }
            for language, written in sorted(campaign.translations.items())
        },
        "currency": campaign.meal_price.currency,
        "meal_price": campaign.meal_price.amount,
        "goal_meals": campaign.goal_meals,
        "status": campaign.status.value,
        "meals_funded": meals_funded(conn, campaign.id),
        "difts_received": difts_received(conn, campaign.id),
        "giving": giving_options(settings, campaign),
    }


def published_posts(conn: Connection, campaign_id: str, limit: int = 50) -> list[Any]:
    """A campaign's published news posts, newest first."""
    posts = store.news_posts
    return list(
        conn.execute(
            select(posts)
            .where(posts.c.campaign_id == campaign_id, posts.c.published_at.is_not(None))
            .order_by(posts.c.published_at.desc())
            .limit(limit)
        ).all()
    )


def campaign_posts(conn: Connection, campaign_id: str, limit: int = 200) -> list[Any]:
    """Every news post of a campaign for its manager (drafts, scheduled, published), the
    latest written first."""
    posts = store.news_posts
    return list(
        conn.execute(
            select(posts)
            .where(posts.c.campaign_id == campaign_id)
            .order_by(posts.c.created_at.desc())
            .limit(limit)
        ).all()
    )


def post(conn: Connection, post_id: str) -> Any | None:
    """The stored news post, if any."""
    return conn.execute(select(store.news_posts).where(store.news_posts.c.id == post_id)).first()


def post_view(post: Any, campaign_slug: str, public_url: str) -> dict[str, Any]:
    """A news post (a stored row or the domain's NewsPost) as the API shows it."""
    return {
        "id": post.id,
        "campaign": campaign_slug,
        "title": post.title,
        "body_markdown": post.body_markdown,
        "body_html": render_markdown(post.body_markdown),
        "locale": post.locale,
        "publish_at": post.publish_at,
        "published_at": post.published_at,
        "url": post_url(public_url, campaign_slug, post.id),
    }


def public_messages(conn: Connection, campaign_id: str, limit: int = 20) -> list[Any]:
    """Messages that donors of paid gifts allowed to be shown, newest first."""
    donations = store.donations
    return list(
        conn.execute(
            select(
                donations.c.donor_name,
                donations.c.anonymous,
                donations.c.public_message,
                donations.c.succeeded_at,
            )
            .where(
                donations.c.campaign_id == campaign_id,
                donations.c.show_message.is_(True),
                donations.c.public_message.is_not(None),
                donations.c.status == DonationStatus.SUCCEEDED.value,
            )
            .order_by(donations.c.succeeded_at.desc())
            .limit(limit)
        ).all()
    )


def donation(conn: Connection, donation_id: str) -> Any | None:
    """The stored donation, with its campaign's slug (`campaign`), if any."""
    donations, campaigns = store.donations, store.campaigns
    return conn.execute(
        select(donations, campaigns.c.slug.label("campaign"))
        .join(campaigns, campaigns.c.id == donations.c.campaign_id)
        .where(donations.c.id == donation_id)
    ).first()


def donation_answer(donation: Donation, campaign_slug: str) -> dict[str, Any]:
    """A donation as the API answers its donor: its status, what they pay, the meals the form
    priced it at, and where they pay."""
    return {
        "id": donation.id,
        "campaign": campaign_slug,
        "status": donation.status.value,
        "amount": donation.amount.amount,
        "currency": donation.currency,
        "meals": donation.priced_meals,
        "fee_covered": donation.fee_covered.amount,
        "checkout_url": donation.checkout_url,
    }
