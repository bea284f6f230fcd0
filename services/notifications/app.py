"""The notifications service's Flask app: `gunicorn 'services.notifications.app:create_app()'`."""

from __future__ import annotations

from flask import Flask

from services.shared.web import service_app

from .api import api
from .config import Settings
from .pages import pages


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from `settings` (default: the environment)."""
    settings = settings or Settings.from_env()
    app, _context = service_app("notifications", settings, settings.tokens(), (api,))
    app.register_blueprint(pages)
    return app
