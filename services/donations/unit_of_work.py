"""The donations service's unit of work: one transaction on its database, with the
repositories of campaigns, news posts, donations (their refunds, disputes, payouts), the
Stripe events received and the ledger's meal counts, its outbox and the ids of the events it
processed (services/shared/unit_of_work.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine

from services.shared.unit_of_work import SqlUnitOfWork

from . import store

# Each repository under the name handlers.UnitOfWork gives it.
REPOSITORIES: dict[str, Any] = {
    "campaigns": store.Campaigns,
    "news": store.NewsPosts,
    "meals": store.CampaignMeals,
    "donations": store.Donations,
    "refunds": store.Refunds,
    "disputes": store.Disputes,
    "payouts": store.Payouts,
    "stripe_events": store.StripeEvents,
}


class DonationsUnitOfWork(SqlUnitOfWork):
    """One transaction on the donations database, with the repositories handlers.UnitOfWork
    names."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, store.outbox, store.processed)

    def bind(self, conn: Connection) -> None:
        """The repositories, on this transaction."""
        for name, repository in REPOSITORIES.items():
            setattr(self, name, repository(conn))
