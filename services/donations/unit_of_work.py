"""The donations service's unit of work: one transaction on its database, with its outbox and
the ids of the events it processed (services/shared/unit_of_work.py)."""

from __future__ import annotations

from sqlalchemy import Engine

from services.shared.unit_of_work import SqlUnitOfWork

from . import store


class DonationsUnitOfWork(SqlUnitOfWork):
    """One transaction on the donations database."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, store.outbox, store.processed)
