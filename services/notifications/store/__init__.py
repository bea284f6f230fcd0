"""The notifications database: its tables (tables.py) and the repositories the unit of work
builds on its transaction (donors.py, deliveries.py). The only rooms with SQL that writes;
views.py holds the read queries of the API. Works on SQLite and PostgreSQL."""

from .deliveries import Deliveries, DueDelivery, NewDelivery
from .difts import Difts
from .donors import Campaigns, Donors
from .tables import (
    BOUNCED,
    DELIVERIES_CHANNEL,
    DIFT_CONFIRMATION,
    DIFT_INVITATION,
    DIFT_REMINDER,
    FAILED,
    IMPACT,
    KINDS,
    NEWS,
    PENDING,
    RECEIPT,
    REFUND,
    SENT,
    SKIPPED,
    STATUSES,
    campaigns,
    deliveries,
    difts,
    donors,
    metadata,
    outbox,
    processed,
    unsubscribed_everywhere,
)

__all__ = [
    "BOUNCED",
    "DELIVERIES_CHANNEL",
    "DIFT_CONFIRMATION",
    "DIFT_INVITATION",
    "DIFT_REMINDER",
    "FAILED",
    "IMPACT",
    "KINDS",
    "NEWS",
    "PENDING",
    "RECEIPT",
    "REFUND",
    "SENT",
    "SKIPPED",
    "STATUSES",
    "Campaigns",
    "Deliveries",
    "Difts",
    "Donors",
    "DueDelivery",
    "NewDelivery",
    "campaigns",
    "deliveries",
    "difts",
    "donors",
    "metadata",
    "outbox",
    "processed",
    "unsubscribed_everywhere",
]
