"""The donations service as integration tests configure it, and the campaign manager's
commands as tests seed campaigns with (each in a unit of work of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from services.donations.config import Settings
from services.donations.domain.campaigns import Campaign
from services.donations.handlers import campaigns
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.money import Money

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


def publish_campaign(engine: Engine, *, slug: str, meal_price: Money, **texts: Any) -> str:
    """A live campaign (title, cause and the other texts as given), announced; its id."""
    with DonationsUnitOfWork(engine) as uow:
        command = campaigns.CreateCampaign(slug, meal_price, texts)
        campaign_id, _created = campaigns.publish_campaign(command, uow)
    return campaign_id


def create_campaign(
    engine: Engine, *, slug: str, meal_price: Money, values: dict[str, Any]
) -> Campaign:
    """A draft campaign, not announced."""
    with DonationsUnitOfWork(engine) as uow:
        return campaigns.create_campaign(campaigns.CreateCampaign(slug, meal_price, values), uow)
