"""The metrics every service exposes on /metrics, for Prometheus (the official client).

Under gunicorn each worker is a process, and the service's background worker is another: when
PROMETHEUS_MULTIPROC_DIR names a directory (infra/stack.py gives each service its own, wiped
at start), every process writes its samples there and /metrics, whichever process answers,
reads them all (prometheus_client's multiprocess mode). Without it (tests, one process) the
default registry serves.

What each metric means, and the alert a person should set on it, is in README.md
("Metrics")."""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from a millisecond to a minute, dense where a request or a hop should be.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)

HTTP_REQUESTS = Histogram(
    "difts_http_request_duration_seconds",
    "Time to answer an HTTP request, by service, route, method and status",
    ["service", "route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
OUTBOX_BACKLOG = Gauge(
    "difts_outbox_backlog_events",
    "Outbox rows not yet published",
    ["service"],
    multiprocess_mode="livemax",
)
OUTBOX_OLDEST_AGE = Gauge(
    "difts_outbox_oldest_age_seconds",
    "Age of the oldest outbox row not yet published (0 when none waits)",
    ["service"],
    multiprocess_mode="livemax",
)
OUTBOX_PUBLISHED = Counter(
    "difts_outbox_published_events_total", "Events the relay published", ["service", "topic"]
)
CONSUMER_LAG = Gauge(
    "difts_consumer_lag_records",
    "Records of a partition not yet applied by the consumer group",
    ["group", "topic", "partition"],
    multiprocess_mode="livemax",
)
EVENT_DELAY = Histogram(
    "difts_event_apply_delay_seconds",
    "From an event's time to its application by a consumer group",
    ["group", "type"],
    buckets=_LATENCY_BUCKETS,
)
EVENTS_CONSUMED = Counter(
    "difts_consumed_events_total",
    "Events a consumer group handled, by outcome (applied, duplicate, skipped, dead_lettered)",
    ["group", "type", "outcome"],
)
DEAD_LETTERS = Counter(
    "difts_dead_letters_total", "Events sent to a dead-letter topic", ["group", "topic"]
)
STRIPE_WEBHOOKS = Counter(
    "difts_stripe_webhooks_total",
    "Stripe webhooks answered, by answer (received, duplicate, unreadable, bad_signature)",
    ["outcome"],
)
STRIPE_EVENTS_UNAPPLIED = Gauge(
    "difts_stripe_events_unapplied",
    "Stripe events recorded by the webhook and not yet applied by a worker",
    multiprocess_mode="livemax",
)
STRIPE_EVENTS_OLDEST_AGE = Gauge(
    "difts_stripe_events_oldest_unapplied_age_seconds",
    "Age of the oldest Stripe event not yet applied (0 when none waits)",
    multiprocess_mode="livemax",
)
EMAILS = Counter(
    "difts_emails_total",
    "Email attempts by kind and outcome (sent, retried, failed, skipped)",
    ["kind", "outcome"],
)


def registry() -> CollectorRegistry:
    """What /metrics reports: every process's samples in multiprocess mode, else this one's."""
    if os.environ.get(MULTIPROC_DIR):
        collected = CollectorRegistry()
        _multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus's text format, and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """A process of this service is gone (gunicorn's child_exit): forget its live gauges."""
    if os.environ.get(MULTIPROC_DIR):
        _multiprocess.mark_process_dead(pid)


class Stopwatch:
    """Time a block in seconds with a monotonic clock."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.seconds = time.perf_counter() - self.started
