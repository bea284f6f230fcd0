"""The programmes of difts the ledger books, on the unit of work's transaction: each one's fund
(its running summary, locked while a booking changes it), the fundings, difts and credits
back booked on it (each once), and each dift's allocations to campaigns with the price period
they count in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from services.shared.db import as_utc, insert_if_absent
from services.shared.money import Money

from ..domain import DiftAllocation, Movement, ProgrammeFund, ProgrammeMovement
from .tables import dift_allocations, programme_movements, programmes


def _fund(row: Row[Any]) -> ProgrammeFund:
    return ProgrammeFund(
        programme_id=row.programme_id,
        sponsor_id=row.sponsor_id,
        currency=row.currency,
        funded=int(row.funded),
        fees=int(row.fees),
        directed=int(row.directed),
        expired_given=int(row.expired_given),
        credited_back=int(row.credited_back),
        difts_directed=row.difts_directed,
        difts_expired=row.difts_expired,
    )


class Programmes:
    """The programmes repository."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lock(self, programme_id: str) -> ProgrammeFund | None:
        """A programme's fund (None for one never funded), locked until the transaction ends
        so two bookings on it check its balance one after the other."""
        row = self.conn.execute(
            select(programmes).where(programmes.c.programme_id == programme_id).with_for_update()
        ).first()
        return _fund(row) if row is not None else None

    def add(self, fund: ProgrammeFund) -> None:
        """Write the fund of a programme first funded now (kept if another wrote it)."""
        insert_if_absent(
            self.conn, programmes, {**asdict(fund), "updated_at": datetime.now(UTC)}, "programme_id"
        )

    def save(self, fund: ProgrammeFund) -> None:
        """Overwrite a programme's fund (the caller holds its lock)."""
        changes = {key: value for key, value in asdict(fund).items() if key != "programme_id"}
        self.conn.execute(
            update(programmes)
            .where(programmes.c.programme_id == fund.programme_id)
            .values(**changes, updated_at=datetime.now(UTC))
        )

    # --- each funding, dift and credit back once -------------------------------------------------

    def booked(self, movement: Movement, reference: str) -> bool:
        """Whether this funding, dift or credit back is booked already."""
        found = self.conn.execute(
            select(programme_movements.c.reference).where(
                programme_movements.c.movement == movement.value,
                programme_movements.c.reference == reference,
            )
        ).first()
        return found is not None

    def record(self, moved: ProgrammeMovement) -> None:
        """Remember a funding, dift or credit back booked (a second one of the same id is
        refused by the table's key)."""
        self.conn.execute(
            programme_movements.insert().values(
                movement=moved.movement.value,
                reference=moved.reference,
                programme_id=moved.programme_id,
                kind=moved.kind,
                currency=moved.amount.currency,
                amount=moved.amount.amount,
                at=as_utc(moved.at),
            )
        )

    # --- the allocations of booked difts ----------------------------------------------------------

    def add_allocations(self, allocations: Sequence[DiftAllocation]) -> None:
        """Remember what a booked dift gave each campaign."""
        if not allocations:
            return
        self.conn.execute(
            dift_allocations.insert(),
            [
                {
                    "dift_id": part.dift_id,
                    "campaign_id": part.campaign_id,
                    "programme_id": part.programme_id,
                    "outcome": part.outcome.value,
                    "currency": part.amount.currency,
                    "amount": part.amount.amount,
                    "meals": part.meals,
                    "effective_at": as_utc(part.effective_at),
                    "period_starts_at": as_utc(part.period_starts_at),
                }
                for part in allocations
            ],
        )

    def move_to_period(
        self, campaign_id: str, boundary: datetime, old_start: datetime
    ) -> Money | None:
        """After a price period starting at `boundary` is inserted inside the one starting at
        `old_start`, count the difts' allocations dated from `boundary` on in the new one (as
        gifts are); return what they bring to it, or None if none moved."""
        moved = self.conn.execute(
            select(
                dift_allocations.c.dift_id,
                dift_allocations.c.amount,
                dift_allocations.c.currency,
            ).where(
                dift_allocations.c.campaign_id == campaign_id,
                dift_allocations.c.period_starts_at == as_utc(old_start),
                dift_allocations.c.effective_at >= as_utc(boundary),
            )
        ).all()
        if not moved:
            return None
        self.conn.execute(
            update(dift_allocations)
            .where(
                dift_allocations.c.campaign_id == campaign_id,
                dift_allocations.c.dift_id.in_([row.dift_id for row in moved]),
            )
            .values(period_starts_at=as_utc(boundary))
        )
        return Money(sum(int(row.amount) for row in moved), moved[0].currency)
