"""The ledger service's Flask app: `gunicorn 'services.ledger.app:create_app()'`."""

from __future__ import annotations

from flask import Flask

from services.shared.web import service_app

from .api import api, finance
from .config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from `settings` (default: the environment)."""
    settings = settings or Settings.from_env()
    app, _context = service_app("ledger", settings, settings.tokens(), (api, finance))
    return app
