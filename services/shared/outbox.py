"""The transactional outbox: events are written in the same transaction as the state change,
and a relay publishes them to Kafka (acks="all") and marks them published.

Publishing is at-least-once: a crash between the broker's ack and the update republishes,
and consumers deduplicate by event id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    func,
    select,
    text,
    update,
)

from .db import as_utc, is_postgres, reading
from .envelope import CloudEvent
from .events import dump_data, topic_name
from .metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from .wake import Wakeup

log = logging.getLogger(__name__)

# The advisory locks' namespace: a relay holds (this, hash of a key) while it publishes that
# key's events, so no other relay publishes the same campaign's events at the same time.
_RELAY_LOCK_ID = 0x0D1F75
_KEYS_PER_ROUND = 64
# What PostgreSQL notifies when outbox rows are committed (a trigger of each service's
# migrations: wake.notify_on_insert("outbox", OUTBOX_CHANNEL)).
OUTBOX_CHANNEL = "difts_outbox"


def outbox_table(metadata: MetaData) -> Table:
    """Add the outbox table to a service's metadata."""
    return Table(
        "outbox",
        metadata,
        Column(
            "seq",
            BigInteger().with_variant(Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index(
            "ix_outbox_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )


def add_to_outbox(conn: Connection, outbox: Table, topic: str, key: str, event: CloudEvent) -> None:
    """Queue `event` for publication on `topic`, keyed by `key` (a campaign id), inside the
    caller's transaction."""
    dump_data(event.type, event.data)
    conn.execute(
        outbox.insert().values(
            event_id=event.id,
            event_type=event.type,
            topic=topic,
            key=key,
            payload=event.to_json(),
            created_at=datetime.now(UTC),
        )
    )


class OutboxRelay:
    """Publishes unpublished outbox rows, each key's (each campaign's) in the order they were
    written, in batches.

    On PostgreSQL several relays (worker instances) run at once: each takes the keys it
    publishes with a transaction-level advisory lock per key, so two relays publish different
    campaigns in parallel and never one campaign's events out of order. On SQLite, the
    embedded default of one worker per service, one relay reads a batch, publishes it outside
    any transaction (no write lock waits on the broker) and then marks it.

    Publishing is at-least-once: a crash between the broker's ack and the update republishes,
    and consumers deduplicate by event id."""

    def __init__(
        self,
        engine: Engine,
        outbox: Table,
        producer: KafkaProducer,
        batch_size: int = 500,
        send_timeout: float = 30.0,
        topic_prefix: str = "",
        service: str = "",
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.producer = producer
        self.batch_size = batch_size
        self.send_timeout = send_timeout
        # The outbox keeps topics by their names in the published language; the installation's
        # prefix is added on the way out.
        self.topic_prefix = topic_prefix
        self.service = service
        self._backlog_checked = 0.0

    def publish_pending(self) -> int:
        """Publish one batch; return how many events it published (0 when idle, or when other
        relays hold every key with events waiting)."""
        if is_postgres(self.engine):
            published = self._publish_locked_keys()
        else:
            published = self._publish_then_mark()
        if published:
            log.info("published outbox events", extra={"count": published})
        return published

    def _pending(self, keys: list[str] | None = None) -> Select[Any]:
        query = (
            select(
                self.outbox.c.seq,
                self.outbox.c.topic,
                self.outbox.c.key,
                self.outbox.c.payload,
            )
            .where(self.outbox.c.published_at.is_(None))
            .order_by(self.outbox.c.seq)
            .limit(self.batch_size)
        )
        return query.where(self.outbox.c.key.in_(keys)) if keys is not None else query

    def _publish_locked_keys(self) -> int:
        with self.engine.begin() as conn:
            # The keys waiting longest, each locked if no other relay holds it, in one
            # statement (no qualifier is pushed below a LIMIT: only those keys are tried).
            waiting = (
                select(self.outbox.c.key)
                .where(self.outbox.c.published_at.is_(None))
                .group_by(self.outbox.c.key)
                .order_by(func.min(self.outbox.c.seq))
                .limit(_KEYS_PER_ROUND)
                .subquery()
            )
            keys = list(
                conn.execute(
                    select(waiting.c.key).where(
                        func.pg_try_advisory_xact_lock(_RELAY_LOCK_ID, func.hashtext(waiting.c.key))
                    )
                ).scalars()
            )
            if not keys:
                return 0
            rows = conn.execute(self._pending(keys)).all()
            self._send(rows)
            self._mark(conn, rows)
        return len(rows)

    def _publish_then_mark(self) -> int:
        with reading(self.engine) as conn:
            rows = conn.execute(self._pending()).all()
        if not rows:
            return 0
        self._send(rows)
        with self.engine.begin() as conn:
            self._mark(conn, rows)
        return len(rows)

    def _send(self, rows: Sequence[Any]) -> None:
        """Send every row and wait for every ack (acks=all); raises if the broker refused."""
        futures = [
            self.producer.send(
                topic_name(row.topic, self.topic_prefix),
                key=row.key.encode(),
                value=row.payload.encode(),
                headers=[("content-type", b"application/cloudevents+json")],
            )
            for row in rows
        ]
        self.producer.flush(timeout=self.send_timeout)
        for future in futures:
            future.get(timeout=self.send_timeout)  # raises if the broker did not ack
        for topic, count in Counter(row.topic for row in rows).items():
            OUTBOX_PUBLISHED.labels(self.service, topic).inc(count)

    def _mark(self, conn: Connection, rows: Sequence[Any]) -> None:
        conn.execute(
            update(self.outbox)
            .where(self.outbox.c.seq.in_([row.seq for row in rows]))
            .values(published_at=datetime.now(UTC))
        )

    def measure_backlog(self) -> None:
        """How many rows wait and for how long (the relay's metrics), at most every second."""
        now = time.monotonic()
        if now - self._backlog_checked < 1.0:
            return
        self._backlog_checked = now
        with reading(self.engine) as conn:
            waiting, oldest = conn.execute(
                select(func.count(), func.min(self.outbox.c.created_at)).where(
                    self.outbox.c.published_at.is_(None)
                )
            ).one()
        OUTBOX_BACKLOG.labels(self.service).set(waiting)
        age = (datetime.now(UTC) - as_utc(oldest)).total_seconds() if oldest else 0.0
        OUTBOX_OLDEST_AGE.labels(self.service).set(max(0.0, age))

    def run(self, stop: threading.Event, idle_wait: float = 1.0) -> None:
        """Publish until `stop` is set: again at once while batches come full, else when a
        commit (here, or notified by PostgreSQL) wakes it, or after `idle_wait` at the latest;
        back off on errors and try again."""
        wakeup = Wakeup(self.engine, OUTBOX_CHANNEL)
        backoff = 0.5
        try:
            while not stop.is_set():
                try:
                    published = self.publish_pending()
                    self.measure_backlog()
                    backoff = 0.5
                except Exception:  # noqa: BLE001 - keep relaying; the row stays unpublished
                    log.exception("outbox relay failed; retrying in %.1fs", backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                if published < self.batch_size:
                    wakeup.wait(stop, idle_wait)
        finally:
            wakeup.close()
