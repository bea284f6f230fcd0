"""A read for finance staff's charts: a campaign's money and meals over time, bucket by bucket
(day, ISO week or month, in UTC), straight from the journal like views.py.

Each bucket sums the same journal lines as views.campaign_finance_summary (donated, fees,
net, refunded, disputed, paid out, what difts brought) over the entries effective in it, and
carries the running totals at its end: the fund's balance and the campaign's meal counter.
The counter is recounted at each bucket's end from the gifts' fund lines up to then (each
gift's eligible amount is what its fund still holds, never below zero, in the price period
it counts in) and the difts' allocations, with the domain's count_meals: so the last bucket
of a range that covers the whole journal ends exactly on the summary's figures."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import aliased

from services.shared.db import as_utc
from services.shared.money import Money

from .domain import (
    DISPUTED_FUNDS,
    EPOCH,
    PROCESSING_FEES,
    STRIPE_CLEARING,
    EntryKind,
    PricePeriod,
    campaign_fund,
    count_meals,
)
from .store import campaigns, dift_allocations, gifts, journal_entries, journal_lines, payout_items
from .store import meal_periods as meal_periods_table

INTERVALS = ("day", "week", "month")
MAX_BUCKETS = 400
"""At most this many buckets in one answer: a chart has no use for more, and a wider range
asks for a longer interval."""

MONEY_FIGURES = ("donated", "fees", "net", "refunded", "disputed", "paid_out", "difts_amount")
DIFT_KINDS = (EntryKind.DIFT_DIRECTED, EntryKind.DIFT_EXPIRED)
REFUND_KINDS = (EntryKind.REFUND, EntryKind.REFUND_FAILED)


class TooManyBuckets(ValueError):
    """A range and interval that would make more than MAX_BUCKETS buckets."""


def bucket_start(moment: datetime, interval: str) -> datetime:
    """The start of the bucket holding `moment`: midnight UTC, Monday midnight, the 1st."""
    day = as_utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_bucket(start: datetime, interval: str) -> datetime:
    """The start of the bucket after the one starting at `start`."""
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "week":
        return start + timedelta(weeks=1)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def boundaries(since: datetime, until: datetime, interval: str) -> list[datetime]:
    """The buckets' edges from the bucket holding `since` to the first edge at or after
    `until`; TooManyBuckets beyond MAX_BUCKETS (counted before any list is built)."""
    first = bucket_start(since, interval)
    span = until - first
    rough = {"day": span.days, "week": span.days // 7, "month": span.days // 31}[interval]
    if rough > MAX_BUCKETS:
        raise TooManyBuckets(f"more than {MAX_BUCKETS} {interval}s: choose a longer interval")
    edges = [first]
    while edges[-1] < until or len(edges) == 1:
        edges.append(next_bucket(edges[-1], interval))
        if len(edges) > MAX_BUCKETS + 1:
            raise TooManyBuckets(f"more than {MAX_BUCKETS} {interval}s: choose a longer interval")
    return edges


def default_interval(since: datetime, until: datetime) -> str:
    """Days for up to three months, weeks for up to two years, months beyond."""
    days = (until - since).days
    return "day" if days <= 92 else "week" if days <= 731 else "month"


def campaign_history(
    conn: Connection,
    slug: str,
    *,
    interval: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """A campaign's buckets over [since, until) (default: from its first entry to now, the
    interval by default_interval), or None for a slug the ledger does not know. Money is in
    minor units of `currency`; `opening` is what the running totals stood at before the first
    bucket, `totals` the sums over the range."""
    campaign = conn.execute(
        select(campaigns.c.campaign_id, campaigns.c.currency, campaigns.c.meal_price).where(
            campaigns.c.slug == slug
        )
    ).first()
    if campaign is None:
        return None
    campaign_id, currency = campaign.campaign_id, campaign.currency
    until = as_utc(until) if until else as_utc(now or datetime.now(UTC))
    if since is None:
        first = conn.execute(
            select(func.min(journal_entries.c.effective_at)).where(
                journal_entries.c.campaign_id == campaign_id
            )
        ).scalar()
        since = as_utc(first) if first is not None else until
    since = as_utc(since)
    if since > until:
        raise ValueError("since must come before until")
    interval = interval or default_interval(since, until)
    edges = boundaries(since, until, interval)
    buckets = [_empty_bucket(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    opening = _empty_bucket(EPOCH, edges[0])
    eligible_changes: list[dict[datetime, int]] = [defaultdict(int) for _ in range(len(buckets))]
    opening_eligible: dict[datetime, int] = defaultdict(int)

    def bucket_of(moment: datetime) -> tuple[dict[str, Any], dict[datetime, int]] | None:
        index = bisect_right(edges, as_utc(moment)) - 1
        if index < 0:
            return opening, opening_eligible
        if index >= len(buckets):
            return None
        return buckets[index], eligible_changes[index]

    _sum_journal(conn, campaign_id, edges[-1], bucket_of)
    _sum_payouts(conn, campaign_id, edges[-1], bucket_of)
    _sum_difts_eligible(conn, campaign_id, edges[-1], bucket_of)
    periods = _price_periods(conn, campaign_id, currency, campaign.meal_price)
    _run_totals(opening, opening_eligible, buckets, eligible_changes, periods, currency)
    return {
        "campaign": slug,
        "campaign_id": campaign_id,
        "currency": currency,
        "interval": interval,
        "since": edges[0],
        "until": edges[-1],
        "opening": {"fund_balance": opening["fund_balance"], "meals_total": opening["meals_total"]},
        "buckets": buckets,
        "totals": {
            **{key: sum(b[key] for b in buckets) for key in (*MONEY_FIGURES, "meals_funded")},
            "fund_balance": buckets[-1]["fund_balance"],
            "meals_total": buckets[-1]["meals_total"],
        },
    }


def _empty_bucket(starts_at: datetime, ends_at: datetime) -> dict[str, Any]:
    return {
        "starts_at": starts_at,
        "ends_at": ends_at,
        **dict.fromkeys(MONEY_FIGURES, 0),
        "fund_change": 0,
        "meals_funded": 0,
        "fund_balance": 0,
        "meals_total": 0,
    }


def _sum_journal(conn: Connection, campaign_id: str, until: datetime, bucket_of: Any) -> None:
    """Add each line of the campaign's entries before `until` to its entry's bucket, and each
    gift's change of eligible amount (what its fund holds, never below zero) to the bucket."""
    fund = campaign_fund(campaign_id)
    gift_period = {
        row.donation_id: as_utc(row.period_starts_at)
        for row in conn.execute(
            select(gifts.c.donation_id, gifts.c.period_starts_at).where(
                gifts.c.campaign_id == campaign_id
            )
        )
    }
    rows = conn.execute(
        select(
            journal_entries.c.id,
            journal_entries.c.kind,
            journal_entries.c.effective_at,
            journal_entries.c.donation_id,
            journal_entries.c.event_id,
            journal_lines.c.account,
            journal_lines.c.amount,
        )
        .join(journal_lines, journal_lines.c.entry_id == journal_entries.c.id)
        .where(
            journal_entries.c.campaign_id == campaign_id,
            journal_entries.c.effective_at < until,
        )
        .order_by(journal_entries.c.effective_at, journal_entries.c.id, journal_lines.c.id)
    )
    # The fee charged to the fund is its gift's second entry: same event, no donation id.
    gift_of_event: dict[str, str] = {}
    held: dict[str, int] = defaultdict(int)
    for row in rows:
        found = bucket_of(row.effective_at)
        if found is None:
            continue
        bucket, eligible = found
        amount = int(row.amount)
        if row.kind == EntryKind.DONATION:
            bucket["donated"] += max(amount, 0)
            if row.donation_id:
                gift_of_event[row.event_id] = row.donation_id
        if row.account == PROCESSING_FEES:
            bucket["fees"] += amount
        if row.account == STRIPE_CLEARING:
            bucket["net"] += amount
        if row.kind in REFUND_KINDS and row.account in (STRIPE_CLEARING, PROCESSING_FEES):
            bucket["refunded"] -= amount
        if row.account == DISPUTED_FUNDS:
            bucket["disputed"] += amount
        if row.account != fund:
            continue
        bucket["fund_change"] -= amount
        if row.kind in DIFT_KINDS:
            bucket["difts_amount"] -= amount
            continue
        donation_id: str | None = row.donation_id or gift_of_event.get(row.event_id)
        if donation_id is not None and donation_id in gift_period:
            before = max(0, held[donation_id])
            held[donation_id] -= amount
            eligible[gift_period[donation_id]] += max(0, held[donation_id]) - before


