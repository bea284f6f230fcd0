"""The donations worker, each loop in a thread of one process (`python -m services.donations
worker`): the outbox relay to Kafka, the consumer of the ledger's meal counts, the applier of
the Stripe events the webhook recorded (woken by their commit), a round every five seconds
that publishes the news posts now due and retries the kept Stripe events, and the company
difts' round (open programmes, issue recipient uploads in chunks, expire and close). Several
workers may run at once: each claims what it applies."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import Engine

from services.shared.db import make_engine, reading
from services.shared.kafka import ensure_topics, make_producer
from services.shared.metrics import STRIPE_EVENTS_OLDEST_AGE, STRIPE_EVENTS_UNAPPLIED
from services.shared.outbox import OutboxRelay
from services.shared.wake import Wakeup
from services.shared.worker import Loop, run_loops

from . import store
from .config import Settings
from .consumer import build_consumer
from .handlers.difts import expire_programme, issue_upload_chunk
from .handlers.news import publish_due_posts
from .handlers.programmes import open_due_programmes
from .handlers.webhooks import apply_kept_events, apply_received_events
from .payments import StripePayments
from .unit_of_work import DonationsUnitOfWork

log = logging.getLogger(__name__)


def scheduled(settings: Settings, engine: Engine) -> Loop:
    """The loop that publishes news posts when due and retries kept Stripe events."""
    payments = StripePayments(settings.stripe_api_key, settings.stripe_api_base or None)

    def loop(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with DonationsUnitOfWork(engine) as uow:
                    publish_due_posts(settings.public_url, uow)
                apply_kept_events(DonationsUnitOfWork(engine), payments)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                log.exception("scheduled posts or kept stripe events failed; retrying")
            stop.wait(5.0)

    return loop


def programmes_round(settings: Settings, engine: Engine, now: datetime | None = None) -> int:
    """One round of company difts: open the funded programmes whose date has come, issue the
    next chunk of each recipient upload, expire the undirected difts of programmes past their
    expiry (a chunk at a time) and close them; each step in a transaction of its own. How
    many things it did (0: nothing was due)."""
    now = now or datetime.now(UTC)
    done = 0
    with DonationsUnitOfWork(engine) as uow:
        done += open_due_programmes(uow, now)
    with reading(engine) as conn:
        uploads = store.Uploads(conn).issuing()
        expiring = store.Programmes(conn).past_expiry(now)
    for upload_id in uploads:
        with DonationsUnitOfWork(engine) as uow:
            done += issue_upload_chunk(upload_id, uow, settings.public_url, settings.upload_chunk)
    for programme_id in expiring:
        with DonationsUnitOfWork(engine) as uow:
            expired, closed = expire_programme(programme_id, uow, now, settings.expiry_chunk)
        done += expired + closed
    return done


def programmes_ticks(settings: Settings, engine: Engine) -> Loop:
    """The loop of company difts' rounds: again at once while a round finds work (an upload
    of 50,000 rows goes chunk after chunk), else every DIFTS_PROGRAMMES_TICK_SECONDS."""

    def loop(stop: threading.Event) -> None:
        while not stop.is_set():
            busy = 0
            try:
                busy = programmes_round(settings, engine)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                log.exception("a company difts round failed; retrying")
            if not busy:
                stop.wait(settings.programmes_tick_seconds)

    return loop


def stripe_events_applier(settings: Settings, engine: Engine, idle_wait: float = 5.0) -> Loop:
    """The loop that applies the Stripe events the webhook recorded, as soon as one is
    committed (a commit in this process, a notification on PostgreSQL, SQLite's short poll)
    or after `idle_wait` at the latest."""
    payments = StripePayments(settings.stripe_api_key, settings.stripe_api_base or None)

    def due() -> bool:
        # A read first: on SQLite a claim takes the write lock the webhook needs.
        with reading(engine) as conn:
            return store.StripeEvents(conn).any_claimable(datetime.now(UTC))

    measured = [0.0]

    def measure() -> None:
        # The backlog's metrics, at most once a second.
        if time.monotonic() - measured[0] < 1.0:
            return
        measured[0] = time.monotonic()
        with reading(engine) as conn:
            waiting, oldest = store.StripeEvents(conn).unapplied()
        STRIPE_EVENTS_UNAPPLIED.set(waiting)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        STRIPE_EVENTS_OLDEST_AGE.set(max(0.0, age))

    def loop(stop: threading.Event) -> None:
        wakeup = Wakeup(engine, store.STRIPE_EVENTS_CHANNEL)
        try:
            while not stop.is_set():
                applied = 0
                try:
                    measure()
                    if due():
                        applied = apply_received_events(DonationsUnitOfWork(engine), payments)
                except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                    log.exception("applying received stripe events failed; retrying")
                    stop.wait(1.0)
                if not applied:
                    wakeup.wait(stop, idle_wait)
        finally:
            wakeup.close()

    return loop


def run_worker(settings: Settings) -> None:
    """Relay the outbox, keep the ledger's meal counts and dift bookings and notifications'
    invitations sent, apply the Stripe events received, publish due posts, run the company
    difts' rounds, until SIGTERM."""
    engine = make_engine(settings.database_url)
    ensure_topics(
        settings.kafka_bootstrap_servers,
        consumer_groups=(settings.consumer_group,),
        prefix=settings.topic_prefix,
    )
    relay = OutboxRelay(
        engine,
        store.outbox,
        make_producer(settings.kafka_bootstrap_servers, "donations-relay"),
        topic_prefix=settings.topic_prefix,
        service="donations",
    )
    run_loops(
        {
            "outbox-relay": relay.run,
            "meals-funded": build_consumer(settings, engine).run,
            "stripe-events": stripe_events_applier(settings, engine),
            "scheduled": scheduled(settings, engine),
            "programmes": programmes_ticks(settings, engine),
        }
    )
