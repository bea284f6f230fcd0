"""The ledger service's Flask app: `gunicorn 'services.ledger.app:create_app()'`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import Engine

from services.shared.db import make_engine
from services.shared.web import create_service_app, dependency_checks

from .api import api, finance
from .config import Settings


@dataclass
class LedgerService:
    """What the request handlers need: settings and the database."""

    settings: Settings
    engine: Engine


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from `settings` (default: the environment)."""
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url)

    app, rest = create_service_app(
        "ledger",
        "difts ledger",
        checks=dependency_checks(engine, settings.kafka_bootstrap_servers),
        config={"API_TOKENS": settings.tokens()},
    )
    app.extensions["ledger"] = LedgerService(settings=settings, engine=engine)
    rest.register_blueprint(api)
    rest.register_blueprint(finance)
    return app
