"""Accounting periods: calendar months (UTC) that finance staff close to new postings."""

from __future__ import annotations

from datetime import UTC, datetime


def month_of(moment: datetime) -> str:
    """The accounting period (a calendar month, UTC) a moment falls in, as "YYYY-MM"."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def month_start(month: str) -> datetime:
    """The first instant of a "YYYY-MM" period."""
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC)


def next_month(month: str) -> str:
    """The period after `month`."""
    year, number = (int(part) for part in month.split("-"))
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def posting_date(effective_at: datetime, closed: set[str]) -> tuple[datetime, datetime | None]:
    """Where an entry dated `effective_at` is posted: on its date when its month is open;
    otherwise at the start of the first open month after it, with the original date kept."""
    month = month_of(effective_at)
    if month not in closed:
        return effective_at, None
    while month in closed:
        month = next_month(month)
    return month_start(month), effective_at
