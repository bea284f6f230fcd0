"""Finance staff's commands: close a month to new postings, choose who bears a campaign's fees,
and reconcile the journal with Stripe's balance transactions (of a period or of a payout)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..domain import (
    BalanceQuery,
    FeePolicy,
    ReconciliationReport,
    month_start,
    reconcile,
    settle_payout,
)
from .books import OpenUnitOfWork, Progress, StripeRecords, UnitOfWork


class Refused(ValueError):
    """A finance command that cannot be carried out, with the reason."""


@dataclass(frozen=True)
class ClosePeriod:
    """Close a month ("YYYY-MM") to new postings, on someone's authority."""

    month: str
    closed_by: str


def close_period(asked: ClosePeriod, uow: UnitOfWork) -> bool:
    """Close a month: entries dated in it from now on are posted at the start of the next open
    month. False if it was closed already."""
    refusal = f"a period is a month written YYYY-MM, not {asked.month!r}"
    try:
        month_start(asked.month)
    except ValueError as error:
        raise Refused(refusal) from error
    if len(asked.month) != 7:
        raise Refused(refusal)
    return uow.journal.close(asked.month, asked.closed_by)


@dataclass(frozen=True)
class SetFeePolicy:
    """Choose who bears the processing fees of a campaign's gifts booked from now on."""

    slug: str
    policy: str


def set_fee_policy(asked: SetFeePolicy, uow: UnitOfWork) -> None:
    """Set a campaign's fee policy (domain.FeePolicy); refused for another policy or a
    campaign the ledger does not know."""
    try:
        chosen = FeePolicy(asked.policy)
    except ValueError as error:
        raise Refused(f"fee policy is one of {[p.value for p in FeePolicy]}") from error
    campaign_id = uow.campaigns.holder_of(asked.slug)
    if campaign_id is None:
        raise Refused(f"no campaign {asked.slug!r} in the ledger")
    uow.campaigns.set_fee_policy(campaign_id, chosen.value)


@dataclass(frozen=True)
class ReconcilePeriod:
    """Reconcile Stripe's balance transactions created in [since, until)."""

    since: datetime
    until: datetime


def reconcile_period(
    asked: ReconcilePeriod,
    unit_of_work: OpenUnitOfWork,
    stripe: StripeRecords,
    progress: Progress | None = None,
) -> ReconciliationReport:
    """Match the period's balance transactions with the entries dated in it. Stripe is read
    first, then the journal, in a unit of work that waits on nothing."""
    which = BalanceQuery(since=asked.since, until=asked.until)
    stripe_side = list(stripe.movements(which, progress))
    with unit_of_work() as uow:
        ledger_side = uow.journal.clearing_movements(which)
    scope = f"{asked.since.isoformat()} to {asked.until.isoformat()}"
    return reconcile(scope, stripe_side, ledger_side)


@dataclass(frozen=True)
class ReconcilePayout:
    """Reconcile what Stripe says one payout settled."""

    payout_id: str


def reconcile_payout(
    asked: ReconcilePayout,
    unit_of_work: OpenUnitOfWork,
    stripe: StripeRecords,
    progress: Progress | None = None,
) -> ReconciliationReport:
    """Match the balance transactions Stripe says a payout settled with the entries the ledger
    booked for them, and the payout booked to the bank against the total it settled."""
    which = BalanceQuery(payout_id=asked.payout_id)
    stripe_side = [m for m in stripe.movements(which, progress) if m.type != "payout"]
    with unit_of_work() as uow:
        ledger_side = uow.journal.clearing_movements(which)
        booked = uow.journal.booked_to_bank(asked.payout_id)
    report = reconcile(f"payout {asked.payout_id}", stripe_side, ledger_side)
    settle_payout(report, asked.payout_id, booked)
    return report
