"""Fixtures for every suite: the real Kafka, PostgreSQL, stripe-mock and SMTP sink.

Unit tests use none of them; a fixture starts (or finds) a part only when a test asks for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.shared.kafka import ensure_topics
from tests.support import infra
from tests.support.mail import Mailbox


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A running Kafka broker with the project's topics."""
    with infra.kafka() as bootstrap:
        ensure_topics(bootstrap)
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL server on which tests may create databases."""
    with infra.postgres() as url:
        yield url


@pytest.fixture
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test alone."""
    with infra.fresh_database(postgres_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def stripe_mock_url() -> Iterator[str]:
    """A running stripe-mock."""
    with infra.stripe_mock() as url:
        yield url


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    """A running SMTP sink that keeps this test's mail."""
    directory = tmp_path / "mail"
    with infra.smtp_sink(directory) as (host, port):
        yield Mailbox(host, port, directory)


@pytest.fixture
def consumer_group(kafka_bootstrap: str) -> str:
    """A consumer group of this test alone, with its dead-letter topic created."""
    group = f"test-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, consumer_groups=(group,))
    return group
