"""Running a service's loop (a consumer, a sender, a relay) for a block of a test, and
waiting, with a deadline, for what it should bring about."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

WAIT = 60.0


@contextlib.contextmanager
def running(loop: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run a service loop in a thread for the duration of the block."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the loop did not stop"


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """The condition's first true value, polled until `timeout`; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def end_offsets(bootstrap: str, topics: tuple[str, ...]) -> dict[Any, int]:
    """Where each partition of `topics` ends now (what a test's own events will follow)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        return dict(consumer.end_offsets(partitions))
    finally:
        consumer.close()


def start_group_at(bootstrap: str, group: str, offsets: dict[Any, int]) -> None:
    """Commit a consumer group's offsets, so it reads from there (a test's own events only,
    rather than every event other tests put on the shared topics)."""
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    try:
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()})
    finally:
        consumer.close(autocommit=False)
