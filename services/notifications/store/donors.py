"""The donors of each campaign and what the service knows of the campaigns, on the unit of
work's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, or_, select, tuple_, update

from services.shared.db import as_utc, dialect_insert, is_postgres

from ..domain import CampaignFacts, Consent, Donor, ImpactState, Reached
from .tables import campaigns, donors, unsubscribed_everywhere


def _utc(moment: datetime | None) -> datetime | None:
    return as_utc(moment) if moment is not None else None


def address(email: str) -> str:
    """Addresses are kept lower-cased: one person giving twice with other capitals is one."""
    return email.strip().lower()


# --- donors ---------------------------------------------------------------------------------

_DONOR_COLUMNS = (
    donors.c.campaign_id,
    donors.c.email,
    donors.c.name,
    donors.c.locale,
    donors.c.email_ref,
    donors.c.consent_at,
    donors.c.consent_source,
    donors.c.unsubscribed_at,
    donors.c.impact_told_meals,
    donors.c.impact_last_at,
    donors.c.impact_held,
    unsubscribed_everywhere.c.unsubscribed_at.label("everywhere_at"),
)
_WITH_EVERYWHERE = donors.outerjoin(
    unsubscribed_everywhere, unsubscribed_everywhere.c.email_ref == donors.c.email_ref
)


def _donor(row: Any) -> Donor:
    held = json.loads(row.impact_held) if row.impact_held else None
    return Donor(
        campaign_id=row.campaign_id,
        email=row.email,
        name=row.name,
        locale=row.locale,
        email_ref=row.email_ref,
        consent=Consent(_utc(row.consent_at), row.consent_source, _utc(row.unsubscribed_at)),
        impact=ImpactState(
            told_meals=int(row.impact_told_meals or 0),
            last_at=_utc(row.impact_last_at),
            held=Reached.from_dict(held) if held else None,
        ),
        everywhere_at=_utc(row.everywhere_at),
    )


class Donors:
    """The donors of each campaign: how to write to them, their consent, their impact."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, campaign_id: str, email: str, lock: bool = False) -> Donor | None:
        """One campaign's donor, locked for the transaction when asked."""
        query = (
            select(*_DONOR_COLUMNS)
            .select_from(_WITH_EVERYWHERE)
            .where(donors.c.campaign_id == campaign_id, donors.c.email == address(email))
        )
        if lock and is_postgres(self.conn):
            query = query.with_for_update(of=donors)
        row = self.conn.execute(query).first()
        return _donor(row) if row is not None else None

    def save(self, donor: Donor, now: datetime) -> None:
        """Write a donor's name, locale, consent and pseudonym (a new donor is added)."""
        values = {
            "name": donor.name,
            "locale": donor.locale,
            "updates_opt_in": donor.consent.consent_at is not None,
            "consent_at": donor.consent.consent_at,
            "consent_source": donor.consent.source,
            "unsubscribed_at": donor.consent.unsubscribed_at,
            "email_ref": donor.email_ref,
            "updated_at": now,
        }
        key = {"campaign_id": donor.campaign_id, "email": address(donor.email)}
        added = self.conn.execute(
            dialect_insert(self.conn, donors)
            .values(**key, **values, created_at=now)
            .on_conflict_do_nothing(index_elements=["campaign_id", "email"])
            .returning(donors.c.id)
        ).first()
        if added is None:
            self.conn.execute(
                update(donors)
                .where(donors.c.campaign_id == key["campaign_id"], donors.c.email == key["email"])
                .values(**values)
            )

    def of_campaign(self, campaign_id: str) -> list[Donor]:
        """Every donor of a campaign who ever consented to news, oldest first."""
        rows = self.conn.execute(
            select(*_DONOR_COLUMNS)
            .select_from(_WITH_EVERYWHERE)
            .where(donors.c.campaign_id == campaign_id, donors.c.consent_at.is_not(None))
            .order_by(donors.c.id)
        )
        return [_donor(row) for row in rows]

    def wanting_news(self, recipients: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Of these (campaign, address) pairs, the ones whose donor wants news now: the
        consent of a sender's whole batch in one query."""
        asked: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for campaign_id, email in recipients:
            asked.setdefault((campaign_id, address(email)), set()).add((campaign_id, email))
        if not asked:
            return set()
        rows = self.conn.execute(
            select(*_DONOR_COLUMNS)
            .select_from(_WITH_EVERYWHERE)
            .where(tuple_(donors.c.campaign_id, donors.c.email).in_(sorted(asked)))
        )
        wanting: set[tuple[str, str]] = set()
        for row in rows:
            if _donor(row).wants_news:
                wanting |= asked.get((row.campaign_id, row.email), set())
        return wanting

    def set_email_ref(self, email: str, email_ref: str) -> None:
        """Give an address's donor rows their pseudonym, where they have none yet."""
        self.conn.execute(
            update(donors)
            .where(donors.c.email == address(email), donors.c.email_ref.is_(None))
            .values(email_ref=email_ref)
        )

    def save_impact(
        self, campaign_id: str, email: str, state: ImpactState, due_at: datetime | None
    ) -> None:
        """Keep what a donor was told of a campaign's milestones, and what waits until when."""
        self.conn.execute(
            update(donors)
            .where(donors.c.campaign_id == campaign_id, donors.c.email == address(email))
            .values(
                impact_told_meals=state.told_meals,
                impact_last_at=state.last_at,
                impact_held=json.dumps(state.held.to_dict()) if state.held else None,
                impact_due_at=due_at,
            )
        )

    def with_impact_due(self, now: datetime, limit: int = 200) -> list[Donor]:
        """Donors whose held milestone is due, locked (other workers skip them) on PostgreSQL."""
        query = (
            select(*_DONOR_COLUMNS)
            .select_from(_WITH_EVERYWHERE)
            .where(donors.c.impact_due_at <= now)
            .order_by(donors.c.impact_due_at)
            .limit(limit)
        )
        if is_postgres(self.conn):
            query = query.with_for_update(of=donors, skip_locked=True)
        return [_donor(row) for row in self.conn.execute(query)]

    def unsubscribe(self, email_ref: str, campaign_id: str | None, now: datetime) -> int:
        """The donor of `email_ref` stops one campaign's news, or every campaign's (None),
        including campaigns they give to later without consenting again. Returns how many
        campaigns it changed."""
        query = update(donors).where(
            donors.c.email_ref == email_ref, donors.c.unsubscribed_at.is_(None)
        )
        if campaign_id is not None:
            query = query.where(donors.c.campaign_id == campaign_id)
        changed = self.conn.execute(query.values(unsubscribed_at=now, updated_at=now)).rowcount
        if campaign_id is None:
            self.conn.execute(
                dialect_insert(self.conn, unsubscribed_everywhere)
                .values(email_ref=email_ref, unsubscribed_at=now)
                .on_conflict_do_update(index_elements=["email_ref"], set_={"unsubscribed_at": now})
            )
        return int(changed or 0)

    def erase(self, email: str, email_ref: str) -> int:
        """Remove every donor row of an address (a GDPR erasure); returns how many."""
        removed = self.conn.execute(
            donors.delete().where(
                or_(donors.c.email == address(email), donors.c.email_ref == email_ref)
            )
        ).rowcount
        return int(removed or 0)


# --- campaigns ------------------------------------------------------------------------------


class Campaigns:
    """What the service knows of each campaign, for the words of its emails."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record(self, campaign: CampaignFacts) -> None:
        """Insert or refresh a campaign's facts."""
        statement = dialect_insert(self.conn, campaigns).values(
            campaign_id=campaign.campaign_id,
            slug=campaign.slug,
            title=campaign.title,
            cause=campaign.cause,
            updated_at=datetime.now(UTC),
        )
        self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["campaign_id"],
                set_={
                    "slug": statement.excluded.slug,
                    "title": statement.excluded.title,
                    "cause": statement.excluded.cause,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )

    def get(self, campaign_id: str) -> CampaignFacts | None:
        """A campaign's facts, if an event told us about it."""
        row = self.conn.execute(
            select(campaigns).where(campaigns.c.campaign_id == campaign_id)
        ).first()
        if row is None:
            return None
        return CampaignFacts(row.campaign_id, row.slug, row.title, row.cause)
