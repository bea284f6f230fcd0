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

# The columns of a gift's state that are money, in the gift's currency.
_MONEY = ("fund_balance", "returned", "fee_back_to_fund")


def _gift(row: Row[Any]) -> BookedGift:
    def money(minor: int) -> Money:
        return Money(int(minor), row.currency)

    booking = GiftBooking(
        amount=money(row.amount),
        fee_covered=money(row.fee_covered),
        fee=money(row.fee) if row.fee is not None else None,
        policy=FeePolicy(row.fee_policy),
    )
    return BookedGift(
        row.donation_id,
        row.campaign_id,
        booking,
        row.charge_id,
        as_utc(row.effective_at),
        as_utc(row.period_starts_at),
        meals=row.meals,
        **{column: money(row._mapping[column]) for column in _MONEY},
    )


def gift_row(gift: BookedGift) -> dict[str, Any]:
    """The row of a gift just booked."""
    booking = gift.booking
    return {
        "donation_id": gift.donation_id,
        "campaign_id": gift.campaign_id,
        "currency": gift.currency,
        "amount": booking.amount.amount,
        "fee_covered": booking.fee_covered.amount,
        "fee": booking.fee.amount if booking.fee is not None else None,
        "fee_policy": booking.policy.value,
        "charge_id": gift.charge_id,
        "effective_at": as_utc(gift.effective_at),
        "period_starts_at": as_utc(gift.period_starts_at),
        "returned": gift.returned.amount,
        "fee_back_to_fund": gift.fee_back_to_fund.amount,
        "fund_balance": gift.fund_balance.amount,
        "meals": gift.meals,
    }


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
        self.conn.execute(gifts.insert().values(**gift_row(gift)))

    def save(self, gift: BookedGift) -> None:
        """Remember what a refund, a refund's failure or a lost dispute changed of a gift."""
        changed = {column: getattr(gift, column).amount for column in _MONEY}
        self.conn.execute(
            update(gifts).where(gifts.c.donation_id == gift.donation_id).values(**changed)
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
