"""A campaign's history over time (history.py and GET /finance/campaigns/<slug>/history) on
PostgreSQL: bucket by bucket from the journal, and over a range covering every entry its
totals are exactly the finance summary's figures, whatever the interval."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from services.ledger import handlers, history, views
from services.ledger.app import create_app
from services.ledger.config import Settings
from services.ledger.consumer import build_consumer
from services.ledger.unit_of_work import LedgerUnitOfWork
from tests.integration.ledger.conftest import migrated
from tests.unit.ledger import conftest as given
from tests.unit.ledger.conftest import CAMPAIGN, SLUG

pytestmark = pytest.mark.integration

FINANCE = {"Authorization": "Bearer test-finance"}
ADMIN = {"Authorization": "Bearer test-admin"}
URL = f"/api/v1/finance/campaigns/{SLUG}/history"
# The figures a bucket sums, and the summary's names for the same sums.
SUMMED = ("donated", "fees", "net", "refunded", "disputed", "paid_out", "difts_amount")


def book(engine: Engine) -> None:
    """Gifts with fees and the donor's cover, under both fee policies, one booked late into a
    closed January, refunds (one that fails), a dispute lost and one won, a payout, a dift
    from a company's programme and a meal price change."""
    ledger = build_consumer(engine, "127.0.0.1:1", "ledger", None)  # type: ignore[arg-type]
    events = [
        given.published(goal_meals=4),
        given.gift("d-1", 2780, fee=66, fee_covered=80, when="2026-01-10T12:00:00+00:00"),
        given.gift("d-2", 1350, fee=40, when="2026-01-20T12:00:00+00:00"),
        given.gift("d-3", 4050, fee=80, when="2026-01-31T23:00:00+00:00"),
        given.refund("d-1", "re_1", 1000, 1000, fee_refunded=20),
        given.refund_failed("d-1", "re_1", 1000),
        given.refund("d-1", "re_2", 700, 700),
        given.dispute_opened("d-2", "dp_1", 1350),
        given.dispute_closed("d-2", "dp_1", "lost", 1350),
        given.dispute_opened("d-3", "dp_2", 4050),
        given.dispute_closed("d-3", "dp_2", "won", 4050, fee_reinstated=1500),
        given.payout("po_1", 2714, ["txn_ch_d-1"]),
        given.funded("f-1", 10_000, fee=170),
        given.directed("dift-1", 2000, [given.allocation(CAMPAIGN, 2000)]),
        given.price_changed(1500, 1350, "2026-02-15T00:00:00+00:00"),
        given.gift("d-4", 3000, fee=70, when="2026-03-05T08:00:00+00:00"),
    ]
    for number, event in enumerate(events):
        if number == 2:
            with LedgerUnitOfWork(engine) as uow:
                handlers.set_fee_policy(handlers.SetFeePolicy(SLUG, "campaign"), uow)
        if number == 3:
            with LedgerUnitOfWork(engine) as uow:
                handlers.close_period(handlers.ClosePeriod("2026-01", "finance@example.org"), uow)
        assert ledger.apply(event.to_json().encode()).status == "applied", number


@pytest.fixture
def client(engine: Engine, database_url: str) -> FlaskClient:
    settings = Settings(
        database_url, "127.0.0.1:1", "ledger", api_tokens="test-finance:finance,test-admin:admin"
    )
    return create_app(settings).test_client()


