"""The back office as tests use it: accounts made as the CLI makes them, a test client signed
in through the sign-in form (CSRF token and all), and the donations app served over HTTP for
a browser."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.serving import make_server

from services.donations.handlers.accounts import CreateAccount, create_account
from services.donations.unit_of_work import DonationsUnitOfWork
from tests.support import infra

PASSWORD = "a-long-test-password"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def add_account(
    engine: Engine,
    email: str,
    *roles: str,
    password: str = PASSWORD,
    name: str = "",
    sponsor: str | None = None,
) -> str:
    """An account with `roles` (and the sponsor of a sponsor's contact), made as `make
    account` makes it; its id."""
    name = name or email.split("@")[0].title()
    command = CreateAccount(email, name, frozenset(roles), password, sponsor)
    return create_account(command, DonationsUnitOfWork(engine)).id


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    """Send the sign-in form as a browser would (its CSRF token first); the response."""
    page = client.get("/backoffice/sign-in")
    return client.post(
        "/backoffice/sign-in",
        data={"csrf_token": csrf_token(page.text), "email": email, "password": password},
    )


def post_form(client: FlaskClient, page_url: str, action: str, data: dict[str, Any]) -> Any:
    """Open `page_url`, then send `data` to `action` with that page's CSRF token."""
    page = client.get(page_url)
    assert page.status_code == 200, (page_url, page.status_code)
    return client.post(action, data={"csrf_token": csrf_token(page.text), **data})


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """`app` over HTTP on a free local port, in a thread; yields its base URL."""
    port = infra.free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(5)
