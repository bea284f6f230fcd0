"""The ledger consumer (claim, book, outbox, commit) against a bare KafkaConsumer reading the
same records, on PostgreSQL and on SQLite; and two ledger workers of one group against one.

Each measurement has topics of its own: N confirmed gifts are sent, then the same N again
(the redeliveries a relay's retry or a rebalance makes), so the ledger books N gifts and
recognises N duplicates."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Sequence
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from bench.common import Bench, Row, say
from bench.events import donation_events
from services.ledger.cli import MIGRATIONS
from services.ledger.consumer import build_consumer
from services.shared.consumer import FETCH_MAX_WAIT_MS, MAX_POLL_RECORDS
from services.shared.db import make_engine, upgrade
from services.shared.events import DONATIONS_TOPIC, topic_name
from services.shared.kafka import PARTITIONS, ensure_topics, make_producer

WAIT = 900.0


def run(bench: Bench) -> None:
    """Record the three rows of the ledger suite."""
    bootstrap = bench.kafka()
    for kind, name, target in (("postgresql", "PostgreSQL", 0.5), ("sqlite", "SQLite", 0.3)):
        bare, measured, records = _one_consumer(bench, bootstrap, kind)
        bench.record(
            Row(
                pipeline=f"ledger consumer on {name} (gifts, half the records redelivered)",
                measured=records / measured,
                unit="records/s",
                baseline=records / bare,
                baseline_name="bare KafkaConsumer reading the same records",
                target=f">= {target}x",
                min_ratio=target,
                details={"records": records, "seconds": measured, "baseline_seconds": bare},
            )
        )
    campaigns = 60
    one, one_cpu = _workers(bench, bootstrap, 1, campaigns)
    two, two_cpu = _workers(bench, bootstrap, 2, campaigns)
    records = 2 * bench.events
    bench.record(
        Row(
            pipeline=(
                f"two ledger workers in one group on {PARTITIONS} partitions, "
                f"{campaigns} campaigns (PostgreSQL, a process each)"
            ),
            measured=records / two,
            unit="records/s",
            baseline=records / one,
            baseline_name="one worker, measured the same way",
            target=">= 1.6x",
            min_ratio=1.6,
            # What bounds it on a small machine: the cores the workers and the rest of the
            # machine (PostgreSQL, Kafka, anything else running) kept busy meanwhile.
            details={
                "records": records,
                "seconds": two,
                "baseline_seconds": one,
                "cpu": {"one worker": one_cpu, "two workers": two_cpu},
            },
        )
    )


def _send_twice(bootstrap: str, prefix: str, count: int, campaigns: int) -> int:
    """Send `count` gifts, then the same again; return how many records were sent."""
    events = donation_events(count, campaigns)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for _ in range(2):
        for key, event in events:
            producer.send(
                topic_name(DONATIONS_TOPIC, prefix),
                key=key.encode(),
                value=event.to_json().encode(),
            )
    producer.flush()
    producer.close()
    return 2 * len(events)


def _one_consumer(bench: Bench, bootstrap: str, kind: str) -> tuple[float, float, int]:
    """Seconds for a bare consumer to read, and for the ledger consumer to apply, the same
    records (each from the start of its own group, joining included)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    group = f"bench-ledger-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, consumer_groups=(group,), prefix=prefix)
    say(f"ledger ({kind}): sending {bench.events} gifts twice...")
    total = _send_twice(bootstrap, prefix, bench.events, 12)

    bare = KafkaConsumer(
        topic_name(DONATIONS_TOPIC, prefix),
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=MAX_POLL_RECORDS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    started = time.perf_counter()
    seen = 0
    while seen < total:
        batches = bare.poll(timeout_ms=1000)
        seen += sum(len(records) for records in batches.values())
        if batches:
            bare.commit()
    baseline = time.perf_counter() - started
    bare.close()

    url = bench.database(kind, "ledger")
    upgrade(url, MIGRATIONS)
    engine = make_engine(url)
    dead_letters = make_producer(bootstrap, "bench-dead-letters")
    consumer = build_consumer(engine, bootstrap, group, dead_letters, topic_prefix=prefix)
    handled = [0]
    handle_batch = consumer.handle_batch

    def counting_handle_batch(messages: list[Any]) -> Any:
        outcomes = handle_batch(messages)
        handled[0] += len(messages)
        return outcomes

    consumer.handle_batch = counting_handle_batch  # type: ignore[method-assign]
    stop = threading.Event()
    say(f"ledger ({kind}): bare consumer read {total} records; now the ledger consumer...")
    started = time.perf_counter()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while handled[0] < total:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit(f"bench: the ledger consumer handled {handled[0]} of {total}")
        time.sleep(0.005)
    measured = time.perf_counter() - started
    stop.set()
    thread.join(timeout=30)
    dead_letters.close()
    engine.dispose()
    return baseline, measured, total


def _workers(
    bench: Bench, bootstrap: str, count: int, campaigns: int
) -> tuple[float, dict[str, Any]]:
    """Seconds for `count` ledger worker processes of one group to apply gifts sent twice:
    the workers join the group and hold their partitions paused until every record is on
    the topic (so no rebalance and no producer is timed), then go; the time runs from the go
    until the group's committed offsets reach the end of every partition."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    group = f"bench-ledger-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, consumer_groups=(group,), prefix=prefix)
    url = bench.database("postgresql", "ledger_workers")
    upgrade(url, MIGRATIONS)
    context = multiprocessing.get_context("spawn")
    go, stop = context.Event(), context.Event()
    ready = [context.Event() for _ in range(count)]
    processes = [
        context.Process(target=_worker, args=(url, bootstrap, group, prefix, ready[n], go, stop))
        for n in range(count)
    ]
    for process in processes:
        process.start()
    try:
        _wait_for_members(bootstrap, group, ready)
        say(f"ledger: {count} worker(s) joined; sending {bench.events} gifts twice...")
        _send_twice(bootstrap, prefix, bench.events, campaigns)
        pids = [process.pid or 0 for process in processes]
        workers_before, machine_before = [_cpu_seconds(pid) for pid in pids], _machine_busy()
        started = time.perf_counter()
        go.set()
        _wait_for_commits(bootstrap, group, topic_name(DONATIONS_TOPIC, prefix), processes)
        seconds = time.perf_counter() - started
        workers = [_cpu_seconds(pid) - cpu for pid, cpu in zip(pids, workers_before, strict=True)]
        (busy_after, total_after), (busy_before, total_before) = _machine_busy(), machine_before
        busy, total = busy_after - busy_before, total_after - total_before
        cpu = {
            "cores": os.cpu_count(),
            "machine_busy_cores": round((os.cpu_count() or 1) * busy / max(total, 1), 2),
            "worker_cores": [round(worker / seconds, 2) for worker in workers],
        }
        say(f"ledger: {count} worker(s): {2 * bench.events / seconds:,.0f} records/s, cpu {cpu}")
        return seconds, cpu
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def _worker(
    url: str, bootstrap: str, group: str, prefix: str, ready: Event, go: Event, stop: Event
) -> None:
    """One ledger worker process: the ledger consumer of `group`, its partitions paused until
    `go`, then applying until `stop`."""
    engine = make_engine(url)
    dead_letters = make_producer(bootstrap, "bench-dead-letters")
    consumer = build_consumer(engine, bootstrap, group, dead_letters, topic_prefix=prefix)
    make_kafka_consumer = consumer.make_kafka_consumer

    def held_until_go() -> KafkaConsumer:
        kafka_consumer = make_kafka_consumer()
        while not go.is_set():
            # Polling keeps the member in the group (and takes part in rebalances); paused
            # partitions fetch nothing.
            kafka_consumer.poll(timeout_ms=50)
            kafka_consumer.pause(*kafka_consumer.assignment())
            if kafka_consumer.assignment():
                ready.set()
        kafka_consumer.resume(*kafka_consumer.assignment())
        return kafka_consumer

    consumer.make_kafka_consumer = held_until_go  # type: ignore[method-assign]
    halt = threading.Event()

    def relay_stop() -> None:
        stop.wait()
        halt.set()

    watcher = threading.Thread(target=relay_stop, daemon=True)
    watcher.start()
    consumer.run(halt)
    dead_letters.close()
    engine.dispose()


def _cpu_seconds(pid: int) -> float:
    """CPU seconds a process used so far (Linux's /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[int, int]:
    """The machine's busy and total CPU ticks so far (Linux's /proc/stat; zeros elsewhere)."""
    try:
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def _wait_for_members(bootstrap: str, group: str, ready: list[Event]) -> None:
    """Until every worker has its consumer and the group is stable with all of them, each
    holding partitions."""
    for event in ready:
        if not event.wait(WAIT):
            raise SystemExit("bench: a ledger worker did not start")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            description = admin.describe_groups([group])[group]
            members = description.get("members") or []
            state = description.get("group_state") or description.get("state")
            if state == "Stable" and len(members) == len(ready):
                return
            time.sleep(0.1)
    finally:
        admin.close()
    raise SystemExit(f"bench: the group {group} did not settle")


def _wait_for_commits(
    bootstrap: str, group: str, topic: str, processes: Sequence[multiprocessing.process.BaseProcess]
) -> None:
    """Until the group's committed offsets are the end offsets of every partition."""
    # A consumer of the group that never joins it: it only reads the group's commits.
    reader = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group)
    partitions = [TopicPartition(topic, n) for n in range(PARTITIONS)]
    ends = reader.end_offsets(partitions)
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            if not all(process.is_alive() for process in processes):
                raise SystemExit("bench: a ledger worker died")
            if all((reader.committed(tp) or 0) >= end for tp, end in ends.items()):
                return
            time.sleep(0.02)
    finally:
        reader.close()
    raise SystemExit("bench: the ledger workers did not apply every record")
