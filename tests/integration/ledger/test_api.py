"""The ledger's API through the Flask client on PostgreSQL: the public summary stays public,
the books want a bearer token with the finance role, the journal pages with a cursor and
exports CSV, finance staff close periods and set fee policies."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from services.ledger.app import create_app
from services.ledger.config import Settings
from services.ledger.consumer import build_consumer
from services.shared.consumer import IdempotentConsumer
from tests.unit.ledger.conftest import gift, published, refund

pytestmark = pytest.mark.integration

FINANCE = {"Authorization": "Bearer test-finance"}
ADMIN = {"Authorization": "Bearer test-admin"}


@pytest.fixture
def ledger(engine: Engine) -> IdempotentConsumer:
    return build_consumer(engine, "127.0.0.1:1", "ledger", dead_letter_producer=None)  # type: ignore[arg-type]


@pytest.fixture
def client(engine: Engine, database_url: str) -> FlaskClient:
    settings = Settings(
        database_url,
        "127.0.0.1:1",
        "ledger",
        api_tokens="test-finance:finance,test-admin:admin",
    )
    return create_app(settings).test_client()


def book(ledger: IdempotentConsumer) -> None:
    events = [
        published(),
        gift("d-1", 2700, fee=64, when="2026-01-10T10:00:00+00:00"),
        gift("d-2", 1350, fee=40, when="2026-01-11T10:00:00+00:00"),
        gift("d-3", 500, fee=20, when="2026-02-01T10:00:00+00:00"),
        refund("d-2", "re_1", 350, 350),
    ]
    for event in events:
        assert ledger.apply(event.to_json().encode()).status == "applied"


def test_the_public_summary_needs_no_token_and_the_finance_summary_needs_the_finance_role(
    client: FlaskClient, ledger: IdempotentConsumer
) -> None:
    book(ledger)

    public = client.get("/api/v1/campaigns/petites-cantines/summary")
    assert public.status_code == 200
    assert (public.get_json()["donated"], public.get_json()["refunded"]) == (4550, 350)

    url = "/api/v1/finance/campaigns/petites-cantines/summary"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=ADMIN).status_code == 403
    found = client.get(url, headers=FINANCE).get_json()
    assert {k: found[k] for k in ("donated", "fees", "net", "refunded", "fund_balance")} == {
        "donated": 4550,
        "fees": 124,
        "net": 4550 - 124 - 350,
        "refunded": 350,
        "fund_balance": 4200,
    }
    assert (
        client.get("/api/v1/finance/campaigns/nobody/summary", headers=FINANCE).status_code == 404
    )


def test_the_journal_filters_and_pages_with_a_cursor(
    client: FlaskClient, ledger: IdempotentConsumer
) -> None:
    book(ledger)
    url = "/api/v1/finance/journal"

    first = client.get(url, query_string={"limit": 2}, headers=FINANCE).get_json()
    second = client.get(
        url, query_string={"limit": 2, "cursor": first["next_cursor"]}, headers=FINANCE
    ).get_json()
    rest = [e["id"] for e in first["entries"] + second["entries"]]
    assert len(rest) == 4 and len(set(rest)) == 4
    assert second["next_cursor"]
    last = client.get(
        url, query_string={"limit": 2, "cursor": second["next_cursor"]}, headers=FINANCE
    ).get_json()
    assert last == {"entries": [], "next_cursor": None, "total": 4}
    assert first["total"] == second["total"] == 4

    january = client.get(
        url,
        query_string={"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"},
        headers=FINANCE,
    ).get_json()["entries"]
    assert [e["kind"] for e in january] == ["donation", "donation", "refund"]
    by_refund = client.get(url, query_string={"stripe_id": "re_1"}, headers=FINANCE).get_json()
    assert [e["kind"] for e in by_refund["entries"]] == ["refund"]
    fees = client.get(
        url, query_string={"account": "expenses:processing-fees"}, headers=FINANCE
    ).get_json()["entries"]
    assert len(fees) == 3
    funds = client.get(
        url, query_string={"account": "funds:", "campaign": "petites-cantines"}, headers=FINANCE
    ).get_json()["entries"]
    assert len(funds) == 4
    refunds = client.get(url, query_string={"kind": "refund"}, headers=FINANCE).get_json()
    assert [e["stripe_object_id"] for e in refunds["entries"]] == ["re_1"]
    assert refunds["total"] == 1
    # Each line names its account in finance staff's words, for a page to show.
    assert {(line["account"], line["account_name"]) for line in refunds["entries"][0]["lines"]} >= {
        ("assets:stripe-clearing", "Cash at Stripe (clearing)")
    }
    in_january = client.get(
        url,
        query_string={"kind": "donation", "until": "2026-02-01T00:00:00Z", "limit": 1},
        headers=FINANCE,
    ).get_json()
    assert (len(in_january["entries"]), in_january["total"]) == (1, 2)
    assert client.get(url, query_string={"kind": "gift"}, headers=FINANCE).status_code == 422
    # A cursor is `<microseconds>.<entry id>` (the document's pattern): anything else is invalid.
    nonsense = client.get(url, query_string={"cursor": "nonsense"}, headers=FINANCE)
    assert nonsense.status_code == 422
    assert "cursor" in nonsense.get_json()["errors"]["query"]
    assert client.get(url).status_code == 401


def test_the_csv_export_opens_in_a_spreadsheet_with_dates_stripe_ids_and_exact_amounts(
    client: FlaskClient, ledger: IdempotentConsumer
) -> None:
    book(ledger)

    only_refunds = client.get(
        "/api/v1/finance/journal", query_string={"format": "csv", "kind": "refund"}, headers=FINANCE
    ).get_data(as_text=True)
    assert len(only_refunds.removeprefix("\ufeff").splitlines()) == 1 + 2  # header, two lines
    response = client.get(
        "/api/v1/finance/journal", query_string={"format": "csv"}, headers=FINANCE
    )

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert len(rows) == 3 * 3 + 2  # three gifts of three lines, a refund of two
    refund_row = next(r for r in rows if r["kind"] == "refund" and r["account"].startswith("funds"))
    assert (refund_row["debit_minor"], refund_row["debit"], refund_row["stripe_object_id"]) == (
        "350",
        "3.50",
        "re_1",
    )
    gift_row = next(r for r in rows if r["charge_id"] == "ch_d-1" and r["credit_minor"] != "0")
    assert gift_row["effective_date"] == "2026-01-10T10:00:00+00:00"
    assert gift_row["balance_transaction_id"] == "txn_ch_d-1"
    debits = sum(int(r["debit_minor"]) for r in rows)
    assert debits == sum(int(r["credit_minor"]) for r in rows)


def test_the_trial_balance_at_a_date_sums_to_zero(
    client: FlaskClient, ledger: IdempotentConsumer
) -> None:
    book(ledger)

    at_january = client.get(
        "/api/v1/finance/trial-balance",
        query_string={"at": "2026-01-31T23:59:59Z"},
        headers=FINANCE,
    ).get_json()
    everything = client.get("/api/v1/finance/trial-balance", headers=FINANCE).get_json()

    assert at_january["balanced"] and everything["balanced"]
    clearing: dict[str, Any] = {row["account"]: row["balance"] for row in at_january["accounts"]}
    assert clearing["assets:stripe-clearing"] == 2636 + 1310 - 350
    assert everything["totals"] == [{"currency": "EUR", "balance": 0}]
    as_csv = client.get(
        "/api/v1/finance/trial-balance", query_string={"format": "csv"}, headers=FINANCE
    )
    assert as_csv.get_data(as_text=True).startswith("\ufeffaccount,")


def test_finance_closes_a_period_and_sets_a_fee_policy(
    client: FlaskClient, ledger: IdempotentConsumer
) -> None:
    book(ledger)

    closed = client.post("/api/v1/finance/periods/2026-01/close", headers=FINANCE)
    assert closed.get_json() == {"month": "2026-01", "closed": True, "already_closed": False}
    assert client.post("/api/v1/finance/periods/2026-1/close", headers=FINANCE).status_code == 422
    assert client.post("/api/v1/finance/periods/2026-01/close", headers=ADMIN).status_code == 403

    policy = client.put(
        "/api/v1/finance/campaigns/petites-cantines/fee-policy",
        json={"fee_policy": "campaign"},
        headers=FINANCE,
    )
    assert policy.status_code == 200
    bad = client.put(
        "/api/v1/finance/campaigns/petites-cantines/fee-policy",
        json={"fee_policy": "donor"},
        headers=FINANCE,
    )
    assert bad.status_code == 422
