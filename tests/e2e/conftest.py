"""The running system for end-to-end tests: the three services as real gunicorn processes and
workers, on real Kafka, PostgreSQL, stripe-mock and the SMTP sink."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from infra.stack import SERVICES, Stack
from services.donations import store as donations_store
from tests.support import infra
from tests.support.mail import Mailbox

WEBHOOK_SECRET = "whsec_e2e_" + uuid.uuid4().hex
ADMIN_TOKEN = "e2e-admin-" + uuid.uuid4().hex
FINANCE_TOKEN = "e2e-finance-" + uuid.uuid4().hex


@dataclass
class RunningSystem:
    """What a test can reach: the services' URLs, the webhook secret, the mailbox."""

    stack: Stack
    mailbox: Mailbox
    webhook_secret: str
    admin_token: str
    databases: dict[str, str]
    finance_token: str = FINANCE_TOKEN

    def url(self, service: str) -> str:
        """Base URL of a service."""
        return self.stack.url(service)


@pytest.fixture(scope="module")
def system(
    kafka_bootstrap: str,
    postgres_admin_url: str,
    stripe_mock_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningSystem]:
    """The whole system, started once per test module and stopped after it."""
    work = tmp_path_factory.mktemp("e2e")
    mail_dir = work / "mail"
    with contextlib.ExitStack() as stack_of:
        databases = {
            service: stack_of.enter_context(
                infra.fresh_database(postgres_admin_url, prefix=f"e2e_{service}")
            )
            for service in SERVICES
        }
        smtp_host, smtp_port = stack_of.enter_context(infra.smtp_sink(mail_dir))
        ports = {service: infra.free_port() for service in SERVICES}
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            # Its own topics, so nothing another test published reaches these consumers.
            "KAFKA_TOPIC_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}.",
            "DONATIONS_DATABASE_URL": databases["donations"],
            "LEDGER_DATABASE_URL": databases["ledger"],
            "NOTIFICATIONS_DATABASE_URL": databases["notifications"],
            "STRIPE_API_BASE": stripe_mock_url,
            "STRIPE_API_KEY": "sk_test_123",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SMTP_HOST": smtp_host,
            "SMTP_PORT": str(smtp_port),
            "NOTIFICATIONS_ADMIN_TOKEN": ADMIN_TOKEN,
            "DIFTS_API_TOKENS": f"{ADMIN_TOKEN}:admin,{FINANCE_TOKEN}:finance",
            # The donations back office reads the ledger and notifications with these (the
            # URLs follow the ports: infra.stack.Stack sets them).
            "DIFTS_LEDGER_TOKEN": FINANCE_TOKEN,
            "DIFTS_NOTIFICATIONS_TOKEN": ADMIN_TOKEN,
            "DONATIONS_PUBLIC_URL": f"http://127.0.0.1:{ports['donations']}",
            "NOTIFICATIONS_PUBLIC_URL": f"http://127.0.0.1:{ports['notifications']}",
            # The development-only page that plays Stripe's checkout, for the browser test.
            "DONATIONS_TEST_CHECKOUT": "1",
        }
        stack = Stack(env=env, log_dir=work / "logs", ports=ports, gunicorn_workers=1)
        stack_of.callback(stack.stop)
        stack.migrate()
        stack.manage("donations", "seed-demo")
        stack.start()
        try:
            stack.wait_ready(timeout=90)
        except RuntimeError:
            for log in sorted((work / "logs").glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-3000:]}")
            raise
        yield RunningSystem(
            stack, Mailbox(smtp_host, smtp_port, mail_dir), WEBHOOK_SECRET, ADMIN_TOKEN, databases
        )


def log_tail(system: RunningSystem) -> str:
    """The end of every process log, to explain a failure."""
    return "\n".join(
        f"--- {path.name}\n{path.read_text()[-2000:]}"
        for path in sorted(Path(system.stack.log_dir).glob("*.log"))
    )


def applied_outcome(system: RunningSystem, event_id: str, timeout: float = 60) -> str:
    """What the donations worker made of a Stripe event the webhook recorded ("succeeded",
    "already_refunded", ...), once it has applied it: the webhook itself only answers
    "received"."""
    table = donations_store.stripe_events
    engine = create_engine(system.databases["donations"])
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                outcome = conn.execute(
                    select(table.c.outcome).where(table.c.id == event_id)
                ).scalar()
            assert outcome is not None, f"{event_id} was never recorded"
            if outcome != "received":
                return str(outcome)
            if time.monotonic() > deadline:
                raise AssertionError(f"{event_id} was not applied\n{log_tail(system)}")
            time.sleep(0.1)
    finally:
        engine.dispose()
