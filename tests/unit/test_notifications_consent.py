"""Who may be emailed about what, on a real SQLite database: news and impact emails reach only
the donors of a campaign who consented and did not unsubscribe, once each; the unsubscribe
links and one-click POST work and cannot be forged; operators can search, resend, count and
erase. (The SMTP side of these emails is in test_notifications_delivery.py.)"""

from __future__ import annotations

import email
import email.policy
import re
import smtplib
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from services.notifications import store
from services.notifications.__main__ import MIGRATIONS
from services.notifications.app import create_app
from services.notifications.config import Settings
from services.notifications.consent import ConsentKeys, InvalidUnsubscribeLink
from services.notifications.consumer import letterhead
from services.notifications.handlers import Outbox, event_handlers, release_overdue_receipts
from services.notifications.sender import RetryPolicy, Sender
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.shared.consumer import IdempotentConsumer
from services.shared.db import make_engine, upgrade
from services.shared.envelope import new_event
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    DONATION_BOOKED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    MILESTONE_REACHED,
    UPDATE_PUBLISHED,
)
from tests.unit.test_notifications_delivery import ScriptedRelay, ScriptedSmtp

NOW = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
ADMIN = {"Authorization": "Bearer dev-admin-token"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'notifications.db'}"
    upgrade(url, MIGRATIONS)
    return replace(Settings.from_env(), database_url=url, admin_token="")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def consumer(settings: Settings, engine: Engine) -> IdempotentConsumer:
    keys = ConsentKeys(settings.signing_secret)
    return IdempotentConsumer(
        lambda: NotificationsUnitOfWork(engine),
        "notifications-unit",
        ("t",),
        event_handlers(letterhead(settings), keys),
        "unused:9092",
        None,
    )  # type: ignore[arg-type]


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def gift(
    email_address: str,
    opt_in: bool,
    campaign: str = "camp_1",
    at: datetime = NOW,
    locale: str = "en",
    donation_id: str | None = None,
) -> bytes:
    body = {
        "donation_id": donation_id or f"don_{uuid.uuid4().hex[:8]}",
        "campaign_id": campaign,
        "campaign_slug": f"slug-{campaign}",
        "campaign_title": "Les Petites Cantines",
        "campaign_cause": "Les Petites Cantines",
        "amount": 2700,
        "currency": "EUR",
        "meal_price": 1350,
        "donor": {"email": email_address, "name": "Ada", "locale": locale},
        "updates_opt_in": opt_in,
        "succeeded_at": at.isoformat(),
    }
    return new_event(DONATION_SUCCEEDED, "difts/donations", body).to_json().encode()


def news(campaign: str = "camp_1", post_id: str = "post_1", event_id: str | None = None) -> bytes:
    body = {
        "campaign_id": campaign,
        "campaign_slug": f"slug-{campaign}",
        "campaign_title": "Les Petites Cantines",
        "cause": "Les Petites Cantines",
        "post_id": post_id,
        "title": "Opening of Petites Cantines Bagnolet",
        "body_markdown": "We **open** in Bagnolet on Monday.",
        "body_html": "<p>We <strong>open</strong> in Bagnolet on Monday.</p>"
        "<script>alert(1)</script>",
        "url": f"http://127.0.0.1:8001/campaigns/slug-{campaign}/news/{post_id}",
        "published_at": NOW.isoformat(),
    }
    return (
        new_event(UPDATE_PUBLISHED, "difts/donations", body, event_id=event_id).to_json().encode()
    )


def milestone(campaign: str = "camp_1", meals: int = 500) -> bytes:
    body = {
        "campaign_id": campaign,
        "campaign_slug": f"slug-{campaign}",
        "milestone": f"meals-{meals}",
        "kind": "meals",
        "value": meals,
        "meals_funded": meals,
        "reached_at": NOW.isoformat(),
    }
    return new_event(MILESTONE_REACHED, "difts/ledger", body).to_json().encode()


def rows(engine: Engine, kind: str | None = None) -> list[Any]:
    query = select(store.deliveries).order_by(store.deliveries.c.created_at)
    if kind:
        query = query.where(store.deliveries.c.kind == kind)
    with engine.connect() as conn:
        return list(conn.execute(query))


