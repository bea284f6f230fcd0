"""The company difts API on PostgreSQL, stripe-mock and Kafka: an admin registers a sponsor and
writes a programme; it is funded by a signed Stripe webhook (replayed: funded once) or by a
bank transfer finance staff record; the worker's tick opens it; the sponsor, with its own
token, issues one dift (idempotent by reference), a recipient file (the upload's progress) and
printed codes (a CSV); a recipient directs a dift; the receipt downloads as a PDF; and the
relay publishes DIFT_ISSUED / DIFT_DIRECTED / DIFT_EXPIRED keyed by programme id."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from pypdf import PdfReader

from services.donations.handlers import difts, programmes
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.events import (
    DIFT_DIRECTED,
    DIFT_EXPIRED,
    DIFT_ISSUED,
    PROGRAMME_CREDITED_BACK,
    PROGRAMME_FUNDED,
    PROGRAMMES_TOPIC,
)
from tests.support.programmes import queued, seed_causes
from tests.support.stripe_signing import encode

from .conftest import ADMIN, events_keyed, post_signed

pytestmark = pytest.mark.integration

FINANCE = {"Authorization": "Bearer donations-books"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sponsor(client: FlaskClient) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/admin/sponsors",
        headers=ADMIN,
        json={
            "legal_name": "Acme SAS",
            "legal_form": "SAS",
            "siren": "732 829 320",
            "postal_address": "1 rue de la Paix, 75002 Paris",
            "contact_email": "csr@acme.test",
            "brand_name": "Acme",
        },
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["access_token"].startswith("dsp_")
    return dict(answer.json)


def programme(
    client: FlaskClient, sponsor_id: str, shortlist: list[str], **changes: Any
) -> dict[str, Any]:
    now = datetime.now(UTC)
    body = {
        "name": "Year-end difts",
        "occasion": "End of year",
        "message_markdown": "Thank you **for this year**.",
        "currency": "EUR",
        "dift_value": 2000,
        "shortlist": shortlist,
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "expires_at": (now + timedelta(days=30)).isoformat(),
        **changes,
    }
    answer = client.post(
        f"/api/v1/admin/sponsors/{sponsor_id}/programmes", headers=ADMIN, json=body
    )
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def open_tick(engine: Any) -> None:
    with DonationsUnitOfWork(engine) as uow:
        programmes.open_due_programmes(uow)


def paid_checkout(programme_id: str, amount: int, session_id: str, event_id: str) -> bytes:
    return encode(
        {
            "id": event_id,
            "object": "event",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": session_id,
                    "object": "checkout.session",
                    "mode": "payment",
                    "amount_total": amount,
                    "currency": "eur",
                    "metadata": {"programme_id": programme_id, "sponsor_id": "s"},
                    "payment_intent": f"pi_{uuid.uuid4().hex[:24]}",
                    "payment_status": "paid",
                    "status": "complete",
                }
            },
        }
    )


def test_a_sponsor_funds_a_programme_through_stripe_once_whatever_is_replayed(
    donations: dict[str, Any],
) -> None:
    client, engine = donations["client"], donations["engine"]
    shortlist = seed_causes(engine)
    company = sponsor(client)
    draft = programme(client, company["id"], shortlist)
    checkout = client.post(
        f"/api/v1/admin/programmes/{draft['id']}/checkout",
        headers={**ADMIN, "Idempotency-Key": "fund-1"},
        json={"amount": 100_000},
    )
    assert checkout.status_code == 201, checkout.json
    assert checkout.json["checkout_session_id"] and checkout.json["checkout_url"]
    body = paid_checkout(draft["id"], 100_000, "cs_test_programme_1", "evt_programme_paid_1")
    assert post_signed(client, body).json["outcome"] == "funded"
    assert post_signed(client, body).json["outcome"] == "duplicate"
    # The same session in another event (Stripe sends completed, then a retry with a new id).
    other = paid_checkout(draft["id"], 100_000, "cs_test_programme_1", "evt_programme_paid_2")
    assert post_signed(client, other).json["outcome"] == "already_funded"
    funded = [d for kind, d in queued(engine, draft["id"]) if kind == PROGRAMME_FUNDED]
    assert len(funded) == 1
    assert (funded[0]["method"], funded[0]["amount"]) == ("stripe", 100_000)
    assert funded[0]["checkout_session_id"] == "cs_test_programme_1"
    read = client.get(
        f"/api/v1/sponsor/programmes/{draft['id']}", headers=bearer(company["access_token"])
    )
    assert read.status_code == 200, read.json
    assert read.json["programme"]["status"] == "funded"
    assert read.json["programme"]["budget"]["funded"] == 100_000


def test_the_company_journey_from_a_bank_transfer_to_directed_difts_on_kafka(
    donations: dict[str, Any],
) -> None:
    client, engine = donations["client"], donations["engine"]
    shortlist = seed_causes(engine)
    company = sponsor(client)
    mine = bearer(company["access_token"])
    draft = programme(client, company["id"], shortlist)
    pid = draft["id"]
    # Only a draft is edited.
    edited = client.patch(
        f"/api/v1/admin/programmes/{pid}", headers=ADMIN, json={"occasion": "Noël"}
    )
    assert edited.status_code == 200 and edited.json["occasion"] == "Noël"
    transfer = {"amount": 12_000, "received_on": "2026-11-30", "reference": "VIR-2026-42"}
    recorded = client.post(
        f"/api/v1/finance/programmes/{pid}/bank-transfers", headers=FINANCE, json=transfer
    )
    assert recorded.status_code == 201, recorded.json
    assert recorded.json["receipt_number"].endswith("-000001")
    again = client.post(
        f"/api/v1/finance/programmes/{pid}/bank-transfers", headers=FINANCE, json=transfer
    )
    assert (again.status_code, again.json["funding_id"]) == (200, recorded.json["funding_id"])
    assert (
        client.post(
            f"/api/v1/finance/programmes/{pid}/bank-transfers", headers=ADMIN, json=transfer
        ).status_code
        == 403
    )
    assert (
        client.patch(
            f"/api/v1/admin/programmes/{pid}", headers=ADMIN, json={"name": "x"}
        ).status_code
        == 409
    )
    open_tick(engine)

    # One dift through the API, idempotent by the sponsor's reference.
    one = {
        "recipient": {"email": "ada@example.org", "name": "Ada", "locale": "en"},
        "sponsor_reference": "crm-1",
    }
    first = client.post(f"/api/v1/sponsor/programmes/{pid}/difts", headers=mine, json=one)
    assert first.status_code == 201, first.json
    assert first.json["redeem_url"].startswith("http://donations.test/difts/")
    second = client.post(f"/api/v1/sponsor/programmes/{pid}/difts", headers=mine, json=one)
    assert (second.status_code, second.json["id"], second.json["redeem_url"]) == (
        200,
        first.json["id"],
        None,
    )

    # A recipient file: a bad one answers the per-row report, a good one is issued by the worker.
    bad = client.post(
        f"/api/v1/sponsor/programmes/{pid}/recipients",
        headers={**mine, "Content-Type": "text/csv"},
        data=b"email;nom\nnot-an-email;X\n",
    )
    assert bad.status_code == 422
    assert bad.json["errors"]["problems"][0]["line"] == 2
    assert bad.json["errors"]["problems"][0]["column"] == "email"
    good = client.post(
        f"/api/v1/sponsor/programmes/{pid}/recipients",
        headers=mine,
        data={
            "file": (
                io.BytesIO(
                    "email;nom;langue\nbob@example.org;Bob;fr\nchloe@example.org;Chloé;en\n".encode()
                ),
                "r.csv",
            )
        },
        content_type="multipart/form-data",
    )
    assert good.status_code == 202, good.json
    upload_id = good.json["id"]
    with DonationsUnitOfWork(engine) as uow:
        assert difts.issue_upload_chunk(upload_id, uow, "http://donations.test") == 2
    progress = client.get(f"/api/v1/sponsor/programmes/{pid}/uploads/{upload_id}", headers=mine)
    assert (progress.json["status"], progress.json["issued"], progress.json["total"]) == (
        "done",
        2,
        2,
    )

    # Printed codes, downloaded once as CSV.
    codes = client.post(f"/api/v1/sponsor/programmes/{pid}/codes", headers=mine, json={"count": 2})
    assert codes.status_code == 201 and codes.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(codes.get_data(as_text=True))))
    assert len(rows) == 2 and rows[0]["value"] == "2000"

    # Beyond the budget (5 difts issued of 120.00 EUR: 20.00 EUR left): refused, nothing issued.
    too_many = client.post(
        f"/api/v1/sponsor/programmes/{pid}/codes", headers=mine, json={"count": 4}
    )
    assert too_many.status_code == 422 and "count" in too_many.json["errors"]["json"]

    # A recipient directs the API's dift; another sponsor's token sees nothing of it.
    token = first.json["redeem_url"].rsplit("/", 1)[1]
    network = None
    with DonationsUnitOfWork(engine) as uow:
        found = uow.programmes.get(pid)
        assert found is not None
        network = found.shortlist[0]
        difts.direct_dift(difts.DirectDift(token, one_campaign_id=network), uow)
    other = sponsor(client)
    assert (
        client.get(
            f"/api/v1/sponsor/programmes/{pid}", headers=bearer(other["access_token"])
        ).status_code
        == 403
    )
    assert (
        client.get(f"/api/v1/sponsor/programmes/{pid}", headers=bearer("dsp_forged")).status_code
        == 401
    )

    report = client.get(f"/api/v1/sponsor/programmes/{pid}", headers=mine)
    assert report.status_code == 200
    assert report.json["counts"]["issued"] == 5 and report.json["counts"]["directed"] == 1
    assert report.json["causes"][0]["directed_amount"] == 2000
    campaign = client.get(f"/api/v1/campaigns/{shortlist[0]}")
    assert campaign.json["difts_received"] == 1

    # The receipt as a PDF with its number.
    receipt = client.get(
        f"/api/v1/sponsor/programmes/{pid}/receipts/{recorded.json['receipt_id']}", headers=mine
    )
    assert receipt.status_code == 200 and receipt.mimetype == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(receipt.data)).pages)
    assert recorded.json["receipt_number"] in text and "Acme SAS" in text

    # Unused budget back, then expiry: the rest by the fallback, closing to a zero balance.
    credit = client.post(
        f"/api/v1/admin/programmes/{pid}/credits", headers=ADMIN, json={"amount": 1000}
    )
    assert credit.status_code == 201, credit.json
    with DonationsUnitOfWork(engine) as uow:
        expires = uow.programmes.get(pid).expires_at  # type: ignore[union-attr]
        assert difts.expire_programme(pid, uow, expires) == (4, True)

    while donations["relay"].publish_pending():
        pass
    published = events_keyed(donations["bootstrap"], pid, (PROGRAMMES_TOPIC,))
    kinds = [event.type for event in published]
    assert kinds.count(DIFT_ISSUED) == 5 and kinds.count(DIFT_DIRECTED) == 1
    assert kinds.count(DIFT_EXPIRED) == 4 and kinds[0] == PROGRAMME_FUNDED
    credited = [e.data for e in published if e.type == PROGRAMME_CREDITED_BACK]
    assert [(c["reason"], c["amount"]) for c in credited] == [
        ("unused_budget", 1000),
        ("closing", 1000),
    ]
    given = sum(
        a["amount"]
        for e in published
        if e.type in (DIFT_DIRECTED, DIFT_EXPIRED)
        for a in e.data["allocations"]
    )
    assert 12_000 - given - sum(c["amount"] for c in credited) == 0


def test_bad_input_names_the_field_and_changes_nothing(donations: dict[str, Any]) -> None:
    client, engine = donations["client"], donations["engine"]
    shortlist = seed_causes(engine)
    bad_siren = client.post(
        "/api/v1/admin/sponsors",
        headers=ADMIN,
        json={
            "legal_name": "Acme",
            "legal_form": "SAS",
            "siren": "732829321",
            "postal_address": "Paris",
            "contact_email": "a@acme.test",
        },
    )
    assert bad_siren.status_code == 422 and "siren" in bad_siren.json["errors"]["json"]
    company = sponsor(client)
    now = datetime.now(UTC)
    for changes, field in (
        ({"shortlist": ["no-such-campaign"]}, "shortlist"),
        ({"fallback_rule": "one_campaign"}, "fallback_campaign_id"),
        ({"expires_at": (now - timedelta(days=1)).isoformat()}, "expires_at"),
    ):
        body = {
            "name": "P",
            "currency": "EUR",
            "dift_value": 2000,
            "shortlist": shortlist,
            "opens_at": now.isoformat(),
            "expires_at": (now + timedelta(days=3)).isoformat(),
            **changes,
        }
        answer = client.post(
            f"/api/v1/admin/sponsors/{company['id']}/programmes", headers=ADMIN, json=body
        )
        assert answer.status_code == 422 and field in answer.json["errors"]["json"], answer.json
    draft = programme(client, company["id"], shortlist)
    mine = bearer(company["access_token"])
    closed_to_difts = client.post(
        f"/api/v1/sponsor/programmes/{draft['id']}/difts", headers=mine, json={}
    )
    assert closed_to_difts.status_code == 409
    assert client.get("/api/v1/sponsor/programmes/nope", headers=ADMIN).status_code == 404
