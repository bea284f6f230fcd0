"""POST /api/v1/finance/resync against stripe-mock and PostgreSQL: the ledger CLI's re-sync as
a finance action (consumer.resync, shared with the CLI), idempotent, answering what it booked
and what needs a person. stripe-mock's fixtures are test_reconciliation.py's: any payout id is
echoed (11.00 USD settling the fixture charge), and the one balance transaction it lists is a
charge without donation metadata."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from services.ledger import cli, views
from services.ledger.app import create_app
from services.ledger.config import Settings
from services.ledger.consumer import build_consumer
from services.shared.envelope import new_event
from services.shared.events import CAMPAIGN_PUBLISHED
from tests.integration.ledger.test_reconciliation import FIXTURE_CHARGE, FIXTURE_TXN, gift

pytestmark = pytest.mark.integration

FINANCE = {"Authorization": "Bearer test-finance"}
ADMIN = {"Authorization": "Bearer test-admin"}
URL = "/api/v1/finance/resync"


def settings_for(database_url: str, stripe_api_base: str) -> Settings:
    return Settings(
        database_url,
        "127.0.0.1:1",
        "ledger",
        api_tokens="test-finance:finance,test-admin:admin",
        stripe_api_base=stripe_api_base,
    )


@pytest.fixture
def client(engine: Engine, database_url: str, stripe_mock_url: str) -> FlaskClient:
    return create_app(settings_for(database_url, stripe_mock_url)).test_client()


def test_resync_of_a_missed_payout_books_it_once_however_often_it_is_asked(
    client: FlaskClient, engine: Engine
) -> None:
    ledger = build_consumer(engine, "127.0.0.1:1", "ledger", None)  # type: ignore[arg-type]
    published = new_event(
        CAMPAIGN_PUBLISHED,
        "difts/donations",
        {
            "campaign_id": "c-usd",
            "slug": "usd-cantines",
            "title": "Cantines (USD)",
            "cause": "Canteens",
            "currency": "USD",
            "meal_price": 1000,
            "goal_meals": 100,
        },
    )
    for event in (published, gift("d-fixture", FIXTURE_CHARGE, FIXTURE_TXN, 100, 0)):
        assert ledger.apply(event.to_json().encode()).status == "applied"

    first = client.post(URL, json={"payout": "po_missed"}, headers=FINANCE)
    again = client.post(URL, json={"payout": "po_missed"}, headers=FINANCE)

    assert first.status_code == again.status_code == 200, first.get_json()
    assert first.get_json()["booked"] == ["po_missed"]
    assert first.get_json()["stripe_movements"] >= 1
    assert again.get_json()["booked"] == []
    assert again.get_json()["already_booked"] == ["po_missed"]
    with engine.connect() as conn:
        entries = views.journal(conn, stripe_id="po_missed", limit=None)
    assert [entry["kind"] for entry in entries] == ["payout"]
    assert entries[0]["lines"][0]["amount"] == 1100


def test_resync_of_a_period_says_what_it_could_not_book_and_why(
    client: FlaskClient, engine: Engine
) -> None:
    body = {"since": "2009-02-01T00:00:00Z", "until": "2009-03-01T00:00:00Z"}

    answer = client.post(URL, json=body, headers=FINANCE)
    again = client.post(URL, json=body, headers=FINANCE)

    assert answer.status_code == 200, answer.get_json()
    found = answer.get_json()
    assert (found["stripe_movements"], found["missing_from_ledger"]) == (1, 1)
    assert found["booked"] == []
    [person] = found["needs_a_person"]
    assert person["balance_transaction"] == FIXTURE_TXN
    assert "metadata" in person["reason"]
    assert again.get_json() == found
    with engine.connect() as conn:
        assert views.journal(conn, limit=None) == []


def test_resync_wants_the_finance_role_and_a_payout_or_a_period(client: FlaskClient) -> None:
    assert client.post(URL, json={"payout": "po_1"}).status_code == 401
    assert client.post(URL, json={"payout": "po_1"}, headers=ADMIN).status_code == 403
    for body, field in (
        ({}, "since"),
        ({"since": "2009-02-01T00:00:00Z"}, "until"),
        ({"payout": "po_1", "since": "2009-02-01T00:00:00Z"}, "payout"),
        ({"since": "2009-03-01T00:00:00Z", "until": "2009-02-01T00:00:00Z"}, "until"),
        ({"payout": "tr_1"}, "payout"),
    ):
        refused = client.post(URL, json=body, headers=FINANCE)
        assert refused.status_code == 422, body
        assert field in refused.get_json()["errors"]["json"], body


def test_resync_answers_502_and_books_nothing_when_stripe_cannot_be_asked(
    engine: Engine, database_url: str
) -> None:
    unreachable = create_app(settings_for(database_url, "http://127.0.0.1:9")).test_client()

    answer = unreachable.post(URL, json={"payout": "po_missed"}, headers=FINANCE)

    assert answer.status_code == 502
    assert "Stripe" in answer.get_json()["message"]
    with engine.connect() as conn:
        assert views.journal(conn, limit=None) == []


def test_the_cli_resync_books_through_the_same_shared_path(
    engine: Engine,
    database_url: str,
    stripe_mock_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("STRIPE_API_BASE", stripe_mock_url)

    cli.main(["resync", "--payout", "po_from_cli"])
    first = json.loads(capsys.readouterr().out)
    cli.main(["resync", "--payout", "po_from_cli"])
    again = json.loads(capsys.readouterr().out)

    assert first["booked"] == ["po_from_cli"]
    assert (again["booked"], again["already_booked"]) == ([], ["po_from_cli"])
