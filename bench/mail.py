"""The notifications sender on its real code path (the delivery log of SQLite as `make run`
uses, and of PostgreSQL; the handlers that queue; the sender's lanes), against the project's
SMTP sink (infra/smtp_sink.py):

1. A news fan-out with throttling off, drained by the bulk lane, against a raw smtplib loop
   sending the same messages over one connection to the same sink (measured before and after
   the sender; the baseline is their mean).
2. Receipts queued one by one while a 2,000-donor news fan-out drains under the default
   throttle: the delay from each receipt's delivery row being committed (by the handler the
   consumer runs) to the sink keeping it (the sink names each file by the time it wrote it,
   just before its 250), an absolute bound.
"""

from __future__ import annotations

import smtplib
import statistics
import threading
import time
import uuid
from dataclasses import replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from bench.common import Bench, Row, say
from services.notifications import store
from services.notifications.cli import MIGRATIONS
from services.notifications.config import Settings
from services.notifications.worker import build_sender
from services.shared.db import make_engine, upgrade
from tests.support.notifications import (
    count_deliveries,
    gift_booked,
    news_post,
    queue_news,
    queue_receipt,
    save_consenting_donors,
)

CAMPAIGN = "bench-cantines"
DONORS = 2000


def run(bench: Bench) -> None:
    donors = 300 if bench.quick else DONORS
    for kind in ("sqlite", "postgresql"):
        fan_out_unthrottled(bench, kind, donors)
    receipts_during_a_fan_out(bench, donors, receipts=30 if bench.quick else 100)


# --- the parts ------------------------------------------------------------------------------


def _service(bench: Bench, kind: str, name: str) -> tuple[Settings, Engine, Path]:
    """A notifications database of `kind` at the newest schema, a sink of its own, and the
    service's settings pointing at both."""
    url = bench.database(kind, name)
    upgrade(url, MIGRATIONS)
    mail = bench.workdir / f"{name}-{uuid.uuid4().hex[:6]}"
    host, port = bench.smtp_sink(mail)
    settings = replace(
        Settings.from_env(),
        database_url=url,
        smtp_host=host,
        smtp_port=port,
        smtp_starttls=False,
        smtp_username="",
    )
    return settings, make_engine(url), mail


def _queue_news(settings: Settings, engine: Engine, donors: int) -> float:
    """`donors` donors who asked for news, then a news post queued to them all by the
    consumer's handler; returns the seconds the fan-out's transaction took."""
    save_consenting_donors(engine, CAMPAIGN, donors)
    post = news_post(CAMPAIGN)
    started = time.perf_counter()
    queue_news(settings, engine, post)
    return time.perf_counter() - started


def _raw_loop(settings: Settings, messages: list[tuple[str, str]]) -> float:
    """The baseline: smtplib alone, one connection, the same messages; its seconds."""
    envelope_from = parseaddr(settings.mail_from)[1]
    started = time.perf_counter()
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout)
    smtp.ehlo()
    for recipient, message in messages:
        smtp.sendmail(envelope_from, [recipient], message)
    smtp.quit()
    return time.perf_counter() - started


# --- 1. throughput --------------------------------------------------------------------------


