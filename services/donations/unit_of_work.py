"""The donations service's unit of work: one transaction on its database, with the
repositories of campaigns, news posts, donations (their refunds, disputes, payouts), the
Stripe events received and the ledger's meal counts, its outbox and the ids of the events it
processed (services/shared/unit_of_work.py)."""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from services.shared.unit_of_work import SqlUnitOfWork

from . import store
from .handlers import Repositories


class DonationsUnitOfWork(SqlUnitOfWork, Repositories):
    """One transaction on the donations database, with the repositories handlers.Repositories
    names."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, store.outbox, store.processed)

    def bind(self, conn: Connection) -> None:
        """The repositories, on this transaction."""
        self.campaigns = store.Campaigns(conn)
        self.news = store.NewsPosts(conn)
        self.meals = store.CampaignMeals(conn)
        self.donations = store.Donations(conn)
        self.refunds = store.Refunds(conn)
        self.disputes = store.Disputes(conn)
        self.payouts = store.Payouts(conn)
        self.stripe_events = store.StripeEvents(conn)
