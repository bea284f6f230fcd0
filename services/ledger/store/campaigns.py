"""The campaigns the ledger knows, on the unit of work's transaction: their projection, their
running totals, their meal price periods and the milestones they reached."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from services.shared.db import as_utc, dialect_insert, insert_if_absent
from services.shared.money import Money

from ..domain import Campaign, CampaignTotals, PricePeriod
from .tables import campaign_totals, campaigns, meal_periods, milestones_reached


def _campaign(row: Row[Any]) -> Campaign:
    return Campaign(
        campaign_id=row.campaign_id,
        slug=row.slug,
        title=row.title,
        currency=row.currency,
        meal_price=int(row.meal_price),
        goal_meals=row.goal_meals,
        fee_policy=row.fee_policy,
    )


def _totals(row: Row[Any]) -> CampaignTotals:
    return CampaignTotals(
        currency=row.currency,
        donated=int(row.donated),
        refunded=int(row.refunded),
        donations=row.donations,
        meals_funded=row.meals_funded,
        remainder=int(row.remainder),
        difts_amount=int(row.difts_amount),
        difts_received=row.difts_received,
        dift_meals=row.dift_meals,
    )


class Campaigns:
    """The campaigns repository."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- the projection -------------------------------------------------------------------------

    def get(self, campaign_id: str) -> Campaign | None:
        """The projection of one campaign, or None."""
        statement = select(campaigns).where(campaigns.c.campaign_id == campaign_id)
        row = self.conn.execute(statement).first()
        return _campaign(row) if row is not None else None

    def holder_of(self, slug: str) -> str | None:
        """Which campaign holds `slug`, if any."""
        return self.conn.execute(
            select(campaigns.c.campaign_id).where(campaigns.c.slug == slug)
        ).scalar_one_or_none()

    def add(self, campaign: Campaign) -> None:
        """Write a campaign the ledger has not heard of, with empty totals; a campaign already
        there (even one another transaction wrote meanwhile) is kept as it is."""
        self._write(campaign, overwrite=False)

    def save(self, campaign: Campaign) -> None:
        """Write a campaign's projection over what was there (its fee policy excepted: finance
        staff set it), with empty totals if it had none."""
        self._write(campaign, overwrite=True)

    def _write(self, campaign: Campaign, overwrite: bool) -> None:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "campaign_id": campaign.campaign_id,
            "slug": campaign.slug,
            "title": campaign.title,
            "currency": campaign.currency,
            "meal_price": campaign.meal_price,
            "goal_meals": campaign.goal_meals,
            "updated_at": now,
        }
        statement = dialect_insert(self.conn, campaigns).values(**values)
        if overwrite:
            changes = {key: value for key, value in values.items() if key != "campaign_id"}
            statement = statement.on_conflict_do_update(
                index_elements=["campaign_id"], set_=changes
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=["campaign_id"])
        self.conn.execute(statement)
        totals = {"campaign_id": campaign.campaign_id, "currency": campaign.currency}
        insert_if_absent(self.conn, campaign_totals, {**totals, "updated_at": now}, "campaign_id")

    def set_meal_price(self, campaign_id: str, meal_price: int) -> None:
        """Record the meal price in force now."""
        self._change(campaign_id, meal_price=meal_price)

    def set_fee_policy(self, campaign_id: str, policy: str) -> None:
        """Set who bears the fees of the campaign's gifts booked from now on."""
        self._change(campaign_id, fee_policy=policy)

    def _change(self, campaign_id: str, **values: Any) -> None:
        self.conn.execute(
            update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(**values)
        )

    # --- the running totals -----------------------------------------------------------------------

    def lock_totals(self, campaign_id: str) -> CampaignTotals | None:
        """A campaign's totals (None for a campaign the ledger does not know), locked until the
        transaction ends so concurrent consumers of the same campaign add up one after the
        other (SQLite's BEGIN IMMEDIATE already serialises)."""
        row = self.conn.execute(
            select(campaign_totals)
            .where(campaign_totals.c.campaign_id == campaign_id)
            .with_for_update()
        ).first()
        return _totals(row) if row is not None else None

    def save_totals(self, campaign_id: str, totals: CampaignTotals) -> None:
        """Overwrite a campaign's totals (the caller holds their lock)."""
        self.conn.execute(
            update(campaign_totals)
            .where(campaign_totals.c.campaign_id == campaign_id)
            # The totals' fields are the table's columns of the same names.
            .values(**asdict(totals), updated_at=datetime.now(UTC))
        )

    # --- meal prices and the gifts counted at each --------------------------------------------

    def periods(self, campaign_id: str) -> list[PricePeriod]:
        """A campaign's price periods, oldest first."""
        rows = self.conn.execute(
            select(meal_periods, campaigns.c.currency)
            .join(campaigns, campaigns.c.campaign_id == meal_periods.c.campaign_id)
            .where(meal_periods.c.campaign_id == campaign_id)
            .order_by(meal_periods.c.starts_at)
        ).all()
        return [
            PricePeriod(
                as_utc(row.starts_at),
                Money(int(row.meal_price), row.currency),
                Money(int(row.eligible), row.currency),
            )
            for row in rows
        ]

    def start_period(self, campaign_id: str, starts_at: datetime, meal_price: int) -> None:
        """Start a price period (or set the price of the one starting at the same moment)."""
        self.conn.execute(
            dialect_insert(self.conn, meal_periods)
            .values(
                campaign_id=campaign_id,
                starts_at=as_utc(starts_at),
                meal_price=meal_price,
                eligible=0,
            )
            .on_conflict_do_update(
                index_elements=["campaign_id", "starts_at"], set_={"meal_price": meal_price}
            )
        )

    def add_eligible(self, campaign_id: str, starts_at: datetime, change: Money) -> None:
        """Add `change` (or take it, when negative) to the eligible amount of one period."""
        self.conn.execute(
            update(meal_periods)
            .where(
                meal_periods.c.campaign_id == campaign_id,
                meal_periods.c.starts_at == as_utc(starts_at),
            )
            .values(eligible=meal_periods.c.eligible + change.amount)
        )

    # --- milestones ---------------------------------------------------------------------------

    def claim_milestones(self, campaign_id: str, names: Sequence[str], when: datetime) -> set[str]:
        """Record milestones as reached; return those reached for the first time now."""
        if not names:
            return set()
        rows = [{"campaign_id": campaign_id, "milestone": n, "reached_at": when} for n in names]
        claimed = self.conn.execute(
            dialect_insert(self.conn, milestones_reached)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["campaign_id", "milestone"])
            .returning(milestones_reached.c.milestone)
        ).scalars()
        return set(claimed)
