"""The running system as `make run` starts it (SQLite files, each service under gunicorn with
2 workers x 4 threads plus its worker process, local Kafka, stripe-mock, the SMTP sink),
offered signed `checkout.session.completed` webhooks at a steady rate: the time from each
webhook's 2xx to its receipt being accepted by the SMTP sink, and whether the backlog stays
flat (receipts owed at each second of the run).

Open loop: webhook n is sent at start + n / rate whatever happened to the others, so a slow
system shows as latency and backlog, not as a slower offered rate. The receipt is found by its
recipient (one donor address per gift) and timed by the sink's file (written when the sink
accepted the message).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path
from statistics import median
from typing import Any

from bench.common import Bench, Row, machine, say
from infra.stack import SERVICES, Stack
from tests.support.infra import free_port
from tests.support.stripe_signing import checkout_completed_event, encode, sign

SECRET = "whsec_bench_" + uuid.uuid4().hex
CLIENTS = 16


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextmanager
def running_system(bench: Bench) -> Iterator[tuple[Stack, Path, str]]:
    """The system on SQLite, started as `make run` does; its mail directory; the run's id."""
    work = bench.workdir / f"e2e-{uuid.uuid4().hex[:6]}"
    mail = work / "mail"
    smtp_host, smtp_port = bench.smtp_sink(mail)
    ports = {service: free_port() for service in SERVICES}
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bench.kafka(),
        "KAFKA_TOPIC_PREFIX": f"bench-e2e-{uuid.uuid4().hex[:8]}.",
        **{
            f"{service.upper()}_DATABASE_URL": f"sqlite:///{work / (service + '.db')}"
            for service in SERVICES
        },
        "STRIPE_API_BASE": bench.stripe_mock(),
        "STRIPE_API_KEY": "sk_test_123",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "SMTP_HOST": smtp_host,
        "SMTP_PORT": str(smtp_port),
        "DONATIONS_PUBLIC_URL": f"http://127.0.0.1:{ports['donations']}",
        "NOTIFICATIONS_PUBLIC_URL": f"http://127.0.0.1:{ports['notifications']}",
    }
    stack = Stack(env=env, log_dir=work / "logs", ports=ports)
    try:
        say("end to end: migrating and starting the system (SQLite, gunicorn 2x4)...")
        stack.migrate()
        stack.manage("donations", "seed-demo")
        stack.start()
        stack.wait_ready(timeout=120)
        yield stack, mail, uuid.uuid4().hex[:8]
    finally:
        stack.stop()


def _json(connection: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> Any:
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if payload else {}
    connection.request(method, path, body=payload, headers=headers)
    reply = connection.getresponse()
    data = reply.read()
    if reply.status >= 300:
        raise RuntimeError(f"{method} {path} answered {reply.status}: {data[:300]!r}")
    return json.loads(data)


def create_donations(base: str, slug: str, count: int, run_id: str) -> list[dict[str, Any]]:
    """`count` pending donations through the API (each a Checkout Session on stripe-mock)."""
    host_port = base.removeprefix("http://")
    made: list[dict[str, Any]] = [{}] * count
    numbers: queue.Queue[int] = queue.Queue()
    for n in range(count):
        numbers.put(n)
    errors: list[BaseException] = []

    def worker() -> None:
        connection = http.client.HTTPConnection(host_port, timeout=30)
        while True:
            try:
                n = numbers.get_nowait()
            except queue.Empty:
                return
            try:
                made[n] = _json(
                    connection,
                    "POST",
                    f"/api/v1/campaigns/{slug}/donations",
                    {
                        "amount": 2700,
                        "currency": "eur",
                        "donor": {"email": f"gift-{run_id}-{n}@bench.example", "name": "Bench"},
                        "locale": "en",
                    },
                )
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)
                return
            if n and n % 1000 == 0:
                say(f"end to end: {n} of {count} donations created...")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"creating donations failed: {errors[0]}")
    return made


class ReceiptWatch:
    """Watches the sink's directory: when each gift's receipt was accepted."""

    def __init__(self, mail: Path, run_id: str) -> None:
        self.mail = mail
        self.marker = f"gift-{run_id}-"
        self.accepted: dict[int, float] = {}
        self.seen: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.parser = BytesHeaderParser()

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.scan()
            self.stop.wait(0.05)

    def scan(self) -> None:
        try:
            names = os.listdir(self.mail)
        except FileNotFoundError:
            return
        for name in names:
            if not name.endswith(".eml") or name in self.seen:
                continue
            self.seen.add(name)
            path = self.mail / name
            with open(path, "rb") as file:
                headers = self.parser.parse(file)
            address = parseaddr(str(headers.get("To", "")))[1]
            # Each gift's donor has their own address and asked for no news: their one email
            # is the receipt.
            if not address.startswith(self.marker):
                continue
            number = int(address[len(self.marker) :].split("@")[0])
            self.accepted.setdefault(number, path.stat().st_mtime)