def summary(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        found = views.campaign_finance_summary(conn, SLUG)
    assert found is not None
    return found


def assert_ends_on_the_summary(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    totals = answer["totals"]
    assert {key: totals[key] for key in SUMMED} == {key: expected[key] for key in SUMMED}
    assert totals["fund_balance"] == expected["fund_balance"]
    assert totals["meals_total"] == expected["meals_funded"]
    last = answer["buckets"][-1]
    assert (last["fund_balance"], last["meals_total"]) == (
        expected["fund_balance"],
        expected["meals_funded"],
    )
    opening = answer["opening"]
    assert (
        opening["meals_total"] + sum(b["meals_funded"] for b in answer["buckets"])
        == (expected["meals_funded"])
    )


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_over_every_entry_the_history_adds_up_to_the_finance_summary(
    client: FlaskClient, engine: Engine, interval: str
) -> None:
    book(engine)
    expected = summary(engine)
    # The history is not trivially zero: each figure moved.
    assert all(expected[key] for key in SUMMED if key != "disputed")
    assert expected["meals_funded"] > 0 and expected["fund_balance"] > 0

    response = client.get(
        URL,
        query_string={"interval": interval, "since": "2026-01-01", "until": "2026-04-01"},
        headers=FINANCE,
    )

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["interval"] == interval and answer["currency"] == "EUR"
    assert answer["opening"] == {"fund_balance": 0, "meals_total": 0}
    assert_ends_on_the_summary(answer, expected)
    starts = [bucket["starts_at"] for bucket in answer["buckets"]]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


def test_each_bucket_holds_what_happened_in_it(client: FlaskClient, engine: Engine) -> None:
    book(engine)

    answer = client.get(
        URL,
        query_string={"interval": "month", "since": "2026-01-01", "until": "2026-04-01"},
        headers=FINANCE,
    ).get_json()

    january, february, march = answer["buckets"]
    assert january["starts_at"] == "2026-01-01T00:00:00+00:00"
    assert january["ends_at"] == february["starts_at"] == "2026-02-01T00:00:00+00:00"
    # January was closed after d-2: what came after, dated January, is posted on 1 February.
    assert january["donated"] == 2780 + 1350
    assert february["donated"] == 4050 and march["donated"] == 3000
    assert january["fees"] == 66 + 40 and january["net"] == 2780 - 66 + 1350 - 40
    # re_1 refunded then failed, re_2 refunded: 700 went back; then the payout.
    assert (january["refunded"], february["refunded"]) == (0, 700)
    assert (january["paid_out"], february["paid_out"]) == (0, summary(engine)["paid_out"])
    assert february["paid_out"] > 0
    # The dispute of d-3 opened and was won: nothing disputed in the end.
    assert sum(b["disputed"] for b in answer["buckets"]) == 0
    assert february["difts_amount"] == 2000 and march["difts_amount"] == 0
    assert [b["fund_balance"] for b in answer["buckets"]] == sorted(
        b["fund_balance"] for b in answer["buckets"]
    )


def test_a_range_starting_later_opens_on_what_came_before(
    client: FlaskClient, engine: Engine
) -> None:
    book(engine)
    everything = client.get(
        URL, query_string={"interval": "day", "since": "2026-01-01"}, headers=FINANCE
    ).get_json()
    expected = summary(engine)

    later = client.get(
        URL,
        query_string={"interval": "week", "since": "2026-01-26", "until": "2026-12-01"},
        headers=FINANCE,
    ).get_json()

    assert later["since"] == "2026-01-26T00:00:00+00:00"  # a Monday
    before = [b for b in everything["buckets"] if b["starts_at"] < later["since"]]
    assert later["opening"] == {
        "fund_balance": before[-1]["fund_balance"],
        "meals_total": before[-1]["meals_total"],
    }
    assert later["opening"]["meals_total"] > 0
    assert later["totals"]["donated"] == 4050 + 3000
    assert later["totals"]["fund_balance"] == expected["fund_balance"]
    assert later["totals"]["meals_total"] == expected["meals_funded"]


def test_by_default_it_runs_from_the_first_entry_to_now(engine: Engine) -> None:
    book(engine)

    with engine.connect() as conn:
        found = history.campaign_history(conn, SLUG, now=datetime(2026, 12, 3, 10, tzinfo=UTC))

    assert found is not None
    assert found["interval"] == "week"  # January to December
    assert found["since"] == datetime(2026, 1, 5, tzinfo=UTC)  # the Monday before 10 January
    assert found["until"] == datetime(2026, 12, 7, tzinfo=UTC)
    assert_ends_on_the_summary(found, summary(engine))


def test_a_lost_dispute_lowers_the_meal_counter_in_its_bucket(engine: Engine) -> None:
    ledger = build_consumer(engine, "127.0.0.1:1", "ledger", None)  # type: ignore[arg-type]
    for event in (
        given.published(),
        given.gift("d-1", 2700, fee=60, when="2026-01-10T12:00:00+00:00"),
        given.dispute_opened("d-1", "dp_1", 2700),
        given.dispute_closed("d-1", "dp_1", "lost", 2700),
    ):
        assert ledger.apply(event.to_json().encode()).status == "applied"

    with engine.connect() as conn:
        found = history.campaign_history(
            conn,
            SLUG,
            interval="month",
            since=datetime(2026, 1, 1, tzinfo=UTC),
            until=datetime(2026, 3, 1, tzinfo=UTC),
        )

    assert found is not None
    january, february = found["buckets"]
    assert (january["meals_funded"], january["meals_total"]) == (2, 2)
    assert (february["meals_funded"], february["meals_total"]) == (-2, 0)
    assert (january["disputed"], february["disputed"]) == (2700, -2700)
    assert february["fund_balance"] == 0


def test_the_history_wants_the_finance_role_a_known_campaign_and_a_bounded_range(
    client: FlaskClient, engine: Engine
) -> None:
    book(engine)

    assert client.get(URL).status_code == 401
    assert client.get(URL, headers=ADMIN).status_code == 403
    missing = client.get("/api/v1/finance/campaigns/nobody/history", headers=FINANCE)
    assert missing.status_code == 404
    too_many = client.get(
        URL, query_string={"interval": "day", "since": "2020-01-01"}, headers=FINANCE
    )
    assert too_many.status_code == 422
    assert "interval" in too_many.get_json()["errors"]["query"]
    unknown = client.get(URL, query_string={"interval": "hour"}, headers=FINANCE)
    assert unknown.status_code == 422
    assert "interval" in unknown.get_json()["errors"]["query"]
    backwards = client.get(
        URL, query_string={"since": "2026-02-01", "until": "2026-01-01"}, headers=FINANCE
    )
    assert backwards.status_code == 422
    assert "until" in backwards.get_json()["errors"]["query"]
    before_any_entry = client.get(URL, query_string={"until": "2025-01-01"}, headers=FINANCE)
    assert before_any_entry.status_code == 422


def test_on_sqlite_as_make_run_keeps_the_books_it_adds_up_the_same(tmp_path: Any) -> None:
    engine = migrated(f"sqlite:///{tmp_path / 'ledger.db'}")
    book(engine)
    with engine.connect() as conn:
        found = history.campaign_history(
            conn,
            SLUG,
            interval="week",
            since=datetime(2026, 1, 1, tzinfo=UTC),
            until=datetime(2026, 4, 1, tzinfo=UTC),
        )
    assert found is not None
    assert_ends_on_the_summary(found, summary(engine))
    engine.dispose()
