"""One function per thing that happens to donations: load through the unit of work, apply
the domain's rules, save, and put the events the change publishes in the outbox of the same
transaction. No SQL (the repositories hold it), no Flask, no Stripe client (the payments port
is one).

giving.py: a donor starts a gift, or leaves the checkout; webhooks.py: what the Stripe
webhook receives (deduplicated, kept until what it follows is known, or kept as unreadable)
and lifecycle.py what each fact Stripe reports does to a donation; campaigns.py and news.py:
the campaign manager's commands; projections.py: the ledger's counts the pages show;
publishing.py: each change as its event of the published language; programmes.py: sponsors,
programmes and their funding, credits back, opening and closing; difts.py: issuing difts (one,
a recipient file, printed codes), opening and directing them, their expiry, and what
notifications and the ledger report about them.

Handlers run in the unit of work their entrypoint opened, except those that open their own
transactions: start_donation and the worker's apply_received_events (they ask Stripe, and open
the unit of work only around their database work, so no transaction, SQLite's write lock,
waits on Stripe) and apply_kept_events (one transaction per kept event); the webhook's
record_stripe_event gets a recorder, which commits before it returns.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, Self

from services.shared.unit_of_work import Outbox

from .. import store
from ..domain.payments import CheckoutRequest, CheckoutSession, PaymentFacts
from ..domain.programmes import ProgrammeCheckout


class Repositories(Protocol):
    """The repositories of a unit of work, on its transaction."""

    campaigns: store.Campaigns
    news: store.NewsPosts
    meals: store.CampaignMeals
    donations: store.Donations
    refunds: store.Refunds
    disputes: store.Disputes
    payouts: store.Payouts
    stripe_events: store.StripeEvents
    sponsors: store.Sponsors
    programmes: store.Programmes
    fundings: store.Fundings
    credits: store.Credits
    difts: store.Difts
    uploads: store.Uploads
    redemptions: store.RedemptionAttempts
    receipts: store.Receipts
    dift_bookings: store.DiftBookings
    accounts: store.Accounts


class UnitOfWork(Repositories, Protocol):
    """What the handlers use of a unit of work (unit_of_work.DonationsUnitOfWork; the unit
    tests' fake)."""

    @property
    def outbox(self) -> Outbox:
        """Where a change puts the events it publishes, in its transaction."""

    def __enter__(self) -> Self:
        """Begin a transaction (the handlers that ask Stripe open theirs themselves)."""

    def __exit__(self, *exc_info: Any, **_: Any) -> None:
        """Commit, or roll back if the block raised."""

    def savepoint(self) -> AbstractContextManager[Any]:
        """A nested transaction: what happens inside it is undone alone if it raises."""


class StripeEventRecorder(Protocol):
    """Where the webhook records a verified event, committed when `receive` returns
    (unit_of_work.StripeEventRecorder; in unit tests, the fake's stripe_events)."""

    def receive(
        self,
        event_id: str,
        event_type: str,
        payload: str,
        when: datetime,
        correlation_id: str | None = None,
    ) -> bool:
        """Record it; False if its id was recorded before."""


class Payments(Protocol):
    """The payment processor, as the handlers use it (payments.StripePayments)."""

    def create_session(self, checkout: CheckoutRequest) -> CheckoutSession:
        """Open the checkout where the donor pays; PaymentProviderError if it cannot."""

    def create_programme_session(self, checkout: ProgrammeCheckout) -> CheckoutSession:
        """Open the checkout where a sponsor pays a programme's budget; PaymentProviderError
        if it cannot."""

    def payment_facts(self, payment_intent_id: str | None) -> PaymentFacts:
        """What the balance says about a paid payment (unknown parts None);
        PaymentProviderError when Stripe cannot answer now."""

    def payout_transactions(self, payout_id: str) -> list[str]:
        """The balance transactions a payout settles; PaymentProviderError when Stripe
        cannot answer now."""
