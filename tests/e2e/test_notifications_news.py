"""A cause's news end to end: donors who gave through the real donations service and Stripe
webhook, and asked for news, get a news post once each from the running notifications worker;
a mail client's one-click unsubscribe (RFC 8058), POSTed to the running notifications web
process, stops the next post for that donor only."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

import requests

from services.shared.envelope import new_event
from services.shared.events import UPDATE_PUBLISHED
from services.shared.kafka import make_producer
from tests.support.stripe_signing import checkout_completed_event, encode

from .conftest import RunningSystem, log_tail
from .test_one_dift import SLUG, campaign_id, give, post_webhook, wait_for


def publish_news(system: RunningSystem, campaign: str, title: str) -> str:
    """What the donations service publishes when a campaign manager posts news (on this
    system's own topics)."""
    post_id = f"post_{uuid.uuid4().hex[:8]}"
    event = new_event(
        UPDATE_PUBLISHED,
        "difts/donations",
        {
            "campaign_id": campaign,
            "campaign_slug": SLUG,
            "campaign_title": "Les Petites Cantines",
            "cause": "Les Petites Cantines",
            "post_id": post_id,
            "title": title,
            "body_markdown": "We open on Monday at noon. Come and cook with us!",
            "body_html": "<p>We open on <strong>Monday</strong> at noon.</p>"
            "<p>Come and cook with us!</p>",
            "url": f"{system.url('donations')}/campaigns/{SLUG}#{post_id}",
            "published_at": datetime.now(UTC).isoformat(),
        },
    )
    prefix = system.stack.env["KAFKA_TOPIC_PREFIX"]
    producer = make_producer(system.stack.env["KAFKA_BOOTSTRAP_SERVERS"], "e2e-news")
    try:
        producer.send(
            f"{prefix}campaigns.events", key=campaign.encode(), value=event.to_json().encode()
        ).get(timeout=30)
    finally:
        producer.close()
    return post_id


def with_subject(system: RunningSystem, ending: str, to: str | None = None) -> list[EmailMessage]:
    return [m for m in system.mailbox.messages(to=to) if str(m["Subject"]).endswith(ending)]


def test_news_reaches_donors_who_asked_once_and_one_click_unsubscribe_stops_the_next(
    system: RunningSystem,
) -> None:
    tag = uuid.uuid4().hex[:8]
    stays, leaves, quiet = (f"{who}-{tag}@example.org" for who in ("stays", "leaves", "quiet"))
    campaign = campaign_id(system)
    for email, opt_in in ((stays, True), (leaves, True), (quiet, False)):
        donation = give(system, email, amount=1350, currency="eur", updates_opt_in=opt_in)
        event = checkout_completed_event(donation["id"], campaign, 1350)
        assert post_webhook(system, encode(event)).status_code == 200
    for email in (stays, leaves, quiet):
        system.mailbox.wait_for(1, to=email, timeout=60)  # the receipts

    first = f"Bagnolet opens {tag}"
    post_id = publish_news(system, campaign, first)
    wait_for(
        lambda: len(with_subject(system, first)) >= 2, 60, system, "the first post to two donors"
    )
    [to_leaver] = with_subject(system, first, to=leaves)
    link = re.fullmatch(r"<https?://[^/]+(/unsubscribe/\S+)>", str(to_leaver["List-Unsubscribe"]))
    assert link, to_leaver
    url = system.url("notifications") + link.group(1)

    # A link preview or a mail scanner fetches the link: that must change nothing.
    assert requests.get(url, timeout=10).status_code == 200
    answer = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert answer.status_code == 200, answer.text
    tampered = requests.post(url[:-4] + "AAAA", timeout=10)
    assert tampered.status_code == 400

    second = f"Bruz opens {tag}"
    publish_news(system, campaign, second)
    system.mailbox.wait_for(3, to=stays, timeout=60)
    time.sleep(3)  # the sender would have reached the leaver by now

    assert len(with_subject(system, first)) == 2, log_tail(system)
    assert with_subject(system, first, to=quiet) == []
    assert len(with_subject(system, second, to=stays)) == 1
    assert with_subject(system, second, to=leaves) == []
    counts = requests.get(
        f"{system.url('notifications')}/api/v1/posts/{post_id}/counts",
        headers={"Authorization": f"Bearer {system.admin_token}"},
        timeout=10,
    ).json()
    assert (counts["sent"], counts["failed"], counts["skipped"]) == (2, 0, 0)
