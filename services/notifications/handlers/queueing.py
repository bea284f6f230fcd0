"""What every handler that writes an email shares: the unit of work it uses, the stationery
(letterhead, keys, budgets, clock), and queueing one email into the delivery log. Nothing here
talks to SMTP (the sender does, from the delivery log) or holds SQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from services.shared.consumer import PoisonEvent
from services.shared.unit_of_work import Outbox

from .. import store
from ..consent import ConsentKeys
from ..domain import Donor, ImpactBudget, Kind, ReminderRule
from ..emails import RenderedEmail, UnsubscribeLinks
from ..messages import Letterhead, UnsendableAddress, build_message, serialize


class UnitOfWork(Protocol):
    """What the handlers use of a unit of work (unit_of_work.NotificationsUnitOfWork; the
    unit tests' fake)."""

    donors: store.Donors
    campaigns: store.Campaigns
    difts: store.Difts
    deliveries: store.Deliveries

    @property
    def outbox(self) -> Outbox:
        """Where the service's events go (dift_invitation_sent), in the same transaction;
        handlers only read it off the unit of work."""


@dataclass(frozen=True)
class Stationery:
    """What handlers need to write emails: the letterhead, the keys of unsubscribe links and
    pseudonyms, the impact budget, the dift reminder rule, and the clock."""

    letterhead: Letterhead
    keys: ConsentKeys
    # At most one impact email per donor and campaign in this period (0: one per moment).
    impact: ImpactBudget = ImpactBudget(timedelta(0))
    # What time it is (tests move it to see a period end).
    clock: Callable[[], datetime] = partial(datetime.now, UTC)
    # When a dift's one reminder goes: REMINDER_DAYS before it expires.
    reminders: ReminderRule = ReminderRule()

    def unsubscribe_links(self, email_ref: str, campaign_id: str) -> UnsubscribeLinks:
        """Links for one donor: out of this campaign's news, or out of every campaign's."""
        return UnsubscribeLinks(
            this_campaign=self.letterhead.unsubscribe_url(
                self.keys.unsubscribe_token(email_ref, campaign_id)
            ),
            every_campaign=self.letterhead.unsubscribe_url(
                self.keys.unsubscribe_token(email_ref, None)
            ),
        )


@dataclass(frozen=True)
class Email:
    """One email to queue: its words, to whom, what it is and what it is about."""

    rendered: RenderedEmail
    name: str
    address: str
    kind: Kind
    campaign_id: str
    donation_id: str | None = None
    post_id: str | None = None
    milestone: str | None = None
    unsubscribe: UnsubscribeLinks | None = None
    dift_id: str | None = None
    programme_id: str | None = None
    not_after: datetime | None = None

    @classmethod
    def to(cls, donor: Donor, rendered: RenderedEmail, kind: Kind, **about: Any) -> Email:
        """An email to one donor of a campaign, about what `about` names."""
        return cls(rendered, donor.name, donor.email, kind, donor.campaign_id, **about)


def words_of(kind: str, render: Callable[[], RenderedEmail]) -> RenderedEmail:
    """An email's words; a template that cannot render this event will not render it on a
    retry either, so the event cannot be applied."""
    try:
        return render()
    except Exception as error:
        raise PoisonEvent(f"cannot write the {kind} email: {type(error).__name__}") from error


def queue_email(
    uow: UnitOfWork,
    stationery: Stationery,
    event_id: str,
    email: Email,
    skipped_because: str | None = None,
) -> bool:
    """Build one message and queue it (or log it skipped, with why); False if this delivery
    already existed."""
    now = stationery.clock()
    wire = message_id = None
    if skipped_because is None:
        try:
            message = build_message(
                email.rendered,
                email.name,
                email.address,
                stationery.letterhead,
                now,
                email.unsubscribe,
            )
            wire, message_id = serialize(message), str(message["Message-ID"])
        except UnsendableAddress as error:
            skipped_because = str(error)
    return uow.deliveries.add(
        store.NewDelivery(
            event_id=event_id,
            recipient=email.address,
            kind=email.kind.value,
            campaign_id=email.campaign_id,
            donation_id=email.donation_id,
            subject=email.rendered.subject,
            message_id=message_id,
            message=wire,
            skipped_because=skipped_because,
            recipient_ref=stationery.keys.email_ref(email.address),
            post_id=email.post_id,
            milestone=email.milestone,
            dift_id=email.dift_id,
            programme_id=email.programme_id,
            not_after=email.not_after,
        ),
        now,
    )
