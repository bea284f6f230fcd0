"""The payment lifecycle, campaigns and news on real PostgreSQL, stripe-mock and Kafka:
signed webhooks of every handled type through the HTTP endpoint (duplicated and reordered),
fee facts asked of stripe-mock through the stripe library, events read back from Kafka."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.donations import store, views
from services.donations.consumer import build_consumer
from services.donations.handlers.news import WriteNewsPost, publish_due_posts, write_news_post
from services.donations.handlers.webhooks import apply_kept_events
from services.donations.payments import StripePayments
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.envelope import new_event
from services.shared.events import (
    CAMPAIGN_CLOSED,
    CAMPAIGN_PUBLISHED,
    DISPUTE_CLOSED,
    DISPUTE_OPENED,
    DONATION_FAILED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    DONATIONS_TOPIC,
    LEDGER_TOPIC,
    MEAL_PRICE_CHANGED,
    MEALS_FUNDED,
    PAYOUT_PAID,
    UPDATE_PUBLISHED,
)
from services.shared.kafka import make_producer
from tests.integration.donations.conftest import (
    ADMIN,
    SECRET,
    events_keyed,
    published,
    webhook,
)
from tests.support.stripe_signing import encode, sign

pytestmark = pytest.mark.integration


def give(donations: dict[str, Any], **body: Any) -> dict[str, Any]:
    reply = donations["client"].post(
        f"/api/v1/campaigns/{donations['slug']}/donations",
        json={"donor": {"email": "ada@example.org", "name": "Ada"}, "meals": 2, **body},
    )
    assert reply.status_code == 201, reply.json
    return dict(reply.json)


def session(donation: dict[str, Any], pi: str, paid: str = "paid") -> dict[str, Any]:
    return {
        "id": f"cs_{donation['id']}",
        "object": "checkout.session",
        "amount_total": donation["amount"],
        "currency": "eur",
        "payment_status": paid,
        "payment_intent": pi,
        "client_reference_id": donation["id"],
        "metadata": {"donation_id": donation["id"]},
    }


def test_paid_then_refunded_in_two_parts_each_refund_counted_once(
    donations: dict[str, Any],
) -> None:
    client = donations["client"]
    donation = give(donations, cover_fee=True, updates_opt_in=True, anonymous=True)
    assert donation["fee_covered"] > 0 and donation["amount"] == 2700 + donation["fee_covered"]
    pi = f"pi_{uuid.uuid4().hex[:20]}"
    first = {
        "id": f"re_{uuid.uuid4().hex[:12]}",
        "amount": 1000,
        "payment_intent": pi,
        "status": "succeeded",
        "currency": "eur",
    }
    # The refund arrives before the payment it follows: kept, applied after.
    assert webhook(client, "refund.created", first).json["outcome"] == "waiting"
    kept = apply_kept_events(DonationsUnitOfWork(donations["engine"]), stripe_mock(donations))
    assert kept == 0  # still nothing to follow
    paid = webhook(client, "checkout.session.completed", session(donation, pi), "evt_paid_" + pi)
    assert paid.json["outcome"] == "succeeded"
    again = webhook(client, "checkout.session.completed", session(donation, pi), "evt_paid_" + pi)
    assert again.json["outcome"] == "duplicate"
    charge = {"id": "ch_x", "object": "charge", "payment_intent": pi, "refunds": {"data": [first]}}
    assert webhook(client, "charge.refunded", charge).json["outcome"] == "already_refunded"
    rest = {**first, "id": f"re_{uuid.uuid4().hex[:12]}", "amount": donation["amount"] - 1000}
    assert webhook(client, "refund.created", rest).json["outcome"] == "refunded"
    assert webhook(client, "refund.updated", rest).json["outcome"] == "already_refunded"

    events = [e for e in published(donations) if e.type.startswith("difts.donation")]
    assert [e.type for e in events] == [DONATION_SUCCEEDED, DONATION_REFUNDED, DONATION_REFUNDED]
    succeeded = events[0].data
    assert succeeded["fee_covered"] == donation["fee_covered"]
    assert succeeded["anonymous"] is True and succeeded["consent_at"]
    # stripe-mock answers every payment intent with one fixture charge that names no intent:
    # nothing of it is this payment's, so neither its ids nor its fee travel.
    assert (succeeded["charge_id"], succeeded["balance_transaction_id"]) == (None, None)
    assert (succeeded["fee"], succeeded["net"]) == (None, None)
    assert [e.data["total_refunded"] for e in events[1:]] == [1000, donation["amount"]]
    assert events[2].data["fully_refunded"] is True


def test_disputes_opened_and_closed_in_any_order(donations: dict[str, Any]) -> None:
    client = donations["client"]
    donation = give(donations)
    pi = f"pi_{uuid.uuid4().hex[:20]}"
    dispute = {
        "id": f"dp_{uuid.uuid4().hex[:12]}",
        "amount": 2700,
        "currency": "eur",
        "payment_intent": pi,
        "reason": "fraudulent",
        "status": "needs_response",
        "balance_transactions": [{"id": "txn_d1", "amount": -2700, "fee": 1500}],
    }
    lost = {**dispute, "status": "lost"}
    assert webhook(client, "charge.dispute.closed", lost).json["outcome"] == "waiting"
    assert webhook(client, "charge.dispute.created", dispute).json["outcome"] == "waiting"
    paid = webhook(client, "checkout.session.completed", session(donation, pi))
    assert paid.json["outcome"] == "succeeded"
    assert webhook(client, "charge.dispute.closed", lost).json["outcome"] == "already_closed"
    events = [e for e in published(donations) if e.type.startswith("difts.donation")]
    assert [e.type for e in events] == [DONATION_SUCCEEDED, DISPUTE_OPENED, DISPUTE_CLOSED]
    assert events[1].data["fee"] == 1500
    assert events[2].data["status"] == "lost"
    status = client.get(f"/api/v1/donations/{donation['id']}").json["status"]
    assert status == "disputed"


def test_failed_and_expired_checkouts_never_succeed(donations: dict[str, Any]) -> None:
    client = donations["client"]
    delayed, abandoned = give(donations), give(donations, meals=1)
    pi = f"pi_{uuid.uuid4().hex[:20]}"
    unpaid = webhook(client, "checkout.session.completed", session(delayed, pi, paid="unpaid"))
    assert unpaid.json["outcome"] == "awaiting_payment"
    failed = webhook(client, "checkout.session.async_payment_failed", session(delayed, pi))
    assert failed.json["outcome"] == "failed"
    expired = webhook(client, "checkout.session.expired", session(abandoned, "", paid="unpaid"))
    assert expired.json["outcome"] == "expired"
    events = [e for e in published(donations) if e.type.startswith("difts.donation")]
    assert sorted(e.data["status"] for e in events if e.type == DONATION_FAILED) == [
        "expired",
        "failed",
    ]
    assert DONATION_SUCCEEDED not in [e.type for e in events]


def test_payout_paid_lists_balance_transactions_from_stripe(donations: dict[str, Any]) -> None:
    client = donations["client"]
    payout = {
        "id": f"po_{uuid.uuid4().hex[:14]}",
        "object": "payout",
        "amount": 5400,
        "currency": "eur",
        "arrival_date": int(time.time()),
        "status": "paid",
    }
    assert webhook(client, "payout.paid", payout).json["outcome"] == "payout_paid"
    assert webhook(client, "payout.paid", payout).json["outcome"] == "already_paid_out"
    while donations["relay"].publish_pending():
        pass
    [event] = events_keyed(donations["bootstrap"], payout["id"], (DONATIONS_TOPIC,))
    assert event.type == PAYOUT_PAID
    # Listed through the stripe library against stripe-mock (its fixture transaction).
    assert event.data["balance_transaction_ids"] and event.data["amount"] == 5400


def test_bad_or_stale_signatures_are_refused_and_change_nothing(
    donations: dict[str, Any],
) -> None:
    client = donations["client"]
    donation = give(donations)
    body = encode(
        {
            "id": "evt_forged",
            "object": "event",
            "type": "checkout.session.completed",
            "data": {"object": session(donation, "pi_forged")},
        }
    )
    for signature in (
        sign(body, "whsec_wrong"),
        sign(body, SECRET, timestamp=int(time.time()) - 3600),
        "t=1,v1=00",
        "",
    ):
        reply = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": signature})
        assert reply.status_code == 400, signature
        assert "Stripe-Signature" in reply.json["errors"]["headers"]
    with donations["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.stripe_events)).scalar() == 0
        assert views.donation(conn, donation["id"]).status == "pending"


def test_a_retried_request_with_the_same_idempotency_key_creates_nothing_new(
    donations: dict[str, Any],
) -> None:
    client = donations["client"]
    path = f"/api/v1/campaigns/{donations['slug']}/donations"
    body = {"donor": {"email": "ada@example.org"}, "meals": 2}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first, second = (client.post(path, json=body, headers=key) for _ in range(2))
    assert first.status_code == second.status_code == 201
    assert first.json == second.json
    other = client.post(path, json={**body, "meals": 3}, headers=key)
    assert other.status_code == 409
    with donations["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.donations)).scalar() == 1


def test_campaign_manager_changes_are_announced(donations: dict[str, Any]) -> None:
    client, slug = donations["client"], donations["slug"]
    edited = client.patch(f"/api/v1/campaigns/{slug}", headers=ADMIN, json={"goal_meals": 200})
    assert edited.json["goal_meals"] == 200
    silent = client.patch(f"/api/v1/campaigns/{slug}", headers=ADMIN, json={"meal_price": 1400})
    assert silent.status_code == 422 and "meal_price" in silent.json["errors"]["json"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    change = client.post(
        f"/api/v1/campaigns/{slug}/meal-price",
        headers=ADMIN,
        json={"meal_price": 1400, "currency": "EUR", "effective_from": tomorrow},
    )
    assert change.status_code == 200, change.json
    assert client.get(f"/api/v1/campaigns/{slug}").json["meal_price"] == 1350  # not yet
    now = client.post(
        f"/api/v1/campaigns/{slug}/news",
        headers=ADMIN,
        json={"title": "Opening of Petites Cantines Bagnolet", "body_markdown": "**Open!**"},
    )
    assert now.status_code == 201 and now.json["published_at"]
    later = client.post(
        f"/api/v1/campaigns/{slug}/news",
        headers=ADMIN,
        json={"title": "Later", "body_markdown": "Soon", "publish_at": tomorrow},
    )
    assert later.json["published_at"] is None
    assert len(client.get(f"/api/v1/campaigns/{slug}/news").json) == 1
    assert client.post(f"/api/v1/campaigns/{slug}/close", headers=ADMIN).status_code == 200
    refused = client.post(
        f"/api/v1/campaigns/{slug}/donations", json={"donor": {"email": "a@b.org"}, "meals": 1}
    )
    assert refused.status_code == 409
    events = [e for e in published(donations) if e.type.startswith("difts.campaign")]
    assert [e.type for e in events] == [
        CAMPAIGN_PUBLISHED,
        CAMPAIGN_PUBLISHED,
        MEAL_PRICE_CHANGED,
        UPDATE_PUBLISHED,
        CAMPAIGN_CLOSED,
    ]
    assert events[0].data["action_zone"] == "Grand Est"
    assert events[2].data["previous_meal_price"] == 1350
    update = events[3].data
    assert update["body_html"] == "<p><strong>Open!</strong></p>\n"
    assert update["url"].endswith(f"/campaigns/{slug}/news/{now.json['id']}")


def test_admin_endpoints_need_an_admin_token(donations: dict[str, Any]) -> None:
    client, slug = donations["client"], donations["slug"]
    assert client.post(f"/api/v1/campaigns/{slug}/close").status_code == 401
    books = {"Authorization": "Bearer donations-books"}
    assert client.post(f"/api/v1/campaigns/{slug}/close", headers=books).status_code == 403
    assert client.get(f"/api/v1/campaigns/{slug}").json["status"] == "live"


def test_a_scheduled_post_is_published_once_when_due(donations: dict[str, Any]) -> None:
    engine = donations["engine"]
    soon = datetime.now(UTC) + timedelta(seconds=1)
    post = WriteNewsPost(
        donations["slug"],
        title="Bruz",
        body_markdown="A 14th canteen",
        public_url="http://donations.test",
        publish_at=soon,
    )
    with DonationsUnitOfWork(engine) as uow:
        write_news_post(post, uow)
    assert publish_due(engine) == 0
    time.sleep(1.2)
    assert publish_due(engine) == 1
    assert publish_due(engine) == 0
    assert [e.type for e in published(donations)].count(UPDATE_PUBLISHED) == 1


def test_meals_funded_from_the_ledger_reach_the_campaign_page(
    donations: dict[str, Any], consumer_group: str
) -> None:
    engine, campaign_id = donations["engine"], donations["campaign_id"]
    event = new_event(
        MEALS_FUNDED,
        "difts/ledger",
        {
            "campaign_id": campaign_id,
            "campaign_slug": donations["slug"],
            "currency": "EUR",
            "meal_price": 1350,
            "meals_funded": 7,
            "previous_meals_funded": 5,
            "remainder": 100,
        },
    )
    producer = make_producer(donations["bootstrap"], "test-ledger")
    producer.send(LEDGER_TOPIC, key=campaign_id.encode(), value=event.to_json().encode()).get(30)
    consumer = build_consumer(donations["settings"], engine, consumer_group)
    kafka = consumer.make_kafka_consumer()
    deadline = time.monotonic() + 30
    outcomes: list[str] = []
    while "applied" not in outcomes and time.monotonic() < deadline:
        for records in kafka.poll(timeout_ms=500).values():
            outcomes += [
                consumer.handle(r).status for r in records if r.key == campaign_id.encode()
            ]
    kafka.close()
    producer.close()
    assert consumer.apply(event.to_json().encode()).status == "duplicate"
    page = donations["client"].get(f"/campaigns/{donations['slug']}?lang=en")
    assert 'data-meals="7"' in page.text
    assert "7 meals funded" in page.text


def stripe_mock(donations: dict[str, Any]) -> StripePayments:
    """Stripe as the service asks it: stripe-mock."""
    settings = donations["settings"]
    return StripePayments(settings.stripe_api_key, settings.stripe_api_base)


def publish_due(engine: Any) -> int:
    """The worker's round that publishes the news posts now due."""
    with DonationsUnitOfWork(engine) as uow:
        return publish_due_posts("http://donations.test", uow)