def _sum_payouts(conn: Connection, campaign_id: str, until: datetime, bucket_of: Any) -> None:
    """What payouts settled of the campaign's entries (as the summary's paid_out), in the
    bucket of the payout's own entry (the entry's, for a payout of nothing booked)."""
    payout = aliased(journal_entries)
    moment = func.coalesce(payout.c.effective_at, journal_entries.c.effective_at)
    rows = conn.execute(
        select(moment.label("moment"), journal_lines.c.amount)
        .select_from(journal_entries)
        .join(journal_lines, journal_lines.c.entry_id == journal_entries.c.id)
        .join(
            payout_items,
            payout_items.c.balance_transaction_id == journal_entries.c.balance_transaction_id,
        )
        .outerjoin(
            payout,
            (payout.c.kind == EntryKind.PAYOUT.value)
            & (payout.c.stripe_object_id == payout_items.c.payout_id),
        )
        .where(
            journal_entries.c.campaign_id == campaign_id,
            journal_lines.c.account == STRIPE_CLEARING,
        )
    )
    for row in rows:
        if as_utc(row.moment) >= until:
            continue
        found = bucket_of(row.moment)
        if found is not None:
            found[0]["paid_out"] += int(row.amount)


def _sum_difts_eligible(
    conn: Connection, campaign_id: str, until: datetime, bucket_of: Any
) -> None:
    """Each dift's part, eligible for meals in its price period from when it was booked."""
    rows = conn.execute(
        select(
            dift_allocations.c.effective_at,
            dift_allocations.c.period_starts_at,
            dift_allocations.c.amount,
        ).where(
            dift_allocations.c.campaign_id == campaign_id,
            dift_allocations.c.effective_at < until,
        )
    )
    for row in rows:
        found = bucket_of(row.effective_at)
        if found is not None:
            found[1][as_utc(row.period_starts_at)] += int(row.amount)