def fan_out_unthrottled(bench: Bench, kind: str, donors: int) -> None:
    """The bulk lane draining a news fan-out with no throttle vs a raw smtplib loop."""
    name = "SQLite" if kind == "sqlite" else "PostgreSQL"
    settings, engine, _mail = _service(bench, kind, f"mail-fanout-{kind}")
    settings = replace(settings, send_rate=0)
    say(f"mail ({name}): queueing a news post to {donors} donors...")
    queued = _queue_news(settings, engine, donors)
    with engine.connect() as conn:
        messages = [
            (row.recipient, row.message)
            for row in conn.execute(
                select(store.deliveries.c.recipient, store.deliveries.c.message).where(
                    store.deliveries.c.kind == store.NEWS
                )
            )
        ]
    say(f"mail ({name}): raw smtplib loop, then the sender, then the raw loop again...")
    raw_before = _raw_loop(settings, messages)
    lane = build_sender(settings, engine).bulk
    started = time.perf_counter()
    while lane.send_due():
        pass
    measured = time.perf_counter() - started
    raw_after = _raw_loop(settings, messages)
    sent = count_deliveries(engine, store.NEWS, store.SENT)
    engine.dispose()
    assert sent == len(messages), f"the sender sent {sent} of {len(messages)}"
    raw = (raw_before + raw_after) / 2
    bench.record(
        Row(
            pipeline=f"news fan-out with throttling off ({donors} donors, {name})",
            measured=sent / measured,
            unit="emails/s",
            baseline=len(messages) / raw,
            baseline_name="raw smtplib loop, same messages, same sink",
            target=">= 0.9x",
            min_ratio=0.9,
            details={
                "emails": sent,
                "seconds": measured,
                "baseline_seconds_before": raw_before,
                "baseline_seconds_after": raw_after,
                "batch": settings.send_batch,
                "fan_out_queued_seconds": queued,
            },
        )
    )


# --- 2. receipts while bulk mail drains -----------------------------------------------------


def _kept_at(mail: Path) -> dict[str, float]:
    """When the sink kept each receipt (to giver-N@...), from its file name's time_ns."""
    kept: dict[str, float] = {}
    for path in mail.glob("*.eml"):
        with path.open("rb") as message:
            first = message.readline().decode()
        recipient = first.removeprefix("X-Sink-Rcpt-To: ").strip()
        if recipient.startswith("giver-"):
            kept[recipient] = int(path.name.split("-", 1)[0]) / 1e9
    return kept


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def receipts_during_a_fan_out(bench: Bench, donors: int, receipts: int) -> None:
    """Receipts queued one by one while a throttled news fan-out drains (the worker's two
    sender lanes running as in the worker, woken by commits)."""
    settings, engine, mail = _service(bench, "sqlite", "mail-receipts")
    say(f"mail: receipts while a {donors}-donor fan-out drains at {settings.send_rate:g}/s...")
    _queue_news(settings, engine, donors)
    lanes = build_sender(settings, engine)
    stop = threading.Event()
    worker = threading.Thread(target=lanes.run, args=(stop,), name="bench-senders")
    worker.start()
    committed: dict[str, float] = {}
    spacing = 0.2  # five gifts a second
    try:
        time.sleep(1.0)  # the fan-out is under way
        for n in range(receipts):
            giver = f"giver-{n}@example.org"
            queue_receipt(settings, engine, gift_booked(CAMPAIGN, giver, meals_funded=2 * (n + 1)))
            committed[giver] = time.time()
            time.sleep(spacing)
        deadline = time.monotonic() + 30
        while len(_kept_at(mail)) < receipts and time.monotonic() < deadline:
            time.sleep(0.2)
        news_sent = count_deliveries(engine, store.NEWS, store.SENT)
        news_pending = count_deliveries(engine, store.NEWS, store.PENDING)
    finally:
        stop.set()
        worker.join(timeout=30)
        engine.dispose()
    kept = _kept_at(mail)
    delays = [kept[to] - at for to, at in committed.items() if to in kept]
    missing = receipts - len(delays)
    details: dict[str, Any] = {
        "receipts": receipts,
        "received": len(delays),
        "p50_seconds": statistics.median(delays) if delays else None,
        "max_seconds": max(delays) if delays else None,
        "news_sent_meanwhile": news_sent,
        "news_still_pending": news_pending,
        "bulk_rate": settings.send_rate,
        "receipts_per_second": 1 / spacing,
    }
    bench.record(
        Row(
            pipeline=f"receipt while a {donors}-donor news fan-out drains under the default "
            f"throttle ({settings.send_rate:g}/s)",
            measured=_percentile(delays, 0.99) if not missing else float("inf"),
            unit="s (p99)",
            target="p99 < 2 s",
            max_value=2.0,
            higher_is_better=False,
            details=details,
        )
    )
