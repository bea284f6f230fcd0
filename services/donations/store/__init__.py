"""The donations database: its tables (tables.py) and the repositories the unit of work
builds on its transaction (campaigns.py, donations.py, webhooks.py). The only room with SQL
that writes; views.py holds the read queries of the API and pages. Works on SQLite and
PostgreSQL."""

from .campaigns import CampaignMeals, Campaigns, NewsPosts, campaign_of
from .donations import Disputes, Donations, Payouts, Refunds
from .tables import (
    campaign_meals,
    campaigns,
    disputes,
    donations,
    meal_price_changes,
    metadata,
    news_posts,
    outbox,
    payouts,
    processed,
    refunds,
    stripe_events,
)
from .webhooks import (
    RECEIVED,
    STRIPE_EVENTS_CHANNEL,
    UNREADABLE,
    KeptEvent,
    ReceivedEvent,
    SqliteReceiver,
    StripeEvents,
    received_row,
)

__all__ = [
    "RECEIVED",
    "STRIPE_EVENTS_CHANNEL",
    "UNREADABLE",
    "CampaignMeals",
    "Campaigns",
    "Disputes",
    "Donations",
    "KeptEvent",
    "NewsPosts",
    "Payouts",
    "ReceivedEvent",
    "SqliteReceiver",
    "Refunds",
    "StripeEvents",
    "received_row",
    "campaign_meals",
    "campaign_of",
    "campaigns",
    "disputes",
    "donations",
    "meal_price_changes",
    "metadata",
    "news_posts",
    "outbox",
    "payouts",
    "processed",
    "refunds",
    "stripe_events",
]
