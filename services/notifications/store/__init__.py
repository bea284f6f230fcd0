"""The notifications database: its tables (tables.py) and the repositories the unit of work
builds on its transaction (donors.py, deliveries.py). The only rooms with SQL that writes;
views.py holds the read queries of the API. Works on SQLite and PostgreSQL."""

from .deliveries import Deliveries, DueDelivery, NewDelivery
from .donors import Campaigns, Donors
from .tables import (
    DELIVERIES_CHANNEL,
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
    donors,
    metadata,
    processed,
    unsubscribed_everywhere,
)

__all__ = [
    "DELIVERIES_CHANNEL",
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
    "Donors",
    "DueDelivery",
    "NewDelivery",
    "campaigns",
    "deliveries",
    "donors",
    "metadata",
    "processed",
    "unsubscribed_everywhere",
]
