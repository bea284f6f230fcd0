"""The ledger service's unit of work: one transaction on its database, with the repositories
of campaigns (their totals, price periods and milestones), gifts and the journal, its outbox
and the ids of the events it processed (services/shared/unit_of_work.py)."""

from __future__ import annotations

from sqlalchemy import Engine

from services.shared.unit_of_work import SqlUnitOfWork

from . import store


class LedgerUnitOfWork(SqlUnitOfWork):
    """One transaction on the ledger database."""

    campaigns: store.Campaigns
    gifts: store.Gifts
    journal: store.Journal

    repositories = {"campaigns": store.Campaigns, "gifts": store.Gifts, "journal": store.Journal}

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, store.outbox, store.processed)
