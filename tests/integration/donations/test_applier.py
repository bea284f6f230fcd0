"""The webhook records, the worker applies, on real PostgreSQL and stripe-mock: the answer
comes before any Stripe call (Stripe unreachable: still 200, the event kept and applied once
Stripe answers); two appliers at once, or an applier SIGKILLed between the record and the
apply, still apply each event exactly once; concurrent webhooks sharing a commit each get
their own answer; committing an event notifies the applier (migration 0006)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from services.donations import store
from services.donations.app import create_app
from services.donations.handlers.webhooks import (
    ASK_AGAIN_AFTER,
    CLAIM_FOR,
    apply_received,
    apply_received_events,
)
from services.donations.payments import StripePayments
from services.donations.unit_of_work import DonationsUnitOfWork, StripeEventRecorder
from services.shared.events import DONATION_SUCCEEDED
from tests.integration.donations.conftest import SECRET, post_signed
from tests.support.donations import donations_settings
from tests.support.stripe_signing import checkout_completed_event, encode

pytestmark = pytest.mark.integration

REPO = __file__.rsplit("/tests/", 1)[0]


def give(donations: dict[str, Any]) -> dict[str, Any]:
    reply = donations["client"].post(
        f"/api/v1/campaigns/{donations['slug']}/donations",
        json={"donor": {"email": "ada@example.org"}, "meals": 2, "updates_opt_in": False},
    )
    assert reply.status_code == 201, reply.json
    return dict(reply.json)


def paid(donations: dict[str, Any], donation: dict[str, Any]) -> bytes:
    return encode(
        checkout_completed_event(donation["id"], donations["campaign_id"], donation["amount"])
    )


def stripe_mock(donations: dict[str, Any]) -> StripePayments:
    settings = donations["settings"]
    return StripePayments(settings.stripe_api_key, settings.stripe_api_base)


def outcome_of(engine: Engine, event_id: str) -> str:
    table = store.stripe_events
    with engine.connect() as conn:
        return str(conn.execute(select(table.c.outcome).where(table.c.id == event_id)).scalar())


def status_of(engine: Engine, donation_id: str) -> str:
    table = store.donations
    with engine.connect() as conn:
        return str(conn.execute(select(table.c.status).where(table.c.id == donation_id)).scalar())


def succeeded_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(store.outbox)
                .where(store.outbox.c.event_type == DONATION_SUCCEEDED)
            ).scalar_one()
        )


def test_the_webhook_answers_while_stripe_is_unreachable_and_the_worker_applies_later(
    donations: dict[str, Any], database_url: str
) -> None:
    engine = donations["engine"]
    donation = give(donations)
    # The same service, its Stripe API unreachable (nothing listens on port 9).
    cut_off = donations_settings(database_url, "http://127.0.0.1:9", stripe_webhook_secret=SECRET)
    client = create_app(cut_off).test_client()
    reply = post_signed(client, paid(donations, donation), apply=False)
    assert reply.status_code == 200
    answer = reply.json
    assert answer["received"] is True and answer["outcome"] == "received"
    assert outcome_of(engine, answer["event"]) == "received"  # committed before the answer
    unreachable = client.application.extensions["donations"].payments
    now = datetime.now(UTC)
    assert apply_received_events(DonationsUnitOfWork(engine), unreachable, now=now) == 0
    assert outcome_of(engine, answer["event"]) == "received"
    assert status_of(engine, donation["id"]) == "pending"
    assert succeeded_events(engine) == 0
    # Stripe answers again: the event is applied, once.
    later = now + ASK_AGAIN_AFTER + timedelta(seconds=1)
    assert apply_received_events(DonationsUnitOfWork(engine), stripe_mock(donations), now=later)
    assert outcome_of(engine, answer["event"]) == "succeeded"
    assert status_of(engine, donation["id"]) == "succeeded"
    assert apply_received_events(DonationsUnitOfWork(engine), stripe_mock(donations)) == 0
    assert succeeded_events(engine) == 1
    again = post_signed(client, paid(donations, donation), apply=False)
    assert again.json["outcome"] == "received"  # another event id for the same payment
    applied = apply_received_events(DonationsUnitOfWork(engine), stripe_mock(donations))
    assert applied == 1
    assert outcome_of(engine, again.json["event"]) == "already_succeeded"
    assert succeeded_events(engine) == 1


def test_two_appliers_at_once_apply_each_event_once(donations: dict[str, Any]) -> None:
    engine, client = donations["engine"], donations["client"]
    gifts = [give(donations) for _ in range(12)]
    events = []
    for donation in gifts:
        reply = post_signed(client, paid(donations, donation), apply=False)
        assert reply.json["outcome"] == "received"
        events.append(reply.json["event"])
    start = threading.Barrier(2)
    applied: list[int] = []

    def applier() -> None:
        start.wait()
        mine = 0
        while count := apply_received_events(
            DonationsUnitOfWork(engine), stripe_mock(donations), limit=3
        ):
            mine += count
        applied.append(mine)

    threads = [threading.Thread(target=applier) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(applied) == len(events)
    assert {outcome_of(engine, event) for event in events} == {"succeeded"}
    assert {status_of(engine, donation["id"]) for donation in gifts} == {"succeeded"}
    assert succeeded_events(engine) == len(gifts)


def test_two_appliers_holding_the_same_event_apply_it_once(donations: dict[str, Any]) -> None:
    engine = donations["engine"]
    donation = give(donations)
    reply = post_signed(donations["client"], paid(donations, donation), apply=False)
    now = datetime.now(UTC)
    with DonationsUnitOfWork(engine) as uow:
        [held] = uow.stripe_events.claim_received(now, now + CLAIM_FOR, 10)
    assert held.id == reply.json["event"]
    start = threading.Barrier(2)
    outcomes: list[str | None] = []

    def applier() -> None:
        start.wait()
        outcomes.append(
            apply_received(held, DonationsUnitOfWork(engine), stripe_mock(donations), now)
        )

    threads = [threading.Thread(target=applier) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes, key=str) == [None, "succeeded"]
    assert succeeded_events(engine) == 1


KILLED_MID_APPLY = """
import os, signal, sys
from services.donations.handlers.webhooks import apply_received_events
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.db import make_engine

