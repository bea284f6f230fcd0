"""The ledger service's configuration, read from the environment in this one place."""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.auth import parse_tokens
from services.shared.config import (
    DEFAULT_API_TOKENS,
    service_basics,
    stripe_basics,
)


@dataclass(frozen=True)
class Settings:
    """Everything the ledger service can be told from outside."""

    database_url: str
    kafka_bootstrap_servers: str
    consumer_group: str
    # Bearer tokens (token:role,...): the finance API wants the finance role.
    api_tokens: str = DEFAULT_API_TOKENS
    # Reconciliation and re-sync read Stripe's balance transactions (stripe-mock locally).
    stripe_api_key: str = "sk_test_123"
    stripe_api_base: str = "http://127.0.0.1:12111"

    # Prefixes every topic name (KAFKA_TOPIC_PREFIX), to share a Kafka cluster.
    topic_prefix: str = ""

    def tokens(self) -> dict[str, frozenset[str]]:
        """The bearer tokens and their roles."""
        return parse_tokens(self.api_tokens)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment, with defaults that serve `make run`."""
        return cls(
            **service_basics("ledger"),
            **stripe_basics(),
        )