def parsed(row: Any) -> email.message.EmailMessage:
    message = email.message_from_string(row.message, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def unsubscribe_path(row: Any) -> str:
    header = str(parsed(row)["List-Unsubscribe"])
    match = re.fullmatch(r"<http://127\.0\.0\.1:8003(/unsubscribe/[^>]+)>", header)
    assert match, header
    return match.group(1)


def all_campaigns_path(row: Any) -> str:
    text = parsed(row).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(r"every campaign: http://127\.0\.0\.1:8003(/unsubscribe/\S+)", text)
    assert match, text
    return match.group(1)


# --- who gets the news ----------------------------------------------------------------------


def test_a_news_post_is_queued_once_to_each_consenting_donor_of_its_campaign_only(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    consumer.apply(gift("yes@example.org", opt_in=True))
    consumer.apply(gift("no@example.org", opt_in=False))
    consumer.apply(gift("other@example.org", opt_in=True, campaign="camp_2"))

    assert consumer.apply(news()).status == "applied"
    consumer.apply(news(event_id=f"again-{uuid.uuid4()}"))  # the same post announced twice

    [row] = rows(engine, "news")
    assert (row.recipient, row.status, row.post_id) == ("yes@example.org", "pending", "post_1")
    message = parsed(row)
    assert message["Subject"] == "Les Petites Cantines: Opening of Petites Cantines Bagnolet"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("Dear difteurs,\n")
    assert "We **open** in Bagnolet on Monday." in text
    assert "/campaigns/slug-camp_1" in text
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<strong>open</strong>" in html
    assert "<script>" not in html


def test_a_french_donor_gets_the_news_in_french(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    consumer.apply(gift("zoe@example.org", opt_in=True, locale="fr-FR"))
    consumer.apply(news())

    [row] = rows(engine, "news")
    assert parsed(row).get_body(("plain",)).get_content().startswith("Chers difteurs,")  # type: ignore[union-attr]


def test_an_impact_email_goes_at_most_once_per_donor_and_milestone(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    consumer.apply(gift("yes@example.org", opt_in=True))
    consumer.apply(gift("no@example.org", opt_in=False))
    consumer.apply(milestone(meals=500))
    consumer.apply(milestone(meals=500))  # a second event id for the same milestone

    [row] = rows(engine, "impact")
    assert row.recipient == "yes@example.org"
    assert row.milestone == "meals-500"
    assert parsed(row)["Subject"] == "Together you funded 500 meals for Les Petites Cantines"


def test_the_one_click_post_unsubscribes_and_the_next_post_is_skipped(
    consumer: IdempotentConsumer, engine: Engine, client: FlaskClient
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=True))
    consumer.apply(gift("bob@example.org", opt_in=True))
    consumer.apply(news(post_id="post_1"))
    first = {row.recipient: row for row in rows(engine, "news")}

    answer = client.post(
        unsubscribe_path(first["ada@example.org"]),
        data={"List-Unsubscribe": "One-Click"},
    )
    assert answer.status_code == 200
    consumer.apply(news(post_id="post_2"))

    second = {row.recipient: row for row in rows(engine, "news") if row.post_id == "post_2"}
    assert second["ada@example.org"].status == "skipped"
    assert second["ada@example.org"].last_error == "unsubscribed"
    assert second["bob@example.org"].status == "pending"
    # The first post, still pending for Ada when she unsubscribed, is not sent either.
    assert {
        row.recipient: row.status for row in rows(engine, "news") if row.post_id == "post_1"
    } == {
        "ada@example.org": "skipped",
        "bob@example.org": "pending",
    }


def test_opening_the_link_only_asks_for_confirmation(
    consumer: IdempotentConsumer, engine: Engine, client: FlaskClient
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=True))
    consumer.apply(news())
    [row] = rows(engine, "news")

    answer = client.get(unsubscribe_path(row))

    assert answer.status_code == 200
    assert b'<form method="post"' in answer.data
    assert answer.headers["Cache-Control"] == "no-store"
    with engine.connect() as conn:
        assert store.still_wants_news(conn, "camp_1", "ada@example.org")


def test_a_tampered_or_malformed_link_gets_a_clear_page_and_changes_nothing(
    consumer: IdempotentConsumer, engine: Engine, client: FlaskClient, settings: Settings
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=True))
    consumer.apply(news())
    [row] = rows(engine, "news")
    path = unsubscribe_path(row)
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    forged = ConsentKeys("not-our-secret").unsubscribe_token(
        ConsentKeys(settings.signing_secret).email_ref("ada@example.org"), None
    )

    for bad in (tampered, "/unsubscribe/not-a-token", f"/unsubscribe/{forged}"):
        for method in (client.get, client.post):
            answer = method(bad)
            assert answer.status_code == 400
            assert b"not valid" in answer.data

    with engine.connect() as conn:
        assert store.still_wants_news(conn, "camp_1", "ada@example.org")
    with pytest.raises(InvalidUnsubscribeLink):
        ConsentKeys(settings.signing_secret).read_unsubscribe_token("garbage")


def test_unsubscribing_from_every_campaign_covers_campaigns_given_to_later_without_consent(
    consumer: IdempotentConsumer, engine: Engine, client: FlaskClient
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=True, campaign="camp_1"))
    consumer.apply(gift("ada@example.org", opt_in=True, campaign="camp_2"))
    consumer.apply(news(campaign="camp_1"))
    [row] = rows(engine, "news")

    assert client.post(all_campaigns_path(row)).status_code == 200

    with engine.connect() as conn:
        assert not store.still_wants_news(conn, "camp_1", "ada@example.org")
        assert not store.still_wants_news(conn, "camp_2", "ada@example.org")


