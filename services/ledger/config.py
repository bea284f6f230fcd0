"""The ledger service's configuration, read from the environment in this one place."""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.config import DEFAULT_KAFKA, KAFKA_BOOTSTRAP_SERVERS, env, sqlite_url


@dataclass(frozen=True)
class Settings:
    """Everything the ledger service can be told from outside."""

    database_url: str
    kafka_bootstrap_servers: str
    consumer_group: str

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment, with defaults that serve `make run`."""
        return cls(
            database_url=env("LEDGER_DATABASE_URL", sqlite_url("ledger")),
            kafka_bootstrap_servers=env(KAFKA_BOOTSTRAP_SERVERS, DEFAULT_KAFKA),
            consumer_group=env("LEDGER_CONSUMER_GROUP", "ledger"),
        )