def _price_periods(
    conn: Connection, campaign_id: str, currency: str, meal_price: int
) -> list[tuple[datetime, int]]:
    """The campaign's price periods (start, price), oldest first."""
    rows = conn.execute(
        select(meal_periods_table.c.starts_at, meal_periods_table.c.meal_price)
        .where(meal_periods_table.c.campaign_id == campaign_id)
        .order_by(meal_periods_table.c.starts_at)
    ).all()
    return [(as_utc(r.starts_at), int(r.meal_price)) for r in rows] or [(EPOCH, meal_price)]


def _run_totals(
    opening: dict[str, Any],
    opening_eligible: dict[datetime, int],
    buckets: Sequence[dict[str, Any]],
    changes: Sequence[dict[datetime, int]],
    periods: list[tuple[datetime, int]],
    currency: str,
) -> None:
    """Carry the fund's balance and recount the meals at the end of each bucket."""
    eligible: dict[datetime, int] = defaultdict(int)

    def meals() -> int:
        return count_meals(
            [
                PricePeriod(start, Money(price, currency), Money(eligible[start], currency))
                for start, price in periods
            ]
        ).meals_funded

    for start, change in opening_eligible.items():
        eligible[start] += change
    opening["fund_balance"] = opening["fund_change"]
    opening["meals_total"] = meals()
    balance, counted = opening["fund_balance"], opening["meals_total"]
    for bucket, change_of in zip(buckets, changes, strict=True):
        for start, change in change_of.items():
            eligible[start] += change
        balance += bucket.pop("fund_change")
        total = meals() if change_of else counted
        bucket.update(fund_balance=balance, meals_total=total, meals_funded=total - counted)
        counted = total