def test_a_new_gift_with_consent_subscribes_again(
    consumer: IdempotentConsumer, engine: Engine, client: FlaskClient
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=True, at=datetime.now(UTC) - timedelta(days=1)))
    consumer.apply(news(post_id="post_1"))
    [row] = rows(engine, "news")
    client.post(all_campaigns_path(row))
    # A gift without consent does not subscribe her again ...
    consumer.apply(gift("ada@example.org", opt_in=False, at=datetime.now(UTC)))
    with engine.connect() as conn:
        assert not store.still_wants_news(conn, "camp_1", "ada@example.org")

    # ... a gift with consent, given after she unsubscribed, does.
    consumer.apply(
        gift("ada@example.org", opt_in=True, at=datetime.now(UTC) + timedelta(seconds=1))
    )

    with engine.connect() as conn:
        assert store.still_wants_news(conn, "camp_1", "ada@example.org")
        [donor] = conn.execute(select(store.donors)).all()
    assert donor.unsubscribed_at is None
    assert donor.consent_source == "checkout"


# --- refunds --------------------------------------------------------------------------------


def test_a_refund_is_confirmed_to_the_donor_once_per_refund(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=False, donation_id="don_9", locale="fr"))
    for refund_id, amount, total in (("re_1", 700, 700), ("re_2", 2000, 2700)):
        body = {
            "donation_id": "don_9",
            "campaign_id": "camp_1",
            "campaign_slug": "slug-camp_1",
            "refund_id": refund_id,
            "amount": amount,
            "currency": "EUR",
            "total_refunded": total,
            "fully_refunded": total == 2700,
            "refunded_at": NOW.isoformat(),
        }
        raw = new_event(DONATION_REFUNDED, "difts/donations", body).to_json().encode()
        assert consumer.apply(raw).status == "applied"

    refunds = rows(engine, "refund")
    assert [row.recipient for row in refunds] == ["ada@example.org"] * 2
    assert parsed(refunds[1])["Subject"] == "Votre don à Les Petites Cantines a été remboursé"
    assert "List-Unsubscribe" not in parsed(refunds[1])


def test_a_refund_of_a_donation_nobody_knows_goes_to_dead_letters(
    consumer: IdempotentConsumer,
) -> None:
    body = {
        "donation_id": "don_unknown",
        "campaign_id": "camp_1",
        "campaign_slug": "slug-camp_1",
        "refund_id": "re_1",
        "amount": 700,
        "currency": "EUR",
        "total_refunded": 700,
        "fully_refunded": False,
        "refunded_at": NOW.isoformat(),
    }
    raw = new_event(DONATION_REFUNDED, "difts/donations", body).to_json().encode()

    outcome = consumer.apply(raw)

    assert outcome.status == "dead_lettered"
    assert "no donor" in (outcome.reason or "")