def offer(base: str, events: list[bytes], rate: float) -> tuple[list[float], list[int]]:
    """Post each signed body at start + n / rate from CLIENTS keep-alive connections; the time
    of each 2xx (0 if refused) and each status."""
    host_port = base.removeprefix("http://")
    answered = [0.0] * len(events)
    statuses = [0] * len(events)
    start = time.time() + 0.5
    next_n = [0]
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection(host_port, timeout=60)
        while True:
            with lock:
                n = next_n[0]
                next_n[0] += 1
            if n >= len(events):
                return
            delay = start + n / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            body = events[n]
            try:
                connection.request(
                    "POST",
                    "/webhooks/stripe",
                    body=body,
                    headers={
                        "Content-Type": "application/json",
                        "Stripe-Signature": sign(body, SECRET),
                    },
                )
                reply = connection.getresponse()
                reply.read()
                statuses[n] = reply.status
                if 200 <= reply.status < 300:
                    answered[n] = time.time()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(host_port, timeout=60)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answered, statuses


def run(bench: Bench) -> None:
    rate, seconds = (100.0, 60) if not bench.quick else (50.0, 10)
    count = int(rate * seconds)
    warm = 20
    with running_system(bench) as (stack, mail, run_id):
        base = stack.url("donations")
        host = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
        campaign = _json(host, "GET", "/api/v1/campaigns/petites-cantines")
        say(f"end to end: creating {count + warm} pending donations through the API...")
        donations = create_donations(base, "petites-cantines", count + warm, run_id)
        bodies = [
            encode(checkout_completed_event(donation["id"], campaign["id"], 2700))
            for donation in donations
        ]
        watch = ReceiptWatch(mail, run_id)
        watch.thread.start()
        say(f"end to end: warming up with {warm} gifts...")
        offer(base, bodies[:warm], rate=10)
        deadline = time.time() + 60
        while len(watch.accepted) < warm and time.time() < deadline:
            time.sleep(0.1)
        say(f"end to end: offering {count} signed webhooks at {rate:g}/s for {seconds} s...")
        answered, statuses = offer(base, bodies[warm:], rate)
        deadline = time.time() + 120
        while time.time() < deadline:
            done = sum(1 for n in range(count) if warm + n in watch.accepted)
            if done >= sum(1 for stamp in answered if stamp):
                break
            time.sleep(0.2)
        watch.stop.set()
        watch.thread.join()
        watch.scan()
    latencies = [
        watch.accepted[warm + n] - answered[n]
        for n in range(count)
        if answered[n] and warm + n in watch.accepted
    ]
    missing = sum(1 for n in range(count) if answered[n] and warm + n not in watch.accepted)
    refused = sum(1 for status in statuses if not 200 <= status < 300)
    first, last = min(stamp for stamp in answered if stamp), max(answered)
    # Receipts owed (answered, not yet accepted) at each second of the run.
    owed = []
    for second in range(int(last - first) + 1):
        moment = first + second + 1
        sent = sum(1 for stamp in answered if stamp and stamp <= moment)
        received = sum(1 for stamp in watch.accepted.values() if stamp <= moment)
        owed.append(sent - max(0, received - warm))
    third = max(1, len(owed) // 3)
    flat = max(owed[-third:]) <= 2 * max(owed[:third]) + 10
    p99 = percentile(latencies, 0.99) if latencies else float("inf")
    bench.record(
        Row(
            pipeline=f"webhook 2xx -> receipt accepted by SMTP, {rate:g} gifts/s for {seconds} s",
            measured=p99,
            unit="s (p99)",
            target="p99 < 300 ms, backlog flat",
            higher_is_better=False,
            max_value=0.3 if flat and not missing else 0.0,
            details={
                "offered_per_s": rate,
                "achieved_per_s": count / max(last - first, 1e-9),
                "p50_s": median(latencies) if latencies else None,
                "p90_s": percentile(latencies, 0.9) if latencies else None,
                "max_s": max(latencies) if latencies else None,
                "receipts": len(latencies),
                "missing": missing,
                "refused_webhooks": refused,
                "owed_per_second": owed,
                "backlog_flat": flat,
                "database": "sqlite (make run)",
                "machine": machine(),
            },
        )
    )
