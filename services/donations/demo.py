"""The demo campaign that `make run` seeds: Les Petites Cantines, 13.50 EUR a meal."""

from __future__ import annotations

from sqlalchemy import Engine

from services.shared.money import Money

from .handlers import publish_campaign

SLUG = "petites-cantines"
TITLE = "Participatory neighbourhood canteens to (re)connect people"
CAUSE = "Les Petites Cantines"
SUMMARY = (
    "In each Petite Cantine, neighbours cook and share a meal together and everyone pays what "
    "they can. A Canteen Manager makes sure each person feels welcome. Every 13.50 EUR you "
    "give funds one meal and helps the network open and strengthen canteens."
)
MEAL_PRICE = Money(1350, "EUR")
GOAL_MEALS = 2000


def seed_demo_campaign(engine: Engine) -> tuple[str, bool]:
    """Create and announce the demo campaign unless it exists; return (id, created)."""
    return publish_campaign(
        engine,
        slug=SLUG,
        title=TITLE,
        cause=CAUSE,
        summary=SUMMARY,
        meal_price=MEAL_PRICE,
        goal_meals=GOAL_MEALS,
    )