def test_a_news_post_with_missing_fields_goes_to_dead_letters(
    consumer: IdempotentConsumer,
) -> None:
    raw = new_event(UPDATE_PUBLISHED, "difts/donations", {"campaign_id": "c"}).to_json().encode()

    assert consumer.apply(raw).status == "dead_lettered"


def test_a_published_campaign_names_the_impact_emails(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    body = {
        "campaign_id": "camp_3",
        "slug": "bruz",
        "title": "A new Petite Cantine in Bruz",
        "cause": "Les Petites Cantines",
        "currency": "EUR",
        "meal_price": 1350,
    }
    consumer.apply(new_event(CAMPAIGN_PUBLISHED, "difts/donations", body).to_json().encode())
    consumer.apply(gift("ada@example.org", opt_in=True, campaign="camp_3"))
    consumer.apply(milestone(campaign="camp_3", meals=100))

    [row] = rows(engine, "impact")
    text = parsed(row).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Together you funded 100 meals for Les Petites Cantines" in text


# --- the operators' API ---------------------------------------------------------------------


def test_operators_search_by_donor_campaign_post_and_status_and_count_a_post(
    consumer: IdempotentConsumer, engine: Engine, client: FlaskClient
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=True))
    consumer.apply(gift("bob@example.org", opt_in=True))
    consumer.apply(news(post_id="post_1"))
    ada_news = next(row for row in rows(engine, "news") if row.recipient == "ada@example.org")
    client.post(unsubscribe_path(ada_news))

    by_donor = client.get("/api/v1/deliveries?donor=ADA@example.org", headers=ADMIN).get_json()
    assert sorted(d["kind"] for d in by_donor) == ["news", "receipt"]
    assert {d["recipient"] for d in by_donor} == {"a***@example.org"}

    by_post = client.get(
        "/api/v1/deliveries?post_id=post_1&status=pending&campaign_id=camp_1", headers=ADMIN
    ).get_json()
    assert [d["recipient"] for d in by_post] == ["b***@example.org"]

    counts = client.get("/api/v1/posts/post_1/counts", headers=ADMIN).get_json()
    assert counts == {"post_id": "post_1", "sent": 0, "failed": 0, "skipped": 1, "pending": 1}


def test_the_admin_api_wants_the_admin_role(client: FlaskClient) -> None:
    assert client.get("/api/v1/deliveries").status_code == 401
    finance = {"Authorization": "Bearer dev-finance-token"}
    assert client.get("/api/v1/deliveries", headers=finance).status_code == 403
    assert (
        client.post("/api/v1/erasures", json={"email": "a@b.org"}, headers=finance).status_code
        == 403
    )


def test_an_operator_resends_a_failed_delivery(
    consumer: IdempotentConsumer, engine: Engine, client: FlaskClient
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=False))
    [receipt] = rows(engine, "receipt")
    with engine.begin() as conn:
        store.mark_failed(conn, receipt.id, "550 no such user")

    answer = client.post(f"/api/v1/deliveries/{receipt.id}/resend", headers=ADMIN)

    assert answer.status_code == 202
    assert answer.get_json()["status"] == "pending"
    assert client.post("/api/v1/deliveries/nope/resend", headers=ADMIN).status_code == 404


def test_erasure_removes_the_donor_and_leaves_a_pseudonym_in_the_log(
    consumer: IdempotentConsumer, engine: Engine, client: FlaskClient, settings: Settings
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=True))
    consumer.apply(gift("bob@example.org", opt_in=True))
    consumer.apply(news())

    answer = client.post("/api/v1/erasures", json={"email": "Ada@example.org"}, headers=ADMIN)

    assert answer.status_code == 200
    outcome = answer.get_json()
    ref = ConsentKeys(settings.signing_secret).email_ref("ada@example.org")
    assert outcome == {
        "email_ref": ref,
        "donors_removed": 1,
        "deliveries_pseudonymised": 2,
        "pending_cancelled": 2,
    }
    with engine.connect() as conn:
        assert [d.email for d in conn.execute(select(store.donors))] == ["bob@example.org"]
    for row in rows(engine):
        if row.recipient_ref == ref:
            assert row.recipient.startswith("erased:")
            assert row.message is None
            assert row.status == "skipped"
        else:
            assert row.recipient == "bob@example.org"
    # Operators still find what was sent to her, by the address she gives them.
    found = client.get("/api/v1/deliveries?donor=ada@example.org", headers=ADMIN).get_json()
    assert len(found) == 2
    assert {d["recipient"] for d in found} == {"(erased)"}
    # A second request changes nothing more.
    again = client.post("/api/v1/erasures", json={"email": "ada@example.org"}, headers=ADMIN)
    assert again.get_json()["donors_removed"] == 0


