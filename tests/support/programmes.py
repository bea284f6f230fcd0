"""Company difts as tests seed them, through the handlers (each step in a unit of work of its
own): three live campaigns, a sponsor, a programme of 20 EUR difts funded by a bank transfer
and open, and what the outbox queued about a programme."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from services.donations import store
from services.donations.domain.programmes import FallbackRule, Programme
from services.donations.handlers import programmes
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.money import Money
from tests.support.donations import publish_campaign

CAUSES = ("network", "bagnolet", "bruz")


def seed_causes(engine: Engine, prefix: str = "") -> list[str]:
    """Three live campaigns (13.50 EUR a meal); their slugs, in shortlist order."""
    prefix = prefix or uuid.uuid4().hex[:6]
    slugs = [f"{prefix}-{cause}" for cause in CAUSES]
    for slug in slugs:
        publish_campaign(
            engine,
            slug=slug,
            meal_price=Money(1350, "EUR"),
            title=f"Petites Cantines {slug}",
            cause="Les Petites Cantines",
            summary="Neighbours cook together.",
        )
    return slugs


def register_sponsor(engine: Engine) -> tuple[str, str]:
    """A sponsor; its id and its access token."""
    with DonationsUnitOfWork(engine) as uow:
        sponsor, token = programmes.register_sponsor(
            programmes.RegisterSponsor(
                legal_name="Acme SAS",
                legal_form="SAS",
                siren="732829320",
                postal_address="1 rue de la Paix, 75002 Paris",
                contact_email="csr@acme.test",
                brand_name="Acme",
            ),
            uow,
        )
    assert token is not None
    return sponsor.id, token


def draft_programme(
    engine: Engine,
    sponsor_id: str,
    shortlist: list[str],
    *,
    dift_value: int | None = 2000,
    fallback_rule: FallbackRule = FallbackRule.SPLIT_EVENLY,
    fallback_campaign: str | None = None,
    opens_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Programme:
    """A draft programme of `sponsor_id` over the shortlisted slugs."""
    now = datetime.now(UTC)
    with DonationsUnitOfWork(engine) as uow:
        return programmes.create_programme(
            programmes.CreateProgramme(
                sponsor_id=sponsor_id,
                name="Year-end difts",
                occasion="End of year",
                message_markdown="Thank you **for this year**.",
                currency="EUR",
                dift_value=dift_value,
                shortlist=tuple(shortlist),
                opens_at=opens_at or now - timedelta(minutes=1),
                expires_at=expires_at or now + timedelta(days=30),
                fallback_rule=fallback_rule,
                fallback_campaign=fallback_campaign,
            ),
            uow,
        )


def fund_by_transfer(engine: Engine, programme_id: str, amount: int, reference: str = "") -> Any:
    """Finance staff record a bank transfer; (funding, receipt, fresh)."""
    with DonationsUnitOfWork(engine) as uow:
        return programmes.record_bank_transfer(
            programmes.RecordBankTransfer(
                programme_id,
                Money(amount, "EUR"),
                date.today(),
                reference or f"VIR-{uuid.uuid4().hex[:8]}",
            ),
            uow,
        )


def open_programme(engine: Engine, programme_id: str) -> None:
    """Open the funded programmes whose date has come (the worker's tick)."""
    with DonationsUnitOfWork(engine) as uow:
        programmes.open_due_programmes(uow)
        programme = uow.programmes.get(programme_id)
        assert programme is not None and programme.status.value == "open", programme


def funded_open_programme(
    engine: Engine, budget: int = 10_000, **options: Any
) -> tuple[Programme, str, list[str]]:
    """A programme funded with `budget` and open; (programme, sponsor token, shortlist)."""
    shortlist = seed_causes(engine)
    sponsor_id, token = register_sponsor(engine)
    if options.get("fallback_rule") is FallbackRule.ONE_CAMPAIGN:
        options.setdefault("fallback_campaign", shortlist[2])
    draft = draft_programme(engine, sponsor_id, shortlist, **options)
    fund_by_transfer(engine, draft.id, budget)
    open_programme(engine, draft.id)
    with DonationsUnitOfWork(engine) as uow:
        programme = uow.programmes.get(draft.id)
    assert programme is not None
    return programme, token, shortlist


def queued(engine: Engine, programme_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The (type, data) of every event the outbox holds keyed by this programme, in order."""
    outbox = store.outbox
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.event_type, outbox.c.payload, outbox.c.topic)
            .where(outbox.c.key == programme_id)
            .order_by(outbox.c.seq)
        ).all()
    assert all(row.topic == "programmes.events" for row in rows)
    return [(row.event_type, json.loads(row.payload)["data"]) for row in rows]
