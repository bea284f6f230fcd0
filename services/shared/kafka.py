"""Kafka clients configured the same way in every service, and the project's topics."""

from __future__ import annotations

import logging
import socket
import time

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from .events import TOPICS, dead_letter_topic, topic_name

log = logging.getLogger(__name__)

PARTITIONS = 6


def make_producer(bootstrap_servers: str, client_id: str) -> KafkaProducer:
    """A producer that only reports success once every in-sync replica has the record."""
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        retries=5,
        request_timeout_ms=15_000,
    )


def broker_reachable(bootstrap_servers: str, timeout: float = 1.0) -> bool:
    """True if a TCP connection to some bootstrap server opens (a cheap readiness probe)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def ensure_topics(
    bootstrap_servers: str,
    consumer_groups: tuple[str, ...] = ("donations", "ledger", "notifications"),
    partitions: int = PARTITIONS,
    timeout: float = 60.0,
    prefix: str = "",
) -> list[str]:
    """Create the event topics and one dead-letter topic per consumer group, if missing (with
    the installation's topic prefix). Returns the names it created. Retries while the broker
    is still starting.
    """
    wanted = [topic_name(topic, prefix) for topic in TOPICS] + [
        dead_letter_topic(group, prefix) for group in consumer_groups
    ]
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
            break
        except Exception as error:  # noqa: BLE001 - any failure here means "not up yet"
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Kafka at {bootstrap_servers} did not answer: {error}. "
                    "Start it with `infra/kafka.sh start` (make run / make test do)."
                ) from error
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            try:
                admin.create_topics(
                    [NewTopic(name, partitions, 1) for name in missing],
                    timeout_ms=30_000,
                )
            except TopicAlreadyExistsError:
                pass  # another process created it in the meantime
            log.info("created topics", extra={"topics": missing})
        _wait_for_leaders(admin, wanted, deadline)
        return missing
    finally:
        admin.close()


def _wait_for_leaders(admin: KafkaAdminClient, topics: list[str], deadline: float) -> None:
    """Return once every partition of `topics` has a leader: a consumer that joins its group
    before then is assigned none of a new topic's partitions (kafka-python warns "No
    partition metadata") until its next metadata refresh."""
    while True:
        try:
            described = admin.describe_topics(topics)
            ready = len(described) == len(topics) and all(
                not topic.get("error_code")
                and topic.get("partitions")
                and all(partition.get("leader_id", -1) >= 0 for partition in topic["partitions"])
                for topic in described
            )
        except Exception:  # noqa: BLE001 - not known everywhere yet: look again
            ready = False
        if ready:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Kafka did not elect leaders for {topics} in time; see the broker's log"
                " (infra/kafka.sh logs it under var/kafka/logs)"
            )
        time.sleep(0.2)
