"""The idempotent consumer: each event's effect and its id are committed in one database
transaction, offsets are committed after; unknown types are skipped and events that cannot be
processed go to the consumer group's dead-letter topic, and the consumer goes on.

A poll is applied in one transaction. Events of the types a service names as `set_types` are
applied as a set: their ids claimed in one statement, their handlers run one after the other
(in the poll's order, so a campaign's events keep theirs) on the unit of work's `batch`, which
may read what they need once and write it in a few statements. Should anything of the set
fail, the transaction is rolled back and the poll applied again event by event, each in a
savepoint of its own, so an event that cannot be applied goes to dead letters alone."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import Column, DateTime, MetaData, String, Table
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from .envelope import CloudEvent, InvalidEnvelope
from .events import SCHEMAS, InvalidEventData, dead_letter_topic, load_data, topic_name
from .logs import event_context
from .metrics import CONSUMER_LAG, DEAD_LETTERS, EVENT_DELAY, EVENTS_CONSUMED
from .unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)

# How long the broker holds a fetch that finds nothing new. It answers as soon as a record
# arrives whatever this is (fetch_min_bytes is 1), so it bounds no delay; it sets how often an
# idle consumer asks. Measured on the dev broker: idle CPU 14 % of a core at 10 ms, 8 % at
# 25, 5 % at 50, 3 % at 100; send (acks=all) to handle about 11-12 ms at each.
FETCH_MAX_WAIT_MS = 50
# Records one poll returns at most: one transaction applies them all.
MAX_POLL_RECORDS = 500
# How long poll() blocks when nothing arrives, so `stop` is heard within it.
POLL_TIMEOUT_MS = 200

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


@dataclass(frozen=True)
class _Reading:
    """One record as read: its event (data loaded with its type's schema) and handler, or
    what became of it already (unreadable, unhandled)."""

    event: CloudEvent | None
    handler: Handler | None = None
    outcome: Outcome | None = None


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
        set_types: Collection[str] = (),
    ) -> None:
        unknown = set(handlers) - set(SCHEMAS)
        if unknown:
            raise ValueError(f"handlers for types without a schema: {sorted(unknown)}")
        if set(set_types) - set(handlers):
            raise ValueError(
                f"set types without a handler: {sorted(set(set_types) - set(handlers))}"
            )
        self.unit_of_work = unit_of_work
        self.group_id = group_id
        self.topics = tuple(topic_name(topic, topic_prefix) for topic in topics)
        self.handlers = handlers
        self.bootstrap_servers = bootstrap_servers
        self.dead_letters = dead_letter_producer
        self.dead_letter_topic = dead_letter_topic(group_id, topic_prefix)
        self.set_types = frozenset(set_types)

    def apply(self, raw: bytes) -> Outcome:
        """Apply one message's value in a transaction of its own. Raises only on database
        trouble, which is transient: the caller retries rather than dead-lettering."""
        with self.unit_of_work() as uow:
            return self._apply_in(uow, raw)

    def _read(self, raw: bytes, unloaded: Collection[str] = ()) -> _Reading:
        """A record's event and handler, or why it has none: an unreadable envelope or data
        goes to dead letters, a type without a handler is skipped. The data of `unloaded`
        types is left as it came (loaded once claimed: a duplicate's never is)."""
        try:
            event = CloudEvent.from_json(raw)
        except InvalidEnvelope as error:
            return _Reading(None, outcome=Outcome("dead_lettered", None, str(error)))
        handler = self.handlers.get(event.type)
        if handler is None:
            with event_context(event.id, event.correlationid):
                log.info("skipped event of unhandled type %s", event.type)
            return _Reading(
                event, outcome=Outcome("skipped", event.id, f"unhandled type {event.type}")
            )
        if event.type in unloaded:
            return _Reading(event, handler)
        try:
            data = load_data(event.type, event.data)
        except InvalidEventData as error:
            return _Reading(event, outcome=Outcome("dead_lettered", event.id, str(error)))
        return _Reading(replace(event, data=data), handler)

    def _apply_in(self, uow: SqlUnitOfWork, raw: bytes) -> Outcome:
        """Apply one message inside the batch's unit of work, in a savepoint of its own, so
        an event that fails leaves the others of its batch untouched."""
        return self._apply_read(uow, self._read(raw))

    def _apply_read(self, uow: SqlUnitOfWork, reading: _Reading) -> Outcome:
        """Apply one read record in a savepoint of its own (or say what became of it)."""
        if reading.outcome is not None:
            return reading.outcome
        assert reading.event is not None and reading.handler is not None
        return self._apply_one(uow, reading.event, reading.handler)

    def _apply_one(self, uow: SqlUnitOfWork, event: CloudEvent, handler: Handler) -> Outcome:
        """Claim and apply one read event in a savepoint of its own."""
        with event_context(event.id, event.correlationid):
            try:
                with uow.savepoint():
                    if not uow.processed.claim(event):
                        log.info("duplicate event %s ignored", event.id)
                        return Outcome("duplicate", event.id)
                    handler(event, uow)
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
        """Apply records (a poll's, of any partitions, each partition's in order) in one
        database transaction; then send what could not be applied to dead letters.

        The events of `set_types` are applied as a set (see the module's docstring); if
        anything of it fails, the transaction is rolled back and the records are applied
        again each in its own savepoint. A database error rolls the whole batch back and is
        raised: nothing was recorded, so the batch is retried from the last committed offset."""
        outcomes: list[Outcome] | None = None
        readings = [self._read(message.value, self.set_types) for message in messages]
        if any(r.event is not None and r.event.type in self.set_types for r in readings):
            try:
                with self.unit_of_work() as uow:
                    outcomes = self._apply_as_set(uow, readings)
            except (IntegrityError, DataError) as error:
                log.warning("a set of %d records failed: %s", len(messages), error.orig)
            except DBAPIError:
                raise  # the database is in trouble: the batch is retried, not dead-lettered
            except Exception:  # noqa: BLE001 - a poison event, a handler bug: one by one, below
                log.warning("a set of %d records failed", len(messages), exc_info=True)
        if outcomes is None:
            if self.set_types:
                readings = [self._read(message.value) for message in messages]
            with self.unit_of_work() as uow:
                outcomes = [self._apply_read(uow, reading) for reading in readings]
        applied_at = datetime.now(UTC)
        for message, reading, outcome in zip(messages, readings, outcomes, strict=True):
            self._count(reading.event, outcome, applied_at)
            if outcome.status == "dead_lettered":
                self._dead_letter(message, outcome.reason or "unknown")
        return outcomes

    def _apply_as_set(self, uow: SqlUnitOfWork, readings: Sequence[_Reading]) -> list[Outcome]:
        """Claim the set's event ids in one statement and run their handlers in order on the
        unit of work's batch; the other handled events, in between, each in a savepoint after
        what the batch holds back is written. Raises whatever a handler or a flush raises."""
        # Each id of the set once (a redelivery inside the poll is a duplicate of the first).
        first: dict[str, tuple[int, CloudEvent]] = {}
        for index, reading in enumerate(readings):
            event = reading.event
            if reading.outcome is None and event is not None and event.type in self.set_types:
                first.setdefault(event.id, (index, event))
        claimed = uow.processed.claim_all([event for _, event in first.values()])
        # Data invalid for its schema raises here: then each event is read again on its own.
        loaded = {
            index: replace(event, data=load_data(event.type, event.data))
            for index, event in first.values()
            if event.id in claimed
        }
        fresh = list(loaded.values())
        outcomes: list[Outcome] = []
        with uow.batch(fresh) as batch:
            for index, reading in enumerate(readings):
                event, handler = reading.event, reading.handler
                if reading.outcome is not None:
                    outcomes.append(reading.outcome)
                    continue
                assert event is not None and handler is not None
                if event.type not in self.set_types:
                    batch.flush()
                    outcomes.append(self._apply_one(uow, event, handler))
                    continue
                with event_context(event.id, event.correlationid):
                    if index not in loaded:
                        log.info("duplicate event %s ignored", event.id)
                        outcomes.append(Outcome("duplicate", event.id))
                        continue
                    handler(loaded[index], batch)
                    log.info("applied %s", event.type)
                outcomes.append(Outcome("applied", event.id))
        return outcomes

    def _count(self, event: CloudEvent | None, outcome: Outcome, applied_at: datetime) -> None:
        """The consumer's metrics for one record: its outcome, and an applied event's delay
        from its time."""
        kind = event.type if event is not None else "unreadable"
        EVENTS_CONSUMED.labels(self.group_id, kind, outcome.status).inc()
        if outcome.status == "applied" and event is not None:
            delay = (applied_at - event.time).total_seconds()
            EVENT_DELAY.labels(self.group_id, kind).observe(max(0.0, delay))

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
        DEAD_LETTERS.labels(self.group_id, message.topic).inc()

    def make_kafka_consumer(self) -> KafkaConsumer:
        """A consumer of this group that commits offsets only when told to."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers.split(","),
            group_id=self.group_id,
            client_id=f"{self.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_poll_records=MAX_POLL_RECORDS,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            # A topic created a moment before this consumer joined may have had no partition
            # metadata yet (kafka-python warns "No partition metadata"): looking again every
            # 10 s assigns its partitions then, not after the default 5 minutes.
            metadata_max_age_ms=10_000,
        )
        # Join the group only once the partitions of every topic are known here: a member that
        # joins (and, as the group's leader, assigns) before its metadata has them is given
        # none of them, and kafka-python may not notice the change (seen in busy test runs:
        # "No partition metadata", then nothing consumed).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(consumer.partitions_for_topic(topic) for topic in self.topics):
                break
            time.sleep(0.2)
        consumer.subscribe(list(self.topics))
        return consumer

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set. Offsets are committed after each applied batch; on a
        database error the consumer is rebuilt, so it resumes from the last committed offset
        and the idempotency check absorbs what is redelivered."""
        backoff = 0.5
        while not stop.is_set():
            consumer = self.make_kafka_consumer()
            try:
                while not stop.is_set():
                    batches = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
                    if batches:
                        # Each partition's records stay in their order; a campaign's events
                        # are all on one partition (keyed by campaign id).
                        self.handle_batch(
                            [record for records in batches.values() for record in records]
                        )
                        consumer.commit()
                    self._measure_lag(consumer)
                    backoff = 0.5
            except Exception:  # noqa: BLE001 - reconnect and resume from committed offsets
                log.exception("consumer failed; restarting in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                consumer.close(autocommit=False)

    def _measure_lag(self, consumer: KafkaConsumer) -> None:
        """Set each assigned partition's lag (records behind its highwater mark) from what the
        last fetches said: no request of its own, and never a failure of the consumer."""
        try:
            for partition in consumer.assignment():
                highwater = consumer.highwater(partition)
                if highwater is None:
                    continue  # nothing fetched yet: its position may not be known either
                # Known once fetched; timeout 0: never wait on the coordinator for it.
                position = consumer.position(partition, timeout_ms=0)
                if position is not None:
                    CONSUMER_LAG.labels(
                        self.group_id, partition.topic, str(partition.partition)
                    ).set(max(0, highwater - position))
        except Exception:  # noqa: BLE001 - a metric must not stop the consumer
            log.debug("consumer lag not measured", exc_info=True)
