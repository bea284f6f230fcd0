"""Reads for the HTTP API and the reports, straight from the tables: no domain objects on the
way out. Amounts are signed minor units in the journal (debit positive); reports show funds
and income as positive balances where finance staff expect them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select

from services.shared.db import as_utc

from .domain import (
    DISPUTE_FEES,
    DISPUTED_FUNDS,
    DONOR_COVERED_FEES,
    PROCESSING_FEES,
    STRIPE_CLEARING,
    EntryKind,
    campaign_fund,
    programme_fund,
)
from .domain import account_name as domain_account_name
from .store import (
    campaign_totals,
    campaigns,
    dift_allocations,
    journal_entries,
    journal_lines,
    payout_items,
    programmes,
)


def campaign_summary(conn: Connection, slug: str) -> dict[str, Any] | None:
    """A campaign's money and meals in minor units, or None for a slug the ledger does not
    know: donors' gifts (donated, refunded, donations, gift_meals) and difts (difts_amount,
    difts_received, dift_meals) apart; meals_funded and remainder are the campaign's counter
    (both together)."""
    row = conn.execute(
        select(
            campaigns.c.slug.label("campaign"),
            campaigns.c.campaign_id,
            campaigns.c.title,
            campaign_totals.c.currency,
            campaigns.c.meal_price,
            campaigns.c.goal_meals,
            campaign_totals.c.donated,
            campaign_totals.c.refunded,
            campaign_totals.c.donations,
            campaign_totals.c.meals_funded,
            campaign_totals.c.remainder,
            campaign_totals.c.difts_amount,
            campaign_totals.c.difts_received,
            campaign_totals.c.dift_meals,
        )
        .join(campaign_totals, campaign_totals.c.campaign_id == campaigns.c.campaign_id)
        .where(campaigns.c.slug == slug)
    ).first()
    if row is None:
        return None
    summary = dict(row._mapping)
    # The counter's meals the difts did not complete (domain.CampaignTotals.gift_meals).
    summary["gift_meals"] = max(0, summary["meals_funded"] - summary["dift_meals"])
    return summary


def programme_balance(conn: Connection, programme_id: str) -> dict[str, Any] | None:
    """A programme's fund in minor units, or None for a programme never funded: funded in
    all, directed by recipients, given by the fallback rule of expired difts, credited back,
    the balance (funded - directed - expired_given - credited_back) and the fund's account in
    the journal (the same figure); how many difts were directed and expired; and what each
    campaign received from it (money, meals counted when booked, difts)."""
    row = conn.execute(select(programmes).where(programmes.c.programme_id == programme_id)).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found.pop("updated_at")
    for key in ("funded", "fees", "directed", "expired_given", "credited_back"):
        found[key] = int(found[key])
    found["balance"] = (
        found["funded"] - found["directed"] - found["expired_given"] - found["credited_back"]
    )
    account = programme_fund(programme_id)
    in_journal = conn.execute(
        select(func.coalesce(func.sum(journal_lines.c.amount), 0)).where(
            journal_lines.c.account == account
        )
    ).scalar_one()
    found["fund_balance"] = -int(in_journal)
    parts = conn.execute(
        select(
            dift_allocations.c.campaign_id,
            campaigns.c.slug.label("campaign_slug"),
            func.sum(dift_allocations.c.amount).label("amount"),
            func.sum(dift_allocations.c.meals).label("meals"),
            func.count().label("difts"),
        )
        .join(campaigns, campaigns.c.campaign_id == dift_allocations.c.campaign_id)
        .where(dift_allocations.c.programme_id == programme_id)
        .group_by(dift_allocations.c.campaign_id, campaigns.c.slug)
        .order_by(dift_allocations.c.campaign_id)
    )
    found["campaigns"] = [
        {
            "campaign_id": part.campaign_id,
            "campaign_slug": part.campaign_slug,
            "amount": int(part.amount),
            "meals": int(part.meals),
            "difts": int(part.difts),
        }
        for part in parts
    ]
    return found


def _campaign_line_sum(conn: Connection, campaign_id: str, account: str, *kinds: str) -> int:
    """The signed sum of one account's lines on a campaign's entries (of some kinds)."""
    statement = (
        select(func.coalesce(func.sum(journal_lines.c.amount), 0))
        .join(journal_entries, journal_entries.c.id == journal_lines.c.entry_id)
        .where(journal_entries.c.campaign_id == campaign_id, journal_lines.c.account == account)
    )
    if kinds:
        statement = statement.where(journal_entries.c.kind.in_(kinds))
    return int(conn.execute(statement).scalar_one())


def campaign_finance_summary(conn: Connection, slug: str) -> dict[str, Any] | None:
    """The public summary plus what finance staff need: Stripe's fees, the donors' cover,
    net received, disputes (open and lost), the fund's balance and what was paid out."""
    summary = campaign_summary(conn, slug)
    if summary is None:
        return None
    campaign_id = summary["campaign_id"]
    fund = campaign_fund(campaign_id)
    fees = _campaign_line_sum(conn, campaign_id, PROCESSING_FEES)
    clearing_in = _campaign_line_sum(conn, campaign_id, STRIPE_CLEARING)
    paid_out = int(
        conn.execute(
            select(func.coalesce(func.sum(journal_lines.c.amount), 0))
            .join(journal_entries, journal_entries.c.id == journal_lines.c.entry_id)
            .join(
                payout_items,
                payout_items.c.balance_transaction_id == journal_entries.c.balance_transaction_id,
            )
            .where(
                journal_entries.c.campaign_id == campaign_id,
                journal_lines.c.account == STRIPE_CLEARING,
            )
        ).scalar_one()
    )
    policy = conn.execute(
        select(campaigns.c.fee_policy).where(campaigns.c.campaign_id == campaign_id)
    ).scalar_one()
    return {
        **summary,
        "fee_policy": policy,
        "fees": fees,
        "fee_covered": -_campaign_line_sum(
            conn, campaign_id, DONOR_COVERED_FEES, EntryKind.DONATION
        ),
        "net": clearing_in,
        "disputed": _campaign_line_sum(conn, campaign_id, DISPUTED_FUNDS),
        "dispute_fees": _campaign_line_sum(conn, campaign_id, DISPUTE_FEES),
        "dispute_lost": _campaign_line_sum(conn, campaign_id, fund, EntryKind.DISPUTE_LOST),
        "fund_balance": -_campaign_line_sum(conn, campaign_id, fund),
        "paid_out": paid_out,
    }


