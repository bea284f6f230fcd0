"""What the donations service keeps of other services' events for its pages: the ledger's
count of meals funded per campaign (DESIGN gives counting meals to the ledger)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.shared.envelope import CloudEvent

from . import UnitOfWork


def record_meals_funded(event: CloudEvent, uow: UnitOfWork) -> None:
    """Keep the ledger's count of meals funded for the campaign page (events of a campaign
    arrive in order, keyed by campaign id, so the latest count stands)."""
    data = event.data
    uow.meals.record(data["campaign_id"], data["meals_funded"], datetime.now(UTC))
