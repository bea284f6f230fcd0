"""One dift end to end: a 27.00 EUR gift to Les Petites Cantines becomes 2 funded meals in
the ledger and exactly one receipt, over real Kafka, PostgreSQL, stripe-mock and SMTP."""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests
from sqlalchemy import create_engine, func, select

from services.donations import store as donations_store
from tests.support.stripe_signing import checkout_completed_event, encode, sign

from .conftest import RunningSystem, applied_outcome, log_tail

SLUG = "petites-cantines"


def give(system: RunningSystem, email: str, **gift: Any) -> dict[str, Any]:
    reply = requests.post(
        f"{system.url('donations')}/api/v1/campaigns/{SLUG}/donations",
        json={"donor": {"email": email, "name": "Ada Lovelace"}, "updates_opt_in": True, **gift},
        timeout=30,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def campaign_id(system: RunningSystem) -> str:
    return requests.get(f"{system.url('donations')}/api/v1/campaigns/{SLUG}", timeout=10).json()[
        "id"
    ]


def post_webhook(
    system: RunningSystem, body: bytes, secret: str | None = None
) -> requests.Response:
    return requests.post(
        f"{system.url('donations')}/webhooks/stripe",
        data=body,
        timeout=30,
        headers={
            "Stripe-Signature": sign(body, secret or system.webhook_secret),
            "Content-Type": "application/json",
        },
    )


def applied(system: RunningSystem, body: bytes) -> str:
    """Post a signed event: the webhook answers that it recorded it; then what the worker
    made of it once applied."""
    reply = post_webhook(system, body)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert (answer["received"], answer["outcome"]) == (True, "received"), answer
    return applied_outcome(system, answer["event"])


def summary(system: RunningSystem) -> dict[str, Any]:
    reply = requests.get(f"{system.url('ledger')}/api/v1/campaigns/{SLUG}/summary", timeout=10)
    return reply.json() if reply.status_code == 200 else {}


def wait_for(condition: Any, timeout: float, system: RunningSystem, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log_tail(system)}")
        time.sleep(0.2)


def donation_status(system: RunningSystem, donation_id: str) -> str:
    return requests.get(
        f"{system.url('donations')}/api/v1/donations/{donation_id}", timeout=10
    ).json()["status"]


def test_a_27_euro_gift_funds_2_meals_and_sends_one_receipt(system: RunningSystem) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.org"
    donation = give(system, email, amount=2700, currency="eur")
    assert donation["status"] == "pending"
    assert (donation["amount"], donation["currency"], donation["meals"]) == (2700, "EUR", 2)
    assert donation["checkout_url"]

    event = checkout_completed_event(donation["id"], campaign_id(system), 2700)
    body = encode(event)
    outcomes = [post_webhook(system, body) for _ in range(3)]  # Stripe retries the same event
    assert [reply.status_code for reply in outcomes] == [200, 200, 200]
    # Recorded once, before the first answer; the retries are recognised.
    assert [reply.json()["outcome"] for reply in outcomes] == [
        "received",
        "duplicate",
        "duplicate",
    ]
    assert {reply.json()["event"] for reply in outcomes} == {event["id"]}
    assert applied_outcome(system, event["id"]) == "succeeded"
    assert donation_status(system, donation["id"]) == "succeeded"

    wait_for(lambda: summary(system).get("meals_funded") == 2, 60, system, "2 meals funded")
    books = summary(system)
    assert books["donated"] == 2700 and books["remainder"] == 0 and books["donations"] == 1
    assert books["currency"] == "EUR"

    receipts = system.mailbox.wait_for(1, to=email, timeout=60)
    assert len(receipts) == 1, log_tail(system)
    receipt = receipts[0]
    text = receipt.get_body(preferencelist=("plain",)).get_content()
    assert "2 meals" in text and "27.00" in text
    assert "Petites Cantines" in receipt["Subject"] + text

    # Another confirmation of the same payment (a second event id) changes nothing either.
    later = checkout_completed_event(donation["id"], campaign_id(system), 2700)
    later["type"] = "checkout.session.async_payment_succeeded"
    assert applied(system, encode(later)) == "already_succeeded"
    time.sleep(3)  # give any duplicate every chance to arrive before counting
    assert len(system.mailbox.messages(to=email)) == 1
    assert summary(system)["meals_funded"] == 2


def test_every_paid_gift_is_booked_not_only_the_first(system: RunningSystem) -> None:
    before = summary(system)
    for meals in (1, 3):
        donation = give(system, f"gift-{uuid.uuid4().hex[:8]}@example.org", meals=meals)
        paid = checkout_completed_event(donation["id"], campaign_id(system), 1350 * meals)
        assert applied(system, encode(paid)) == "succeeded"
    wait_for(
        lambda: summary(system).get("donations") == before["donations"] + 2,
        60,
        system,
        "both gifts booked",
    )
    after = summary(system)
    assert after["donated"] == before["donated"] + 1350 * 4
    assert after["meals_funded"] == before["meals_funded"] + 4


def test_a_webhook_with_a_bad_signature_changes_nothing(system: RunningSystem) -> None:
    email = f"eve-{uuid.uuid4().hex[:8]}@example.org"
    donation = give(system, email, meals=1)
    before = summary(system)
    body = encode(checkout_completed_event(donation["id"], campaign_id(system), 1350))

    forged = post_webhook(system, body, secret="whsec_not_the_endpoint_secret")
    assert forged.status_code == 400
    assert "signature" in forged.json()["message"]
    stale = requests.post(
        f"{system.url('donations')}/webhooks/stripe",
        data=body,
        timeout=10,
        headers={"Stripe-Signature": sign(body, system.webhook_secret, int(time.time()) - 3600)},
    )
    assert stale.status_code == 400

    time.sleep(2)
    assert donation_status(system, donation["id"]) == "pending"
    assert summary(system).get("donations") == before.get("donations")
    assert system.mailbox.messages(to=email) == []


def test_bad_gifts_are_refused_naming_the_field_and_store_nothing(system: RunningSystem) -> None:
    url = f"{system.url('donations')}/api/v1/campaigns/{SLUG}/donations"
    donor = {"email": "bob@example.org"}
    before = stored_rows(system)
    cases = [
        ({"amount": -100, "donor": donor}, "amount"),
        ({"amount": 0, "donor": donor}, "amount"),
        ({"amount": 27.5, "donor": donor}, "amount"),
        ({"amount": 10**15, "donor": donor}, "amount"),
        ({"amount": "lots", "donor": donor}, "amount"),
        ({"amount": 2700, "currency": "XXX", "donor": donor}, "currency"),
        ({"amount": 2700, "currency": "USD", "donor": donor}, "currency"),
        ({"amount": 2700, "donor": {"email": "not-an-email"}}, "donor"),
        ({"amount": 2700}, "donor"),
    ]
    for body, field in cases:
        reply = requests.post(url, json=body, timeout=10)
        assert 400 <= reply.status_code < 500, (body, reply.text)
        assert field in reply.json()["errors"]["json"], (body, reply.json())
    malformed = requests.post(
        url, data="{not json", timeout=10, headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and "JSON" in malformed.json()["message"]
    unknown = requests.post(
        f"{system.url('donations')}/api/v1/campaigns/nope/donations",
        json={"amount": 2700, "donor": donor},
        timeout=10,
    )
    assert unknown.status_code == 404
    assert stored_rows(system) == before


def stored_rows(system: RunningSystem) -> tuple[int, int]:
    """How many donations and outbox events the donations database holds."""
    engine = create_engine(system.databases["donations"])
    with engine.connect() as conn:
        counts = tuple(
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (donations_store.donations, donations_store.outbox)
        )
    engine.dispose()
    return counts  # type: ignore[return-value]
