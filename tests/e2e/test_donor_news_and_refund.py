"""A campaign manager's path through the running system: a campaign made and published with
the admin API takes a gift; a news post published through the API reaches the donor who asked
for news; a refund through the signed webhook takes the meals back on the campaign page."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from tests.support.stripe_signing import encode, sign

from .conftest import RunningSystem, applied_outcome, log_tail


def admin(system: RunningSystem) -> dict[str, str]:
    return {"Authorization": f"Bearer {system.admin_token}"}


def wait_for(condition: Callable[[], bool], system: RunningSystem, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log_tail(system)}")
        time.sleep(0.5)


def stripe(system: RunningSystem, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Post a signed event of `kind`; its answer, with the outcome the worker applied it
    with."""
    body = encode(
        {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind, "data": {"object": obj}}
    )
    reply = requests.post(
        f"{system.url('donations')}/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": sign(body, system.webhook_secret)},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    answer = dict(reply.json())
    assert answer["outcome"] == "received", answer  # recorded; the worker applies it
    return {**answer, "outcome": applied_outcome(system, answer["event"])}


def meals_on_page(system: RunningSystem, slug: str) -> int:
    page = requests.get(f"{system.url('donations')}/campaigns/{slug}?lang=en", timeout=10).text
    return int(page.split('data-meals="', 1)[1].split('"', 1)[0])


def test_a_campaign_manager_runs_a_campaign_and_its_news_reach_the_donor(
    system: RunningSystem,
) -> None:
    api = f"{system.url('donations')}/api/v1"
    slug = f"bruz-{uuid.uuid4().hex[:8]}"
    created = requests.post(
        f"{api}/campaigns",
        headers=admin(system),
        json={
            "slug": slug,
            "title": "A canteen in Bruz",
            "cause": "Les Petites Cantines",
            "meal_price": 1350,
            "currency": "EUR",
            "goal_meals": 50,
            "money_uses": ["Premises", "First hire"],
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert requests.get(f"{api}/campaigns/{slug}", timeout=10).status_code == 404  # a draft
    published = requests.post(f"{api}/campaigns/{slug}/publish", headers=admin(system), timeout=10)
    assert published.json()["status"] == "live"

    donor = f"news-{uuid.uuid4().hex[:8]}@example.org"
    gift = requests.post(
        f"{api}/campaigns/{slug}/donations",
        json={"meals": 2, "updates_opt_in": True, "donor": {"email": donor, "name": "Camille"}},
        timeout=30,
    ).json()
    pi = f"pi_{uuid.uuid4().hex[:20]}"
    session = {
        "id": f"cs_{gift['id']}",
        "object": "checkout.session",
        "amount_total": 2700,
        "currency": "eur",
        "payment_status": "paid",
        "payment_intent": pi,
        "client_reference_id": gift["id"],
        "metadata": {"donation_id": gift["id"]},
    }
    assert stripe(system, "checkout.session.completed", session)["outcome"] == "succeeded"
    system.mailbox.wait_for(1, to=donor, timeout=60)  # the receipt
    wait_for(lambda: meals_on_page(system, slug) == 2, system, "2 meals on the campaign page")

    title = f"A new Petite Cantine in Bruz {uuid.uuid4().hex[:6]}"
    post = requests.post(
        f"{api}/campaigns/{slug}/news",
        headers=admin(system),
        json={"title": title, "body_markdown": "Dear difteurs, **we are open**!"},
        timeout=10,
    )
    assert post.status_code == 201, post.text
    page = requests.get(post.json()["url"], timeout=10)
    assert page.status_code == 200 and "<strong>we are open</strong>" in page.text
    wait_for(
        lambda: any(title in str(m["Subject"]) for m in system.mailbox.messages(to=donor)),
        system,
        "the news email",
    )

    refund = {
        "id": f"re_{uuid.uuid4().hex[:12]}",
        "object": "refund",
        "amount": 1350,
        "currency": "eur",
        "payment_intent": pi,
        "status": "succeeded",
    }
    assert stripe(system, "refund.created", refund)["outcome"] == "partially_refunded"
    assert stripe(system, "refund.created", refund)["outcome"] == "already_refunded"
    wait_for(lambda: meals_on_page(system, slug) == 1, system, "the refund to take a meal back")

    closed = requests.post(f"{api}/campaigns/{slug}/close", headers=admin(system), timeout=10)
    assert closed.json()["status"] == "closed"
    refused = requests.post(
        f"{api}/campaigns/{slug}/donations",
        json={"meals": 1, "donor": {"email": donor}},
        timeout=10,
    )
    assert refused.status_code == 409
