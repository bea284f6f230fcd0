"""The donations service's Flask app: `gunicorn 'services.donations.app:create_app()'`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import Engine

from services.shared.db import make_engine, ping
from services.shared.kafka import broker_reachable
from services.shared.web import create_service_app

from .api import api, webhooks
from .config import Settings
from .domain import GiftLimits
from .payments import StripeCheckout


@dataclass
class DonationsService:
    """What the request handlers need: settings, the database, Stripe."""

    settings: Settings
    engine: Engine
    checkout: StripeCheckout
    limits: GiftLimits


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from `settings` (default: the environment)."""
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url)

    def broker() -> None:
        if not broker_reachable(settings.kafka_bootstrap_servers):
            raise ConnectionError("Kafka unreachable")

    app, rest = create_service_app(
        "donations", "difts donations", checks={"database": lambda: ping(engine), "broker": broker}
    )
    app.extensions["donations"] = DonationsService(
        settings=settings,
        engine=engine,
        checkout=StripeCheckout(settings.stripe_api_key, settings.stripe_api_base or None),
        limits=GiftLimits(settings.min_amount, settings.max_amount),
    )
    rest.register_blueprint(api)
    rest.register_blueprint(webhooks)
    return app