def test_a_donor_recorded_before_pseudonyms_can_still_unsubscribe(
    consumer: IdempotentConsumer, engine: Engine, client: FlaskClient
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=True))
    with engine.begin() as conn:  # as 0001 left it: no pseudonym
        conn.execute(store.donors.update().values(email_ref=None))
    consumer.apply(news())
    [row] = rows(engine, "news")

    assert client.post(unsubscribe_path(row)).status_code == 200

    with engine.connect() as conn:
        assert not store.still_wants_news(conn, "camp_1", "ada@example.org")


# --- the sender's manners with news ----------------------------------------------------------


def a_sender(engine: Engine, *sessions: ScriptedSmtp | OSError, rate: float = 0.0) -> Sender:
    relay = ScriptedRelay(host="relay.test", port=25, timeout=1, sessions=list(sessions))
    return Sender(
        engine,
        relay,
        "thanks@difts.localhost",
        RetryPolicy(max_attempts=3, first_delay=timedelta(seconds=30)),
        rate=rate,
    )


def test_the_sender_keeps_to_its_rate(consumer: IdempotentConsumer, engine: Engine) -> None:
    for n in range(6):
        consumer.apply(gift(f"donor-{n}@example.org", opt_in=False))
    session = ScriptedSmtp(replies=[])

    started = time.monotonic()
    assert a_sender(engine, session, rate=20).send_due() == 6
    took = time.monotonic() - started

    assert len(session.sent) == 6
    assert took >= 5 / 20 * 0.9  # six messages at 20/s: five intervals of 50 ms


