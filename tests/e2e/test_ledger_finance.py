"""Finance staff's view of a dift, end to end: a paid gift through the Stripe webhook shows in
the ledger's finance API (bearer token with the finance role), in the journal and its CSV, in
a balanced trial balance and in a reconciliation against stripe-mock."""

from __future__ import annotations

import csv
import io
import uuid

import requests

from tests.support.stripe_signing import checkout_completed_event, encode

from .conftest import RunningSystem
from .test_one_dift import SLUG, applied, campaign_id, give, summary, wait_for


def finance(system: RunningSystem, path: str, **params: str) -> requests.Response:
    return requests.get(
        f"{system.url('ledger')}/api/v1/finance{path}",
        params=params,
        headers={"Authorization": f"Bearer {system.finance_token}"},
        timeout=30,
    )


def test_a_paid_gift_is_in_the_finance_api_the_csv_the_trial_balance_and_reconciliation(
    system: RunningSystem,
) -> None:
    before = summary(system).get("donations", 0)
    donation = give(system, f"fin-{uuid.uuid4().hex[:8]}@example.org", meals=2)
    paid = checkout_completed_event(donation["id"], campaign_id(system), 2700)
    assert applied(system, encode(paid)) == "succeeded"
    wait_for(lambda: summary(system).get("donations") == before + 1, 60, system, "the gift")

    url = f"{system.url('ledger')}/api/v1/finance/campaigns/{SLUG}/summary"
    assert requests.get(url, timeout=10).status_code == 401
    assert (
        requests.get(
            url, headers={"Authorization": f"Bearer {system.admin_token}"}, timeout=10
        ).status_code
        == 403
    )
    books = finance(system, f"/campaigns/{SLUG}/summary").json()
    assert books["donated"] >= 2700 and books["fund_balance"] == books["donated"]

    entries = finance(system, "/journal", campaign=SLUG, limit="500").json()["entries"]
    [entry] = [e for e in entries if e["donation_id"] == donation["id"]]
    assert entry["kind"] == "donation" and entry["event_id"]
    exported = finance(system, "/journal", campaign=SLUG, format="csv")
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text.removeprefix("\ufeff"))))
    ours = [r for r in rows if r["donation_id"] == donation["id"]]
    assert sum(int(r["credit_minor"]) for r in ours) == 2700
    assert sum(int(r["debit_minor"]) for r in ours) == 2700

    trial = finance(system, "/trial-balance").json()
    assert trial["balanced"] and trial["totals"] == [{"currency": "EUR", "balance": 0}]

    report = finance(
        system, "/reconciliation", since="2000-01-01T00:00:00Z", until="2100-01-01T00:00:00Z"
    )
    assert report.status_code == 200
    body = report.json()
    # stripe-mock's one fixture (1.00 USD) is not what difts booked: never "balanced".
    assert body["balanced"] is False
    assert body["summary"]["matched"] + body["summary"]["mismatched"] <= 1
    assert body["ledger_total"]["EUR"] >= 2700
