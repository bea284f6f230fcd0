"""The events the benchmarks feed the pipelines."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.shared.envelope import CloudEvent, new_event
from services.shared.events import DONATION_SUCCEEDED


def donation_events(count: int, campaigns: int = 12) -> list[tuple[str, CloudEvent]]:
    """`count` succeeded donations of 27.00 EUR spread over `campaigns` campaigns, each with
    its campaign id as the key."""
    ids = [str(uuid.uuid4()) for _ in range(campaigns)]
    events = []
    for n in range(count):
        campaign_id = ids[n % campaigns]
        data = {
            "donation_id": str(uuid.uuid4()),
            "campaign_id": campaign_id,
            "campaign_slug": f"bench-{campaign_id[:8]}",
            "campaign_title": "Bench canteens",
            "amount": 2700,
            "currency": "EUR",
            "meal_price": 1350,
            "donor": {"email": f"donor{n}@example.org", "name": "Donor", "locale": "en"},
            "updates_opt_in": False,
            "succeeded_at": datetime.now(UTC).isoformat(),
        }
        events.append((campaign_id, new_event(DONATION_SUCCEEDED, "bench", data)))
    return events
