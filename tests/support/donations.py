"""The donations service as integration tests configure it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.donations.config import Settings

DONATIONS_MIGRATIONS = Path(__file__).resolve().parents[2] / "services/donations/migrations"


def donations_settings(database_url: str, stripe_mock_url: str, **overrides: Any) -> Settings:
    """Settings for a test: the given database and stripe-mock, no broker unless given,
    everything else as a test expects it unless overridden."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": "127.0.0.1:9",
        "stripe_api_key": "sk_test_123",
        "stripe_api_base": stripe_mock_url,
        "stripe_webhook_secret": "whsec_integration",
        "webhook_tolerance_seconds": 300,
        "public_url": "http://donations.test",
        "min_amount": 100,
        "max_amount": 1_000_000,
        **overrides,
    }
    return Settings(**values)