class KilledWhileAskingStripe:
    def payment_facts(self, payment_intent_id):
        os.kill(os.getpid(), signal.SIGKILL)

apply_received_events(DonationsUnitOfWork(make_engine(sys.argv[1])), KilledWhileAskingStripe())
"""


def test_an_applier_killed_between_record_and_apply_is_made_good_once(
    donations: dict[str, Any], database_url: str
) -> None:
    engine = donations["engine"]
    donation = give(donations)
    reply = post_signed(donations["client"], paid(donations, donation), apply=False)
    event_id = reply.json["event"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_APPLY, database_url], cwd=REPO, timeout=120
    )
    assert killed.returncode == -9
    assert outcome_of(engine, event_id) == "received"  # claimed by the dead applier
    assert status_of(engine, donation["id"]) == "pending"
    payments = stripe_mock(donations)
    assert apply_received_events(DonationsUnitOfWork(engine), payments) == 0  # still its claim
    restarted = datetime.now(UTC) + CLAIM_FOR + timedelta(seconds=1)
    assert apply_received_events(DonationsUnitOfWork(engine), payments, now=restarted) == 1
    assert outcome_of(engine, event_id) == "succeeded"
    assert apply_received_events(DonationsUnitOfWork(engine), payments, now=restarted) == 0
    assert succeeded_events(engine) == 1


class HeldRecorder(StripeEventRecorder):
    """A recorder whose first commit waits until four more webhooks queue behind it, so the
    next commit is theirs together."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.first = threading.Event()

    def _write(self, group: list[Any]) -> None:
        if not self.first.is_set():
            self.first.set()
            deadline = time.monotonic() + 30
            while len(self._waiting) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
        super()._write(group)


def test_webhooks_sharing_a_commit_each_get_their_own_answer(donations: dict[str, Any]) -> None:
    engine = donations["engine"]
    recorder = HeldRecorder(engine)
    now = datetime.now(UTC)
    answers: dict[str, Any] = {}

    def record(key: str, event_id: str, payload: str = "{}") -> None:
        try:
            answers[key] = recorder.receive(event_id, "refund.created", payload, now)
        except DBAPIError as error:
            answers[key] = error

    first = threading.Thread(target=record, args=("first", "evt_first"))
    first.start()
    assert recorder.first.wait(30)
    # PostgreSQL refuses a NUL in text: that webhook fails alone, the others are kept.
    group = [("a", "evt_a", "{}"), ("b", "evt_b", "{}"), ("a2", "evt_a", "{}")]
    group.append(("bad", "evt_bad", "\x00"))
    threads = [threading.Thread(target=record, args=item) for item in group]
    for thread in threads:
        thread.start()
    for thread in [first, *threads]:
        thread.join(timeout=60)
    assert answers["first"] is True and answers["b"] is True
    assert sorted([answers["a"], answers["a2"]]) == [False, True]  # one, then a duplicate
    assert isinstance(answers["bad"], DBAPIError)
    table = store.stripe_events
    with engine.connect() as conn:
        kept = set(conn.execute(select(table.c.id).where(table.c.id.like("evt_%"))).scalars())
    assert kept == {"evt_first", "evt_a", "evt_b"}


def test_committing_a_stripe_event_notifies_the_applier(
    donations: dict[str, Any], database_url: str
) -> None:
    listener = psycopg.connect(
        database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    )
    try:
        listener.execute(f'LISTEN "{store.STRIPE_EVENTS_CHANNEL}"')
        donation = give(donations)
        assert list(listener.notifies(timeout=0.2)) == []
        reply = post_signed(donations["client"], paid(donations, donation), apply=False)
        assert reply.json["outcome"] == "received"
        [notice] = list(listener.notifies(timeout=10, stop_after=1))
        assert notice.channel == store.STRIPE_EVENTS_CHANNEL
    finally:
        listener.close()