account_name = domain_account_name
"""An account's name in finance staff's words (domain.account_name)."""


def trial_balance(conn: Connection, at: datetime | None = None) -> dict[str, Any]:
    """Every account's balance per currency, from entries effective up to `at` (everything
    when None). Debits are positive; each currency's balances sum to zero."""
    statement = (
        select(
            journal_lines.c.account,
            journal_lines.c.currency,
            func.sum(journal_lines.c.amount).label("balance"),
        )
        .join(journal_entries, journal_entries.c.id == journal_lines.c.entry_id)
        .group_by(journal_lines.c.account, journal_lines.c.currency)
        .order_by(journal_lines.c.currency, journal_lines.c.account)
    )
    if at is not None:
        statement = statement.where(journal_entries.c.effective_at <= as_utc(at))
    accounts = [
        {
            "account": row.account,
            "name": account_name(row.account),
            "currency": row.currency,
            "debit": max(int(row.balance), 0),
            "credit": max(-int(row.balance), 0),
            "balance": int(row.balance),
        }
        for row in conn.execute(statement)
    ]
    totals: dict[str, int] = {}
    for account in accounts:
        totals[account["currency"]] = totals.get(account["currency"], 0) + account["balance"]
    return {
        "at": at.isoformat() if at else None,
        "accounts": accounts,
        "totals": [{"currency": c, "balance": b} for c, b in sorted(totals.items())],
        "balanced": all(balance == 0 for balance in totals.values()),
    }


def unbalanced_entries(conn: Connection) -> list[tuple[int, str, int]]:
    """Every (entry id, currency, difference) whose lines do not sum to zero: always empty,
    checked by the tests and by `python -m services.ledger report`."""
    rows = conn.execute(
        select(
            journal_lines.c.entry_id,
            journal_lines.c.currency,
            func.sum(journal_lines.c.amount).label("off"),
        )
        .group_by(journal_lines.c.entry_id, journal_lines.c.currency)
        .having(func.sum(journal_lines.c.amount) != 0)
    ).all()
    lonely = conn.execute(
        select(journal_entries.c.id)
        .outerjoin(journal_lines, journal_lines.c.entry_id == journal_entries.c.id)
        .group_by(journal_entries.c.id)
        .having(func.count(journal_lines.c.id) < 2)
    ).all()
    return [(row.entry_id, row.currency, int(row.off)) for row in rows] + [
        (row.id, "", 0) for row in lonely
    ]


