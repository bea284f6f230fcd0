"""`make bench` / `python -m bench [--events N]`: what the delivery guarantees cost.

Two pipelines, each against a baseline measured in the same run on the same broker:

- publish: the outbox relay draining N events from the database to Kafka (acks=all, marked
  published), against a bare KafkaProducer sending the same N payloads with acks=all.
- consume: the ledger's idempotent consumer applying N donation events to its database (event
  id recorded, journal entry posted, meals recounted, offsets committed), against a bare
  KafkaConsumer reading the same N records.

The database is SQLite (the embedded default) unless BENCH_DATABASE is "postgres" and
DIFTS_TEST_POSTGRES names a server. Kafka is taken from KAFKA_BOOTSTRAP_SERVERS when it
answers, else started with infra/kafka.sh on port 29192 and stopped after.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from services.ledger import store as ledger_store
from services.ledger.consumer import build_consumer
from services.shared.db import make_engine, upgrade
from services.shared.envelope import new_event
from services.shared.events import DONATION_SUCCEEDED, DONATIONS_TOPIC, topic_name
from services.shared.kafka import broker_reachable, ensure_topics, make_producer
from services.shared.outbox import OutboxRelay, add_to_outbox

# Topics of this run alone.
PREFIX = f"bench-{uuid.uuid4().hex[:8]}."
DONATIONS = topic_name(DONATIONS_TOPIC, PREFIX)

REPO = Path(__file__).resolve().parents[1]
LEDGER_MIGRATIONS = REPO / "services" / "ledger" / "migrations"


def say(message: str) -> None:
    """Progress on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def kafka() -> Iterator[str]:
    """A broker: the configured one if it answers, else a private one for this run."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if broker_reachable(configured):
        yield configured
        return
    env = {
        **os.environ,
        "DIFTS_VAR": str(REPO / "var" / "bench"),
        "KAFKA_PORT": "29192",
        "KAFKA_CONTROLLER_PORT": "29193",
    }
    say("starting a private Kafka broker on 127.0.0.1:29192...")
    subprocess.run(["bash", str(REPO / "infra" / "kafka.sh"), "start"], env=env, check=True)
    try:
        yield "127.0.0.1:29192"
    finally:
        subprocess.run(["bash", str(REPO / "infra" / "kafka.sh"), "stop"], env=env, check=False)


def database_url(workdir: Path, name: str) -> str:
    """Where the measured service keeps its data."""
    admin = os.environ.get("DIFTS_TEST_POSTGRES")
    if os.environ.get("BENCH_DATABASE") == "postgres" and admin:
        from tests.support.infra import fresh_database

        return _keep_open(fresh_database(admin, prefix=f"bench_{name}"))
    return f"sqlite:///{workdir / (name + '.db')}"


_open: contextlib.ExitStack = contextlib.ExitStack()


def _keep_open(manager: contextlib.AbstractContextManager[str]) -> str:
    return _open.enter_context(manager)


def donation_events(count: int, campaigns: int = 12) -> list[tuple[str, object]]:
    """`count` succeeded donations of 27.00 EUR spread over a few campaigns."""
    ids = [str(uuid.uuid4()) for _ in range(campaigns)]
    events = []
    for n in range(count):
        campaign_id = ids[n % campaigns]
        data = {
            "donation_id": str(uuid.uuid4()),
            "campaign_id": campaign_id,
            "campaign_slug": f"bench-{campaign_id[:8]}",
            "campaign_title": "Bench canteens",
            "amount": 2700,
            "currency": "EUR",
            "meal_price": 1350,
            "donor": {"email": f"donor{n}@example.org", "name": "Donor", "locale": "en"},
            "updates_opt_in": False,
            "succeeded_at": datetime.now(UTC).isoformat(),
        }
        events.append((campaign_id, new_event(DONATION_SUCCEEDED, "bench", data)))
    return events


def rate(count: int, seconds: float) -> str:
    """Events per second, for people."""
    return f"{count / seconds:>9,.0f} events/s ({seconds:.2f} s)"


def bench_publish(bootstrap: str, workdir: Path, count: int) -> tuple[float, float]:
    """Seconds for the bare producer and for the outbox relay to publish `count` events."""
    events = donation_events(count)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    start = time.perf_counter()
    for key, event in events:
        producer.send(DONATIONS, key=key.encode(), value=event.to_json().encode())
    producer.flush()
    baseline = time.perf_counter() - start
    producer.close()

    url = database_url(workdir, "relay")
    upgrade(url, LEDGER_MIGRATIONS)  # any service's schema has the outbox table
    engine = make_engine(url)
    with engine.begin() as conn:
        for key, event in events:
            add_to_outbox(conn, ledger_store.outbox, DONATIONS_TOPIC, key, event)
    relay = OutboxRelay(
        engine, ledger_store.outbox, make_producer(bootstrap, "bench-relay"), topic_prefix=PREFIX
    )
    start = time.perf_counter()
    while relay.publish_pending():
        pass
    measured = time.perf_counter() - start
    relay.producer.close()
    engine.dispose()
    return baseline, measured


def bench_consume(bootstrap: str, workdir: Path, count: int) -> tuple[float, float]:
    """Seconds for a bare consumer to read, and for the ledger to apply, `count` events
    (the ones bench_publish put on the topic twice: once bare, once through the relay)."""
    total = 2 * count
    bare = KafkaConsumer(
        DONATIONS,
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    start = time.perf_counter()
    seen = 0
    while seen < total:
        for records in bare.poll(timeout_ms=1000).values():
            seen += len(records)
        bare.commit()
    baseline = time.perf_counter() - start
    bare.close()

    url = database_url(workdir, "ledger")
    upgrade(url, LEDGER_MIGRATIONS)
    engine = make_engine(url)
    group = f"bench-ledger-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, consumer_groups=(group,), prefix=PREFIX)
    dead_letters = make_producer(bootstrap, "bench-dead-letters")
    consumer = build_consumer(engine, bootstrap, group, dead_letters, topic_prefix=PREFIX)
    stop = threading.Event()
    handled = [0]
    handle_batch = consumer.handle_batch

    def counting_handle_batch(messages: list[Any]) -> Any:
        outcomes = handle_batch(messages)
        handled[0] += len(messages)
        return outcomes

    consumer.handle_batch = counting_handle_batch  # type: ignore[method-assign]
    start = time.perf_counter()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    # Half the records repeat an event id (the relay republished what the bare producer
    # sent): the ledger applies `count` and recognises `count` duplicates.
    deadline = time.monotonic() + 600
    while handled[0] < total:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit(f"bench: the ledger consumer handled {handled[0]} of {total}")
        time.sleep(0.02)
    measured = time.perf_counter() - start
    stop.set()
    thread.join(timeout=30)
    dead_letters.close()
    engine.dispose()
    return baseline, measured


def main() -> None:
    """Run both benchmarks and print figures and ratios."""
    parser = argparse.ArgumentParser(description="difts benchmarks")
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    with kafka() as bootstrap, tempfile.TemporaryDirectory() as tmp, _open:
        ensure_topics(bootstrap, consumer_groups=(), prefix=PREFIX)
        database = "postgres" if os.environ.get("BENCH_DATABASE") == "postgres" else "sqlite"
        say(f"publishing {args.events} events twice (bare producer, then outbox relay)...")
        bare_pub, relay_pub = bench_publish(bootstrap, Path(tmp), args.events)
        say("consuming them (bare consumer, then the ledger's idempotent consumer)...")
        bare_con, ledger_con = bench_consume(bootstrap, Path(tmp), args.events)
    n = args.events
    print(f"\ndifts benchmarks: {n} events, database {database}, broker {bootstrap}\n")
    print(f"  publish  bare KafkaProducer acks=all   {rate(n, bare_pub)}")
    print(
        f"  publish  outbox relay                  {rate(n, relay_pub)}"
        f"   x{relay_pub / bare_pub:.2f} the baseline's time"
    )
    print(f"  consume  bare KafkaConsumer (read)     {rate(2 * n, bare_con)}")
    print(
        f"  consume  ledger idempotent consumer    {rate(2 * n, ledger_con)}"
        f"   x{ledger_con / bare_con:.2f} the baseline's time"
    )


if __name__ == "__main__":
    main()
