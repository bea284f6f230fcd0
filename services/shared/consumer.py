"""The idempotent consumer: each event's effect and its id are committed in one database
transaction, offsets are committed after; unknown types are skipped and events that cannot be
processed go to the consumer group's dead-letter topic, and the consumer goes on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import Column, DateTime, MetaData, String, Table
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from .envelope import CloudEvent, InvalidEnvelope
from .events import SCHEMAS, InvalidEventData, dead_letter_topic, load_data, topic_name
from .logs import event_context
from .unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)

# A handler takes the event (its data loaded with its type's schema) and the unit of work the
# consumer opened for the batch; it changes state through the unit of work's repositories.
Handler = Callable[[CloudEvent, Any], None]
UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


class PoisonEvent(Exception):
    """Raised by a handler for an event that can never be applied (it goes to dead letters)."""


def processed_events_table(metadata: MetaData) -> Table:
    """Add the table of processed event ids to a service's metadata."""
    return Table(
        "processed_events",
        metadata,
        Column("event_id", String(200), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )


@dataclass(frozen=True)
class Outcome:
    """What became of one message: applied, duplicate, skipped or dead_lettered."""

    status: str
    event_id: str | None = None
    reason: str | None = None


class IdempotentConsumer:
    """Applies events from Kafka to one service's database exactly once per event id."""

    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        group_id: str,
        topics: tuple[str, ...],
        handlers: dict[str, Handler],
        bootstrap_servers: str,
        dead_letter_producer: KafkaProducer,
        topic_prefix: str = "",
    ) -> None:
        unknown = set(handlers) - set(SCHEMAS)
        if unknown:
            raise ValueError(f"handlers for types without a schema: {sorted(unknown)}")
        self.unit_of_work = unit_of_work
        self.group_id = group_id
        self.topics = tuple(topic_name(topic, topic_prefix) for topic in topics)
        self.handlers = handlers
        self.bootstrap_servers = bootstrap_servers
        self.dead_letters = dead_letter_producer
        self.dead_letter_topic = dead_letter_topic(group_id, topic_prefix)

    def apply(self, raw: bytes) -> Outcome:
        """Apply one message's value in a transaction of its own. Raises only on database
        trouble, which is transient: the caller retries rather than dead-lettering."""
        with self.unit_of_work() as uow:
            return self._apply_in(uow, raw)

    def _apply_in(self, uow: SqlUnitOfWork, raw: bytes) -> Outcome:
        """Apply one message inside the batch's unit of work, in a savepoint of its own, so
        an event that fails leaves the others of its batch untouched."""
        try:
            event = CloudEvent.from_json(raw)
        except InvalidEnvelope as error:
            return Outcome("dead_lettered", None, str(error))
        with event_context(event.id, event.correlationid):
            handler = self.handlers.get(event.type)
            if handler is None:
                log.info("skipped event of unhandled type %s", event.type)
                return Outcome("skipped", event.id, f"unhandled type {event.type}")
            try:
                data = load_data(event.type, event.data)
            except InvalidEventData as error:
                return Outcome("dead_lettered", event.id, str(error))
            try:
                with uow.savepoint():
                    if not uow.processed.claim(event):
                        log.info("duplicate event %s ignored", event.id)
                        return Outcome("duplicate", event.id)
                    handler(replace(event, data=data), uow)
            except PoisonEvent as error:
                return Outcome("dead_lettered", event.id, str(error))
            except IntegrityError as error:
                # Either another instance claimed the same id at the same moment (a
                # duplicate), or the event's own data breaks a constraint: retrying could
                # never help, so it goes to dead letters.
                if uow.processed.seen(event.id):
                    return Outcome("duplicate", event.id)
                return Outcome("dead_lettered", event.id, f"constraint violated: {error.orig}")
            except DataError as error:
                return Outcome("dead_lettered", event.id, f"data refused: {error.orig}")
            except DBAPIError:
                # The database is down, busy or not migrated: retry, never dead-letter that.
                raise
            except Exception as error:  # noqa: BLE001 - a handler bug must not stop the consumer
                log.exception("handler failed; dead-lettering")
                return Outcome("dead_lettered", event.id, f"{type(error).__name__}: {error}")
            log.info("applied %s", event.type)
            return Outcome("applied", event.id)

    def handle(self, message: Any) -> Outcome:
        """Apply one Kafka record, sending it to the dead-letter topic if it cannot be."""
        return self.handle_batch([message])[0]

    def handle_batch(self, messages: list[Any]) -> list[Outcome]:
        """Apply records in one database transaction (one commit instead of one per event),
        each in its own savepoint; then send what could not be applied to dead letters.

        A database error rolls the whole batch back and is raised: nothing was recorded, so
        the batch is retried from the last committed offset."""
        with self.unit_of_work() as uow:
            outcomes = [self._apply_in(uow, message.value) for message in messages]
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome.status == "dead_lettered":
                self._dead_letter(message, outcome.reason or "unknown")
        return outcomes

    def _dead_letter(self, message: Any, reason: str) -> None:
        log.warning(
            "dead-lettered a message from %s[%s]@%s: %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
        )
        headers = [
            ("reason", reason[:2000].encode()),
            ("original-topic", message.topic.encode()),
            ("original-partition", str(message.partition).encode()),
            ("original-offset", str(message.offset).encode()),
            ("consumer-group", self.group_id.encode()),
        ]
        self.dead_letters.send(
            self.dead_letter_topic, key=message.key, value=message.value, headers=headers
        ).get(timeout=30)

    def make_kafka_consumer(self) -> KafkaConsumer:
        """A consumer of this group that commits offsets only when told to."""
        return KafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap_servers.split(","),
            group_id=self.group_id,
            client_id=f"{self.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_poll_records=200,
        )

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set. Offsets are committed after each applied batch; on a
        database error the consumer is rebuilt, so it resumes from the last committed offset
        and the idempotency check absorbs what is redelivered."""
        backoff = 0.5
        while not stop.is_set():
            consumer = self.make_kafka_consumer()
            try:
                while not stop.is_set():
                    batches = consumer.poll(timeout_ms=500)
                    for records in batches.values():
                        self.handle_batch(records)
                    if batches:
                        consumer.commit()
                    backoff = 0.5
            except Exception:  # noqa: BLE001 - reconnect and resume from committed offsets
                log.exception("consumer failed; restarting in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                consumer.close(autocommit=False)
