"""Signing in to the back office on PostgreSQL: the sign-in form, the session cookie's
attributes, the role each page needs (401 with the form, 403 with a page), CSRF on the form,
the failed attempts limit, and signing out ending the session even for a copied cookie."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.donations import store
from services.donations.app import create_app
from services.donations.backoffice.auth import role_required
from services.shared.db import make_engine, upgrade
from tests.support.backoffice import PASSWORD, add_account, csrf_token, sign_in
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def office(database_url: str, stripe_mock_url: str) -> Iterator[dict[str, Any]]:
    upgrade(database_url, DONATIONS_MIGRATIONS)
    engine = make_engine(database_url)
    add_account(engine, "manager@example.org", "admin", name="Camille Manager")
    add_account(engine, "books@example.org", "finance", name="Dominique Books")
    app = create_app(donations_settings(database_url, stripe_mock_url))
    # A page only campaign managers may open, to see another role refused.
    app.add_url_rule(
        "/backoffice/test-only-admin",
        "test_only_admin",
        role_required("admin")(lambda: "for campaign managers"),
    )
    yield {"app": app, "engine": engine}
    engine.dispose()


def client_of(office: dict[str, Any]) -> FlaskClient:
    """A browser that prefers English (the texts asserted below)."""
    client = office["app"].test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_a_page_without_a_session_answers_401_with_the_sign_in_form(
    office: dict[str, Any],
) -> None:
    page = client_of(office).get("/backoffice/")
    assert page.status_code == 401
    assert 'name="password"' in page.text and 'name="next" type="hidden" value="/backoffice/"' in (
        page.text
    )
    assert page.headers["Cache-Control"] == "no-store"


def test_signing_in_opens_a_session_with_a_safe_cookie_and_goes_where_asked(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    form = client.get("/backoffice/sign-in?next=/backoffice/")
    answer = client.post(
        "/backoffice/sign-in",
        data={
            "csrf_token": csrf_token(form.text),
            "email": "  Manager@Example.org ",
            "password": PASSWORD,
            "next": "/backoffice/",
        },
    )
    assert answer.status_code == 303 and answer.headers["Location"] == "/backoffice/"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" in cookie  # http://donations.test is not this machine: Secure
    home = client.get("/backoffice/")
    assert home.status_code == 200 and "Camille Manager" in home.text


def test_the_cookie_is_secure_outside_development(database_url: str, stripe_mock_url: str) -> None:
    upgrade(database_url, DONATIONS_MIGRATIONS)
    engine = make_engine(database_url)
    add_account(engine, "manager@example.org", "admin")
    app = create_app(
        donations_settings(database_url, stripe_mock_url, public_url="https://difts.example")
    )
    answer = sign_in(app.test_client(), "manager@example.org")
    assert answer.status_code == 303 and "Secure" in answer.headers["Set-Cookie"]
    local = create_app(
        donations_settings(database_url, stripe_mock_url, public_url="http://127.0.0.1:8001")
    )
    assert "Secure" not in sign_in(local.test_client(), "manager@example.org").headers["Set-Cookie"]
    engine.dispose()


def test_next_never_leads_to_another_site(office: dict[str, Any]) -> None:
    for target in ("https://evil.example/", "//evil.example/backoffice", "/\\evil.example"):
        client = client_of(office)
        form = client.get("/backoffice/sign-in")
        answer = client.post(
            "/backoffice/sign-in",
            data={
                "csrf_token": csrf_token(form.text),
                "email": "manager@example.org",
                "password": PASSWORD,
                "next": target,
            },
        )
        assert answer.headers["Location"] == "/backoffice/", target


def test_a_wrong_password_or_email_says_neither_and_keeps_the_email(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    wrong_password = sign_in(client, "manager@example.org", "not-the-password")
    unknown = sign_in(client, "nobody@example.org", "not-the-password")
    for answer in (wrong_password, unknown):
        assert answer.status_code == 401
        assert "do not match an account" in answer.text
    assert 'value="manager@example.org"' in wrong_password.text
    assert client.get("/backoffice/").status_code == 401


def test_an_empty_field_is_named_next_to_it(office: dict[str, Any]) -> None:
    client = client_of(office)
    answer = sign_in(client, "manager@example.org", "")
    assert answer.status_code == 422
    assert 'id="password-error"' in answer.text and 'aria-invalid="true"' in answer.text
    assert 'value="manager@example.org"' in answer.text


def test_the_form_without_its_csrf_token_is_refused_and_signs_nobody_in(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    client.get("/backoffice/sign-in")
    answer = client.post(
        "/backoffice/sign-in", data={"email": "manager@example.org", "password": PASSWORD}
    )
    assert answer.status_code == 400 and "expired" in answer.text
    assert client.get("/backoffice/").status_code == 401


def test_repeated_failures_are_refused_for_a_while_even_with_the_right_password(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    for _ in range(5):
        assert sign_in(client, "books@example.org", "guess-guess-guess").status_code == 401
    refused = sign_in(client, "books@example.org", PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in refused.text
    # Another person is not locked out by someone guessing at books@.
    assert sign_in(client_of(office), "manager@example.org").status_code == 303


def test_each_role_sees_its_own_pages_and_is_refused_the_others(office: dict[str, Any]) -> None:
    finance = client_of(office)
    assert sign_in(finance, "books@example.org").status_code == 303
    assert finance.get("/backoffice/").status_code == 200
    refused = finance.get("/backoffice/test-only-admin")
    assert refused.status_code == 403
    assert "campaign manager" in refused.text


def test_signing_out_ends_the_session_even_for_a_copied_cookie(office: dict[str, Any]) -> None:
    client = client_of(office)
    assert sign_in(client, "manager@example.org").status_code == 303
    cookie = client.get_cookie("session")
    assert cookie is not None
    home = client.get("/backoffice/")
    out = client.post("/backoffice/sign-out", data={"csrf_token": csrf_token(home.text)})
    assert out.status_code == 303
    assert client.get("/backoffice/").status_code == 401
    copied = client_of(office)
    copied.set_cookie("session", cookie.value)
    assert copied.get("/backoffice/").status_code == 401
    with office["engine"].connect() as conn:
        sessions = conn.execute(select(func.count()).select_from(store.tables.backoffice_sessions))
        assert sessions.scalar_one() == 0
