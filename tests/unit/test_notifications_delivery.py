"""The delivery log from event to SMTP, on a real SQLite database with a scripted SMTP relay:
one receipt per donation, retries with backoff for what may pass, failure for what will not."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from services.notifications import store
from services.notifications.__main__ import MIGRATIONS
from services.notifications.app import create_app
from services.notifications.config import Settings
from services.notifications.consumer import letterhead
from services.notifications.handlers import event_handlers
from services.notifications.sender import RetryPolicy, Sender, SmtpRelay
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.shared.consumer import IdempotentConsumer
from services.shared.db import make_engine, upgrade
from services.shared.envelope import new_event
from services.shared.events import DONATION_SUCCEEDED

NOW = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'notifications.db'}"
    upgrade(url, MIGRATIONS)
    return replace(Settings.from_env(), database_url=url, admin_token="s3cret")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def consumer(settings: Settings, engine: Engine) -> IdempotentConsumer:
    # Only `apply` is used here: no broker, so no dead-letter producer.
    return IdempotentConsumer(
        lambda: NotificationsUnitOfWork(engine),
        "notifications-unit",
        ("t",),
        event_handlers(letterhead(settings)),
        "unused:9092",
        None,
    )  # type: ignore[arg-type]


def succeeded(
    donation_id: str | None = None,
    email: str = "zoe@example.org",
    event_id: str | None = None,
    **data: Any,
) -> bytes:
    body: dict[str, Any] = {
        "donation_id": donation_id or f"don_{uuid.uuid4().hex[:8]}",
        "campaign_id": "camp_1",
        "campaign_slug": "petites-cantines",
        "campaign_title": "Les Petites Cantines",
        "amount": 2700,
        "currency": "EUR",
        "meal_price": 1350,
        "donor": {"email": email, "name": "Zoé", "locale": "fr"},
        "updates_opt_in": False,
        "succeeded_at": NOW.isoformat(),
    }
    body.update(data)
    return (
        new_event(DONATION_SUCCEEDED, "difts/donations", body, event_id=event_id).to_json().encode()
    )


def deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(store.deliveries).order_by(store.deliveries.c.created_at)))


# --- from event to delivery log ------------------------------------------------------------


def test_a_succeeded_donation_queues_one_pending_receipt(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    outcome = consumer.apply(succeeded("don_1"))

    assert outcome.status == "applied"
    [row] = deliveries(engine)
    assert (row.kind, row.status, row.attempts, row.recipient, row.donation_id) == (
        "receipt",
        "pending",
        0,
        "zoe@example.org",
        "don_1",
    )
    assert row.subject == "Merci pour votre don à Les Petites Cantines"
    assert "Il finance 2 repas" in row.message.replace("=\n", "")


def test_the_same_event_twice_queues_one_receipt(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    raw = succeeded("don_1")

    assert consumer.apply(raw).status == "applied"
    assert consumer.apply(raw).status == "duplicate"
    assert len(deliveries(engine)) == 1


def test_a_donation_announced_twice_under_two_event_ids_gets_one_receipt(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    consumer.apply(succeeded("don_1"))
    consumer.apply(succeeded("don_1"))

    assert len(deliveries(engine)) == 1


def test_an_address_we_cannot_write_is_logged_as_skipped(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    consumer.apply(succeeded("don_1", email="zoé@example.org"))

    [row] = deliveries(engine)
    assert row.status == "skipped"
    assert row.message is None
    assert "z***@example.org" in row.last_error


def test_consent_to_updates_once_given_is_kept_by_later_gifts(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    consumer.apply(succeeded(updates_opt_in=True, email="Zoe@Example.org"))
    consumer.apply(
        succeeded(
            updates_opt_in=False,
            email="zoe@example.org",
            donor={"email": "zoe@example.org", "name": "Zoé M.", "locale": "en"},
        )
    )

    with engine.connect() as conn:
        [donor] = conn.execute(select(store.donors)).all()
    assert (donor.email, donor.name, donor.locale, donor.updates_opt_in) == (
        "zoe@example.org",
        "Zoé M.",
        "en",
        True,
    )
    assert store.as_utc(donor.consent_at) == NOW


# --- from delivery log to SMTP --------------------------------------------------------------


@dataclass
class ScriptedSmtp:
    """An SMTP session that answers as told: the next replies for sendmail, in order."""

    replies: list[BaseException | None]
    sent: list[tuple[str, list[str], str]] = field(default_factory=list)
    closed: bool = False

    def sendmail(self, from_addr: str, to_addrs: list[str], msg: str) -> dict[str, Any]:
        reply = self.replies.pop(0) if self.replies else None
        if reply is not None:
            raise reply
        self.sent.append((from_addr, to_addrs, msg))
        return {}

    def quit(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class ScriptedRelay(SmtpRelay):
    """A relay that hands out one scripted session per batch, or refuses connections."""

    sessions: list[ScriptedSmtp | OSError] = field(default_factory=list)

    def connect(self) -> smtplib.SMTP:
        session = self.sessions.pop(0)
        if isinstance(session, OSError):
            raise session
        return session  # type: ignore[return-value]


def a_sender(engine: Engine, *sessions: ScriptedSmtp | OSError, max_attempts: int = 3) -> Sender:
    relay = ScriptedRelay(host="relay.test", port=25, timeout=1, sessions=list(sessions))
    return Sender(
        engine,
        relay,
        "thanks@difts.localhost",
        RetryPolicy(max_attempts=max_attempts, first_delay=timedelta(seconds=30)),
    )


def test_due_receipts_go_out_over_one_connection_and_are_marked_sent(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    consumer.apply(succeeded(email="a@example.org"))
    consumer.apply(succeeded(email="b@example.org"))
    session = ScriptedSmtp(replies=[])

    assert a_sender(engine, session).send_due() == 2

    assert sorted(to[0] for _from, to, _msg in session.sent) == ["a@example.org", "b@example.org"]
    assert session.closed
    assert [(row.status, row.attempts) for row in deliveries(engine)] == [("sent", 1)] * 2
    assert all(row.sent_at is not None for row in deliveries(engine))
    assert a_sender(engine, ScriptedSmtp(replies=[])).send_due() == 0


def test_an_unreachable_relay_schedules_a_later_attempt_with_backoff(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    consumer.apply(succeeded())

    a_sender(engine, ConnectionRefusedError(111, "Connection refused")).send_due(now=soon)

    [row] = deliveries(engine)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "Connection refused" in row.last_error
    # 30 s, plus up to a quarter of jitter.
    assert (
        soon + timedelta(seconds=30)
        <= store.as_utc(row.next_attempt_at)
        <= soon + timedelta(seconds=37.5)
    )
    assert a_sender(engine).send_due(now=soon + timedelta(seconds=29)) == 0


def test_a_4xx_reply_is_retried_and_a_later_attempt_succeeds(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    consumer.apply(succeeded())
    busy = smtplib.SMTPRecipientsRefused({"zoe@example.org": (451, b"4.7.1 try later")})
    a_sender(engine, ScriptedSmtp(replies=[busy])).send_due(now=soon)
    [row] = deliveries(engine)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "451 4.7.1 try later")

    later = store.as_utc(row.next_attempt_at) + timedelta(seconds=1)
    a_sender(engine, ScriptedSmtp(replies=[])).send_due(now=later)

    [row] = deliveries(engine)
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_5xx_reply_fails_the_delivery_for_good_with_the_reply(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    consumer.apply(succeeded())
    refused = smtplib.SMTPRecipientsRefused(
        {"zoe@example.org": (550, b"5.1.1 <zoe@example.org>: no such user")}
    )

    a_sender(engine, ScriptedSmtp(replies=[refused])).send_due(now=soon)

    [row] = deliveries(engine)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "550 5.1.1 <zoe@example.org>: no such user"
    assert a_sender(engine).send_due(now=soon + timedelta(days=1)) == 0


def test_a_delivery_fails_after_the_maximum_number_of_attempts(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    consumer.apply(succeeded())
    moment = soon
    for _ in range(3):
        a_sender(engine, OSError("timed out"), max_attempts=3).send_due(now=moment)
        moment += timedelta(days=1)

    [row] = deliveries(engine)
    assert (row.status, row.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in row.last_error


def test_a_lost_connection_retries_that_delivery_and_hands_the_rest_back_unattempted(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    consumer.apply(succeeded(email="a@example.org"))
    consumer.apply(succeeded(email="b@example.org"))
    session = ScriptedSmtp(replies=[smtplib.SMTPServerDisconnected("gone")])

    a_sender(engine, session).send_due(now=soon)

    rows = sorted(deliveries(engine), key=lambda row: row.attempts)
    assert [(row.status, row.attempts) for row in rows] == [("pending", 0), ("pending", 1)]
    assert store.as_utc(rows[0].next_attempt_at) == soon


def test_claimed_deliveries_are_hidden_from_other_senders(
    consumer: IdempotentConsumer, engine: Engine
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    consumer.apply(succeeded())
    with engine.begin() as conn:
        claimed = store.claim_due(conn, soon, 10, soon + timedelta(minutes=10))
    with engine.begin() as conn:
        again = store.claim_due(conn, soon + timedelta(minutes=1), 10, soon)

    assert len(claimed) == 1
    assert again == []


def test_retry_delays_double_up_to_an_hour() -> None:
    policy = RetryPolicy(first_delay=timedelta(seconds=30), longest_delay=timedelta(hours=1))

    delays = [policy.retry_at(attempt, NOW) - NOW for attempt in (1, 2, 3, 10)]

    for delay, base in zip(delays, (30, 60, 120, 3600), strict=True):
        assert timedelta(seconds=base) <= delay <= timedelta(seconds=base * 1.25)


# --- the operators' API ---------------------------------------------------------------------


def test_deliveries_are_listed_by_donation_with_masked_addresses(
    settings: Settings, consumer: IdempotentConsumer
) -> None:
    consumer.apply(succeeded("don_1", email="zoe@example.org"))
    consumer.apply(succeeded("don_2", email="max@example.org"))
    client = create_app(settings).test_client()

    answer = client.get(
        "/api/v1/deliveries?donation_id=don_1", headers={"Authorization": "Bearer s3cret"}
    )

    assert answer.status_code == 200
    [delivery] = answer.get_json()
    assert delivery["kind"] == "receipt"
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 0
    assert delivery["recipient"] == "z***@example.org"
    assert delivery["created_at"].endswith("+00:00")
    assert delivery["sent_at"] is None


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "s3cret", "Basic s3cret"])
def test_deliveries_need_the_admin_token(settings: Settings, authorization: str | None) -> None:
    client = create_app(settings).test_client()
    headers = {"Authorization": authorization} if authorization else {}

    answer = client.get("/api/v1/deliveries?donation_id=don_1", headers=headers)

    assert answer.status_code == 401
    assert answer.get_json()["code"] == 401
