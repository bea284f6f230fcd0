"""The donations service's configuration, read from the environment in this one place."""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.config import DEFAULT_KAFKA, KAFKA_BOOTSTRAP_SERVERS, env, env_int, sqlite_url

# Not a secret: the development default that make run, the README and tests sign with.
DEVELOPMENT_WEBHOOK_SECRET = "whsec_difts_development_only"  # noqa: S105


@dataclass(frozen=True)
class Settings:
    """Everything the donations service can be told from outside."""

    database_url: str
    kafka_bootstrap_servers: str
    stripe_api_key: str
    stripe_api_base: str
    stripe_webhook_secret: str
    webhook_tolerance_seconds: int
    public_url: str
    min_amount: int
    max_amount: int

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment, with defaults that serve `make run`."""
        return cls(
            database_url=env("DONATIONS_DATABASE_URL", sqlite_url("donations")),
            kafka_bootstrap_servers=env(KAFKA_BOOTSTRAP_SERVERS, DEFAULT_KAFKA),
            # stripe-mock accepts any key of this shape; production sets a real one.
            stripe_api_key=env("STRIPE_API_KEY", "sk_test_123"),
            stripe_api_base=env("STRIPE_API_BASE", "http://127.0.0.1:12111"),
            stripe_webhook_secret=env("STRIPE_WEBHOOK_SECRET", DEVELOPMENT_WEBHOOK_SECRET),
            webhook_tolerance_seconds=env_int("STRIPE_WEBHOOK_TOLERANCE", 300),
            public_url=env("DONATIONS_PUBLIC_URL", "http://127.0.0.1:8001").rstrip("/"),
            min_amount=env_int("DONATION_MIN_AMOUNT", 100),
            max_amount=env_int("DONATION_MAX_AMOUNT", 1_000_000),
        )