# --- the journal, filtered and paged -----------------------------------------------------------


def _journal_matching(
    *,
    campaign: str | None = None,
    account: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    stripe_id: str | None = None,
) -> Select[Any]:
    """The journal entries the filters of journal() match, unordered."""
    statement = select(journal_entries)
    if campaign:
        by_slug = select(campaigns.c.campaign_id).where(campaigns.c.slug == campaign)
        statement = statement.where(
            or_(
                journal_entries.c.campaign_id == campaign,
                journal_entries.c.campaign_id.in_(by_slug.scalar_subquery()),
            )
        )
    if account:
        matching = journal_lines.c.account.startswith(account, autoescape=True)
        if not account.endswith(":"):
            matching = journal_lines.c.account == account
        statement = statement.where(
            journal_entries.c.id.in_(select(journal_lines.c.entry_id).where(matching))
        )
    if kind:
        statement = statement.where(journal_entries.c.kind == kind)
    if since:
        statement = statement.where(journal_entries.c.effective_at >= as_utc(since))
    if until:
        statement = statement.where(journal_entries.c.effective_at < as_utc(until))
    if stripe_id:
        statement = statement.where(
            or_(
                journal_entries.c.stripe_object_id == stripe_id,
                journal_entries.c.charge_id == stripe_id,
                journal_entries.c.balance_transaction_id == stripe_id,
                journal_entries.c.stripe_reference == stripe_id,
            )
        )
    return statement


def journal_count(conn: Connection, **filters: Any) -> int:
    """How many entries the filters of journal() match (every page together)."""
    matching = _journal_matching(**filters).subquery()
    return int(conn.execute(select(func.count()).select_from(matching)).scalar_one())


def journal(
    conn: Connection,
    *,
    after: tuple[datetime, int] | None = None,
    limit: int | None = 100,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Journal entries with their lines, oldest first, filtered by campaign (id or slug),
    account (a name or a prefix ending in ':'), kind, effective date range [since, until),
    any Stripe id (object, charge, balance transaction, payment intent) and paged after a
    cursor."""
    statement = _journal_matching(**filters).order_by(
        journal_entries.c.effective_at, journal_entries.c.id
    )
    if after:
        moment, entry_id = after
        statement = statement.where(
            or_(
                journal_entries.c.effective_at > moment,
                and_(journal_entries.c.effective_at == moment, journal_entries.c.id > entry_id),
            )
        )
    if limit is not None:
        statement = statement.limit(limit)
    entries = [dict(row._mapping) for row in conn.execute(statement)]
    if not entries:
        return entries
    lines: dict[int, list[dict[str, Any]]] = {}
    ids = [entry["id"] for entry in entries]
    for chunk in range(0, len(ids), 500):
        for line in conn.execute(
            select(journal_lines)
            .where(journal_lines.c.entry_id.in_(ids[chunk : chunk + 500]))
            .order_by(journal_lines.c.id)
        ):
            lines.setdefault(line.entry_id, []).append(
                {"account": line.account, "currency": line.currency, "amount": line.amount}
            )
    for entry in entries:
        entry["effective_at"] = as_utc(entry["effective_at"])
        entry["created_at"] = as_utc(entry["created_at"])
        if entry["original_effective_at"] is not None:
            entry["original_effective_at"] = as_utc(entry["original_effective_at"])
        entry["lines"] = lines.get(entry["id"], [])
    return entries


def journal_pages(
    conn: Connection, page_size: int = 500, **filters: Any
) -> Iterator[dict[str, Any]]:
    """Every entry matching `filters`, one page at a time, for streaming exports."""
    after: tuple[datetime, int] | None = None
    while True:
        page = journal(conn, after=after, limit=page_size, **filters)
        yield from page
        if len(page) < page_size:
            return
        after = (page[-1]["effective_at"], page[-1]["id"])
