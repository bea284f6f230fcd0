"""The notifications service's unit of work: one transaction on its database, with the
repositories of donors, campaigns, company difts and deliveries, its outbox and the ids of the
events it processed (services/shared/unit_of_work.py). The service publishes one kind of
event, a dift's invitation or reminder sent or bounced (difts.notification.dift_invitation_sent.v1
on notifications.events), in the same transaction as the delivery's status change; the
worker's relay publishes it."""

from __future__ import annotations

from sqlalchemy import Engine

from services.shared.unit_of_work import SqlUnitOfWork

from . import store


class NotificationsUnitOfWork(SqlUnitOfWork):
    """One transaction on the notifications database."""

    donors: store.Donors
    campaigns: store.Campaigns
    difts: store.Difts
    deliveries: store.Deliveries

    repositories = {
        "donors": store.Donors,
        "campaigns": store.Campaigns,
        "difts": store.Difts,
        "deliveries": store.Deliveries,
    }

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, store.outbox, store.processed)

    def commit(self) -> None:
        """Commit what is done so far and stay open: the next statement begins the next
        transaction (on SQLite it takes the write lock then, not now). The sender records
        each of a batch's outcomes so, one commit each, on one connection."""
        self.connection.commit()
