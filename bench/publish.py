"""The outbox relay (read a batch, publish it with acks=all, mark it published) against a bare
acks=all KafkaProducer sending the same payloads, on the same broker."""

from __future__ import annotations

import time
import uuid

from kafka import KafkaProducer

from bench.common import Bench, Row, say
from bench.events import donation_events
from services.ledger import store as ledger_store
from services.shared.db import make_engine, upgrade
from services.shared.events import DONATIONS_TOPIC, topic_name
from services.shared.kafka import ensure_topics, make_producer
from services.shared.outbox import OutboxRelay, add_to_outbox

from .common import REPO

LEDGER_MIGRATIONS = REPO / "services" / "ledger" / "migrations"


def run(bench: Bench) -> None:
    bootstrap = bench.kafka()
    for kind in ("sqlite", "postgresql"):
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        ensure_topics(bootstrap, consumer_groups=(), prefix=prefix)
        events = donation_events(bench.events)
        say(f"publish ({kind}): {len(events)} events, bare producer then outbox relay...")
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        started = time.perf_counter()
        for key, event in events:
            producer.send(
                topic_name(DONATIONS_TOPIC, prefix),
                key=key.encode(),
                value=event.to_json().encode(),
                headers=[("content-type", b"application/cloudevents+json")],
            )
        producer.flush()
        bare = time.perf_counter() - started
        producer.close()

        url = bench.database(kind, "relay")
        upgrade(url, LEDGER_MIGRATIONS)  # any service's schema has the outbox table
        engine = make_engine(url)
        with engine.begin() as conn:
            for key, event in events:
                add_to_outbox(conn, ledger_store.outbox, DONATIONS_TOPIC, key, event)
        relay = OutboxRelay(
            engine,
            ledger_store.outbox,
            make_producer(bootstrap, "bench-relay"),
            topic_prefix=prefix,
            service="bench",
        )
        started = time.perf_counter()
        while relay.publish_pending():
            pass
        measured = time.perf_counter() - started
        relay.producer.close()
        engine.dispose()
        name = "SQLite" if kind == "sqlite" else "PostgreSQL"
        bench.record(
            Row(
                pipeline=f"outbox relay on {name} (read, publish acks=all, mark)",
                measured=len(events) / measured,
                unit="events/s",
                baseline=len(events) / bare,
                baseline_name="bare acks=all KafkaProducer, same payloads",
                target=">= 0.9x",
                min_ratio=0.9,
                details={"events": len(events), "seconds": measured, "baseline_seconds": bare},
            )
        )
