"""The ledger's count of meals funded, kept for the campaign pages: the latest count stands."""

from __future__ import annotations

from services.donations.handlers.projections import record_meals_funded
from services.shared.envelope import new_event
from services.shared.events import MEALS_FUNDED
from tests.unit.donations.fakes import FakeUnitOfWork


def test_the_latest_count_of_the_ledger_stands() -> None:
    uow = FakeUnitOfWork()
    for meals in (5, 7):
        event = new_event(
            MEALS_FUNDED, "difts/ledger", {"campaign_id": "c-1", "meals_funded": meals}
        )
        record_meals_funded(event, uow)
    assert uow.meals.rows == {"c-1": 7}
