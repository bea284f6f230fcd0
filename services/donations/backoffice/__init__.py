"""The back office: server-rendered pages for campaign managers (admin), finance staff
(finance) and a sponsor's contact (sponsor), behind a signed-in session (auth.py). Each area
is a module of views on the one `backoffice` blueprint; `register_backoffice` adds them all.

A page refuses a visitor without a session with 401 and the sign-in form, and a person
without the page's role with 403 and a page saying which role it needs; the JSON API keeps its
bearer tokens (services/shared/auth.py)."""

from __future__ import annotations

from flask import Flask

from .auth import backoffice, install_sessions

__all__ = ["backoffice", "register_backoffice"]


def register_backoffice(app: Flask) -> None:
    """The back office's pages and session settings on the donations app."""
    from . import (  # noqa: F401  (their views register)
        campaigns,
        finance,
        finance_books,
        home,
        news,
        news_preview,
        programmes,
    )

    install_sessions(app)
    app.register_blueprint(backoffice)
