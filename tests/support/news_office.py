"""The news editor's world for tests: the donations app with a campaign manager, a finance
officer and a live campaign on one PostgreSQL database, and the REAL notifications app served
over HTTP in a thread on another, which the donations app calls for the email preview, the
delivery counts and resends. A post published in the back office reaches notifications as
its consumer would hand it: the event from donations' outbox, through its own handler."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import Engine, select

from services.donations import store as donations_store
from services.donations.app import create_app
from services.notifications import store as notifications_store
from services.notifications.app import create_app as notifications_app
from services.notifications.cli import MIGRATIONS as NOTIFICATIONS_MIGRATIONS
from services.notifications.config import Settings as NotificationsSettings
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.shared.db import make_engine, upgrade
from services.shared.envelope import CloudEvent
from services.shared.events import UPDATE_PUBLISHED
from services.shared.money import Money
from tests.support.backoffice import add_account, served
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings, publish_campaign
from tests.support.notifications import queue_news, save_consenting_donors

TOKEN = "news-office-admin-token"  # noqa: S105
SLUG = "petites-cantines"
MANAGER = "manager@example.org"
FINANCE = "books@example.org"


@dataclass
class NewsOffice:
    app: Flask
    engine: Engine
    notifications_engine: Engine
    notifications_settings: NotificationsSettings
    notifications_url: str
    campaign_id: str

    def announced(self) -> list[CloudEvent]:
        """The news posts donations put in its outbox, in order."""
        outbox = donations_store.outbox
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.payload)
                .where(outbox.c.event_type == UPDATE_PUBLISHED)
                .order_by(outbox.c.seq)
            ).scalars()
            return [CloudEvent.from_json(payload) for payload in rows]

    def deliver(self, event: CloudEvent, donors: int) -> list[Any]:
        """`donors` donors who asked for the campaign's news, then `event` through
        notifications' handler: their deliveries, oldest first."""
        save_consenting_donors(self.notifications_engine, self.campaign_id, donors)
        queue_news(self.notifications_settings, self.notifications_engine, event)
        deliveries = notifications_store.deliveries
        with self.notifications_engine.connect() as conn:
            return list(
                conn.execute(
                    select(deliveries)
                    .where(deliveries.c.post_id == event.data["post_id"])
                    .order_by(deliveries.c.created_at, deliveries.c.id)
                ).all()
            )

    def mark(self, sent: list[str], failed: list[str]) -> None:
        """Some deliveries sent, some failed for good, as the sender would leave them."""
        with NotificationsUnitOfWork(self.notifications_engine) as uow:
            for delivery_id in sent:
                uow.deliveries.mark_sent(delivery_id, datetime.now(UTC))
            for delivery_id in failed:
                uow.deliveries.mark_failed(delivery_id, "550 5.1.1 <donor-0@example.org> unknown")


@contextmanager
def news_office(
    database_url: str,
    notifications_database_url: str,
    stripe_mock_url: str,
    notifications_url: str | None = None,
    public_url: str = "http://donations.test",
) -> Iterator[NewsOffice]:
    """The world above; `notifications_url` points the donations app elsewhere (a service
    that does not answer, say) while the real one still runs."""
    upgrade(database_url, DONATIONS_MIGRATIONS)
    upgrade(notifications_database_url, NOTIFICATIONS_MIGRATIONS)
    engine = make_engine(database_url)
    notifications_engine = make_engine(notifications_database_url)
    add_account(engine, MANAGER, "admin", name="Camille Manager")
    add_account(engine, FINANCE, "finance", name="Dominique Books")
    campaign_id = publish_campaign(
        engine,
        slug=SLUG,
        meal_price=Money(1350, "EUR"),
        title="Les Petites Cantines Bagnolet",
        cause="Les Petites Cantines",
        summary="Des repas à prix libre",
        goal_meals=1000,
    )
    settings = replace(
        NotificationsSettings.from_env(),
        database_url=notifications_database_url,
        admin_token=TOKEN,
    )
    try:
        with served(notifications_app(settings)) as url:
            app = create_app(
                donations_settings(
                    database_url,
                    stripe_mock_url,
                    public_url=public_url,
                    notifications_url=notifications_url or url,
                    notifications_token=TOKEN,
                )
            )
            yield NewsOffice(app, engine, notifications_engine, settings, url, campaign_id)
    finally:
        engine.dispose()
        notifications_engine.dispose()
