"""The gifts the ledger booked, on the unit of work's transaction: what their later refunds
and disputes need to book their part, and the price period each counts in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from services.shared.db import as_utc
from services.shared.money import Money

from ..domain import BookedGift, FeePolicy, GiftBooking
from .tables import gifts


def _gift(row: Row[Any]) -> BookedGift:
    currency = row.currency

    def money(minor: int) -> Money:
        return Money(int(minor), currency)

    return BookedGift(
        donation_id=row.donation_id,
        campaign_id=row.campaign_id,
        booking=GiftBooking(
            amount=money(row.amount),
            fee_covered=money(row.fee_covered),
            fee=money(row.fee) if row.fee is not None else None,
            policy=FeePolicy(row.fee_policy),
        ),
        charge_id=row.charge_id,
        effective_at=as_utc(row.effective_at),
        period_starts_at=as_utc(row.period_starts_at),
        fund_balance=money(row.fund_balance),
        returned=money(row.returned),
        fee_back_to_fund=money(row.fee_back_to_fund),
        meals=row.meals,
    )


class Gifts:
    """The booked gifts repository."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, donation_id: str, lock: bool = False) -> BookedGift | None:
        """A booked gift, locked for update when asked."""
        statement = select(gifts).where(gifts.c.donation_id == donation_id)
        row = self.conn.execute(statement.with_for_update() if lock else statement).first()
        return _gift(row) if row is not None else None

    def by_charge(self, charge_id: str) -> BookedGift | None:
        """The booked gift a Stripe charge paid, if any."""
        row = self.conn.execute(select(gifts).where(gifts.c.charge_id == charge_id)).first()
        return _gift(row) if row is not None else None

    def add(self, gift: BookedGift) -> None:
        """Remember a gift just booked."""
        booking = gift.booking
        self.conn.execute(
            gifts.insert().values(
                donation_id=gift.donation_id,
                campaign_id=gift.campaign_id,
                currency=gift.currency,
                amount=booking.amount.amount,
                fee_covered=booking.fee_covered.amount,
                fee=booking.fee.amount if booking.fee is not None else None,
                fee_policy=booking.policy.value,
                charge_id=gift.charge_id,
                effective_at=as_utc(gift.effective_at),
                period_starts_at=as_utc(gift.period_starts_at),
                returned=gift.returned.amount,
                fee_back_to_fund=gift.fee_back_to_fund.amount,
                fund_balance=gift.fund_balance.amount,
                meals=gift.meals,
            )
        )

    def save(self, gift: BookedGift) -> None:
        """Remember what a refund, a refund's failure or a lost dispute changed of a gift."""
        self.conn.execute(
            update(gifts)
            .where(gifts.c.donation_id == gift.donation_id)
            .values(
                returned=gift.returned.amount,
                fund_balance=gift.fund_balance.amount,
                fee_back_to_fund=gift.fee_back_to_fund.amount,
            )
        )

    def move_to_period(
        self, campaign_id: str, boundary: datetime, old_start: datetime
    ) -> Money | None:
        """After a price period starting at `boundary` is inserted inside the one starting at
        `old_start`, count the gifts dated from `boundary` on in the new one; return what they
        bring to it (their eligible amounts), or None if no gift moved."""
        moved = self.conn.execute(
            select(gifts.c.donation_id, gifts.c.fund_balance, gifts.c.currency).where(
                gifts.c.campaign_id == campaign_id,
                gifts.c.period_starts_at == as_utc(old_start),
                gifts.c.effective_at >= as_utc(boundary),
            )
        ).all()
        if not moved:
            return None
        self.conn.execute(
            update(gifts)
            .where(gifts.c.donation_id.in_([row.donation_id for row in moved]))
            .values(period_starts_at=as_utc(boundary))
        )
        return Money(sum(max(0, int(row.fund_balance)) for row in moved), moved[0].currency)