def test_news_whose_donor_unsubscribed_after_it_was_claimed_is_skipped_not_sent(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    consumer.apply(gift("ada@example.org", opt_in=True))
    consumer.apply(gift("bob@example.org", opt_in=True))
    consumer.apply(news())
    # Ada unsubscribes while her email sits in a sender's claimed batch: only her donor row
    # changes (the page's skip of pending rows has nothing left to catch).
    with engine.begin() as conn:
        conn.execute(
            store.donors.update()
            .where(store.donors.c.email == "ada@example.org")
            .values(unsubscribed_at=datetime.now(UTC))
        )
    session = ScriptedSmtp(replies=[])

    while a_sender(engine, session).send_due(now=datetime.now(UTC) + timedelta(seconds=1)):
        pass

    sent = sorted(to[0] for _from, to, _msg in session.sent)
    assert sent == ["ada@example.org", "bob@example.org", "bob@example.org"]  # 2 receipts, 1 news
    statuses = {(row.kind, row.recipient): row.status for row in rows(engine)}
    assert statuses[("news", "ada@example.org")] == "skipped"
    assert statuses[("news", "bob@example.org")] == "sent"


def test_a_421_retries_that_email_later_and_hands_the_rest_back_unattempted(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    consumer.apply(gift("a@example.org", opt_in=False))
    consumer.apply(gift("b@example.org", opt_in=False))
    closing = smtplib.SMTPDataError(421, b"4.3.2 Service shutting down")
    session = ScriptedSmtp(replies=[closing, None])

    a_sender(engine, session).send_due(now=soon)

    assert session.sent == []  # the second email was not tried on a closed session
    states = sorted((row.status, row.attempts, row.last_error or "") for row in rows(engine))
    assert states == [("pending", 0, ""), ("pending", 1, "421 4.3.2 Service shutting down")]


# --- receipts that state the ledger's count of meals ---------------------------------------


def booked(donation_id: str, meals: int, remainder: int, campaign: str = "camp_1") -> bytes:
    body = {
        "donation_id": donation_id,
        "campaign_id": campaign,
        "campaign_slug": f"slug-{campaign}",
        "amount": 2000,
        "currency": "EUR",
        "meal_price": 1350,
        "meals": meals,
        "meals_funded": meals,
        "remainder": remainder,
    }
    return new_event(DONATION_BOOKED, "difts/ledger", body).to_json().encode()


@pytest.fixture
def waiting_consumer(settings: Settings, engine: Engine) -> IdempotentConsumer:
    """The consumer as the worker builds it: receipts wait up to 30 s for the ledger."""
    handlers = event_handlers(
        letterhead(settings), ConsentKeys(settings.signing_secret), timedelta(seconds=30)
    )
    return IdempotentConsumer(
        lambda: NotificationsUnitOfWork(engine),
        "notifications-unit",
        ("t",),
        handlers,
        "unused:9092",
        None,  # type: ignore[arg-type]
    )  # type: ignore[arg-type]


def receipt_text(engine: Engine, donation_id: str) -> str:
    [row] = [row for row in rows(engine, "receipt") if row.donation_id == donation_id]
    return parsed(row).get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_once_the_ledger_books_a_campaign_a_receipt_waits_and_states_its_count_of_meals(
    waiting_consumer: IdempotentConsumer, engine: Engine
) -> None:
    # The first gift of a campaign: nothing says the ledger is there, no wait.
    waiting_consumer.apply(gift("ada@example.org", opt_in=False, donation_id="don_1"))
    assert "It funds 2 meals" in receipt_text(engine, "don_1")
    waiting_consumer.apply(booked("don_1", meals=2, remainder=0))

    # The ledger's word wins over the gift's own arithmetic: 2 meals, and 3.00 EUR carried.
    waiting_consumer.apply(gift("bob@example.org", opt_in=False, donation_id="don_2"))
    assert [row.donation_id for row in rows(engine, "receipt")] == ["don_1"]  # held
    waiting_consumer.apply(booked("don_2", meals=2, remainder=300))

    text = receipt_text(engine, "don_2")
    assert "It funds 2 meals" in text
    assert "The remaining €3.00 goes towards the next meal." in text
    with engine.connect() as conn:
        assert conn.execute(select(store.held_receipts)).all() == []


def test_a_booking_that_came_first_is_on_the_receipt_at_once(
    waiting_consumer: IdempotentConsumer, engine: Engine
) -> None:
    waiting_consumer.apply(booked("don_1", meals=3, remainder=50))
    waiting_consumer.apply(gift("ada@example.org", opt_in=False, donation_id="don_1"))

    assert "It funds 3 meals" in receipt_text(engine, "don_1")


def test_a_receipt_the_ledger_leaves_waiting_goes_out_with_the_gifts_own_count(
    waiting_consumer: IdempotentConsumer, engine: Engine, settings: Settings
) -> None:
    waiting_consumer.apply(booked("don_0", meals=1, remainder=0))
    waiting_consumer.apply(gift("ada@example.org", opt_in=False, donation_id="don_1"))
    writer = Outbox(letterhead(settings), ConsentKeys(settings.signing_secret))

    assert release_overdue_receipts(engine, writer, datetime.now(UTC)) == 0  # not yet
    assert release_overdue_receipts(engine, writer, datetime.now(UTC) + timedelta(minutes=1)) == 1

    assert "It funds 2 meals" in receipt_text(engine, "don_1")
    # The late booking finds nothing held, and queues nothing more.
    waiting_consumer.apply(booked("don_1", meals=2, remainder=0))
    assert len(rows(engine, "receipt")) == 1


def test_erasure_removes_a_receipt_held_for_the_ledger(
    waiting_consumer: IdempotentConsumer, engine: Engine, client: FlaskClient
) -> None:
    waiting_consumer.apply(booked("don_0", meals=1, remainder=0))
    waiting_consumer.apply(gift("ada@example.org", opt_in=False, donation_id="don_1"))

    client.post("/api/v1/erasures", json={"email": "ada@example.org"}, headers=ADMIN)

    with engine.connect() as conn:
        assert conn.execute(select(store.held_receipts)).all() == []
