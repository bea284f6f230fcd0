"""Reads for the HTTP API, straight from the tables: no domain objects on the way out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from .store import campaign_totals, campaigns


def campaign_summary(conn: Connection, slug: str) -> dict[str, Any] | None:
    """A campaign's money and meals in minor units, or None for a slug the ledger does not
    know."""
    row = conn.execute(
        select(
            campaigns.c.slug.label("campaign"),
            campaigns.c.campaign_id,
            campaigns.c.title,
            campaign_totals.c.currency,
            campaigns.c.meal_price,
            campaigns.c.goal_meals,
            campaign_totals.c.donated,
            campaign_totals.c.refunded,
            campaign_totals.c.donations,
            campaign_totals.c.meals_funded,
            campaign_totals.c.remainder,
        )
        .join(campaign_totals, campaign_totals.c.campaign_id == campaigns.c.campaign_id)
        .where(campaigns.c.slug == slug)
    ).first()
    return dict(row._mapping) if row is not None else None
