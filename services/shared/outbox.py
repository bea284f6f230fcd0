"""The transactional outbox: events are written in the same transaction as the state change,
and a relay publishes them to Kafka (acks="all") and marks them published.

Publishing is at-least-once: a crash between the broker's ack and the update republishes,
and consumers deduplicate by event id.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

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
    String,
    Table,
    Text,
    select,
    text,
    update,
)

from .db import is_postgres
from .envelope import CloudEvent
from .events import dump_data, topic_name

log = logging.getLogger(__name__)

# One advisory lock id per database: only one relay publishes at a time, so each campaign's
# events reach the broker in the order they were written.
_RELAY_LOCK_ID = 0x0D1F75


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
    """Publishes unpublished outbox rows in order, in batches."""

    def __init__(
        self,
        engine: Engine,
        outbox: Table,
        producer: KafkaProducer,
        batch_size: int = 500,
        send_timeout: float = 30.0,
        topic_prefix: str = "",
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.producer = producer
        self.batch_size = batch_size
        self.send_timeout = send_timeout
        # The outbox keeps topics by their names in the published language; the installation's
        # prefix is added on the way out.
        self.topic_prefix = topic_prefix

    def publish_pending(self) -> int:
        """Publish one batch; return how many events it published (0 when idle or when another
        relay holds the lock)."""
        with self.engine.begin() as conn:
            if is_postgres(conn):
                locked = conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _RELAY_LOCK_ID}
                ).scalar()
                if not locked:
                    return 0
            rows = conn.execute(
                select(
                    self.outbox.c.seq,
                    self.outbox.c.topic,
                    self.outbox.c.key,
                    self.outbox.c.payload,
                    self.outbox.c.event_id,
                )
                .where(self.outbox.c.published_at.is_(None))
                .order_by(self.outbox.c.seq)
                .limit(self.batch_size)
            ).all()
            if not rows:
                return 0
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
            conn.execute(
                update(self.outbox)
                .where(self.outbox.c.seq.in_([row.seq for row in rows]))
                .values(published_at=datetime.now(UTC))
            )
        log.info("published outbox events", extra={"count": len(rows)})
        return len(rows)

    def run(self, stop: threading.Event, idle_wait: float = 0.2) -> None:
        """Publish until `stop` is set; back off on errors and try again."""
        backoff = 0.5
        while not stop.is_set():
            try:
                published = self.publish_pending()
                backoff = 0.5
            except Exception:  # noqa: BLE001 - keep relaying; the row stays unpublished
                log.exception("outbox relay failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published < self.batch_size:
                stop.wait(idle_wait)
