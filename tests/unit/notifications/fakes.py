"""An in-memory unit of work for the notifications handlers' unit tests: the same repositories
(methods and answers) as services/notifications/store, kept in dictionaries. The contract
suite (tests/integration/notifications/test_store.py) runs against it too, so it cannot drift
from the real ones."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from services.notifications.domain import BY_CONSENT, CampaignFacts, Dift, Donor, ImpactState
from services.notifications.store import DueDelivery, NewDelivery
from services.shared.envelope import CloudEvent
from services.shared.events import dump_data


def _address(email: str) -> str:
    return email.strip().lower()


class FakeDonors:
    """Donors by (campaign, address); pseudonyms unsubscribed from every campaign."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Donor] = {}
        self.order: list[tuple[str, str]] = []
        self.due: dict[tuple[str, str], datetime | None] = {}
        self.everywhere: dict[str, datetime] = {}

    def _with_everywhere(self, donor: Donor) -> Donor:
        at = self.everywhere.get(donor.email_ref or "") if donor.email_ref else None
        return replace(donor, everywhere_at=at)

    def get(self, campaign_id: str, email: str, lock: bool = False) -> Donor | None:
        found = self.rows.get((campaign_id, _address(email)))
        return self._with_everywhere(found) if found else None

    def save(self, donor: Donor, now: datetime) -> None:
        key = (donor.campaign_id, _address(donor.email))
        if key not in self.rows:
            self.order.append(key)
            impact = ImpactState()
        else:
            impact = self.rows[key].impact
        self.rows[key] = replace(donor, email=key[1], impact=impact, everywhere_at=None)

    def of_campaign(self, campaign_id: str) -> list[Donor]:
        return [
            self._with_everywhere(self.rows[key])
            for key in self.order
            if key[0] == campaign_id and self.rows[key].consent.consent_at is not None
        ]

    def wanting_news(self, recipients: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        wanting = set()
        for campaign_id, email in recipients:
            found = self.get(campaign_id, email)
            if found is not None and found.wants_news:
                wanting.add((campaign_id, email))
        return wanting

    def set_email_ref(self, email: str, email_ref: str) -> None:
        for key, donor in self.rows.items():
            if key[1] == _address(email) and donor.email_ref is None:
                self.rows[key] = replace(donor, email_ref=email_ref)

    def save_impact(
        self, campaign_id: str, email: str, state: ImpactState, due_at: datetime | None
    ) -> None:
        key = (campaign_id, _address(email))
        if key in self.rows:
            self.rows[key] = replace(self.rows[key], impact=state)
            self.due[key] = due_at

    def with_impact_due(self, now: datetime, limit: int = 200) -> list[Donor]:
        due = sorted((at, key) for key, at in self.due.items() if at is not None and at <= now)
        return [self._with_everywhere(self.rows[key]) for _at, key in due[:limit]]

    def unsubscribe(self, email_ref: str, campaign_id: str | None, now: datetime) -> int:
        changed = 0
        for key, donor in self.rows.items():
            mine = donor.email_ref == email_ref and donor.consent.unsubscribed_at is None
            if mine and (campaign_id is None or key[0] == campaign_id):
                self.rows[key] = replace(donor, consent=donor.consent.unsubscribed(now))
                changed += 1
        if campaign_id is None:
            self.everywhere[email_ref] = now
        return changed

    def erase(self, email: str, email_ref: str) -> int:
        gone = [
            k for k, d in self.rows.items() if k[1] == _address(email) or d.email_ref == email_ref
        ]
        for key in gone:
            del self.rows[key]
            self.order.remove(key)
            self.due.pop(key, None)
        return len(gone)


class FakeDifts:
    """Company difts by id."""

    def __init__(self) -> None:
        self.rows: dict[str, Dift] = {}

    def record(self, dift: Dift, now: datetime) -> bool:
        if dift.dift_id in self.rows:
            return False
        recipient = dift.recipient
        if recipient is not None:
            recipient = replace(recipient, email=_address(recipient.email))
        self.rows[dift.dift_id] = replace(
            dift, recipient=recipient, reminder_due_at=None, settled=None
        )
        return True

    def get(self, dift_id: str) -> Dift | None:
        return self.rows.get(dift_id)

    def schedule_reminder(self, dift_id: str, due_at: datetime) -> None:
        found = self.rows.get(dift_id)
        if found is not None and found.settled is None:
            self.rows[dift_id] = replace(found, reminder_due_at=due_at)

    def settle(self, dift_id: str, how: str, at: datetime) -> bool:
        found = self.rows.get(dift_id)
        if found is None or found.settled is not None:
            return False
        self.rows[dift_id] = replace(found, settled=how, reminder_due_at=None, redeem_url=None)
        return True

    def with_reminder_due(self, now: datetime, limit: int = 200) -> list[Dift]:
        due = sorted(
            (d for d in self.rows.values() if d.reminder_due_at and d.reminder_due_at <= now),
            key=lambda d: d.reminder_due_at or now,
        )
        return due[:limit]

    def reminder_done(self, dift_id: str) -> None:
        if dift_id in self.rows:
            self.rows[dift_id] = replace(self.rows[dift_id], reminder_due_at=None, redeem_url=None)

    def erase(self, email: str) -> int:
        mine = [
            k for k, d in self.rows.items() if d.recipient and d.recipient.email == _address(email)
        ]
        for key in mine:
            self.rows[key] = replace(
                self.rows[key], recipient=None, redeem_url=None, reminder_due_at=None
            )
        return len(mine)


@dataclass
class FakeOutbox:
    """The events queued for publication, as (topic, key, event); checked against their
    schema as the real outbox does."""

    events: list[tuple[str, str, CloudEvent]] = field(default_factory=list)

    def add(self, topic: str, key: str, event: CloudEvent) -> None:
        dump_data(event.type, event.data)
        self.events.append((topic, key, event))


class FakeCampaigns:
    def __init__(self) -> None:
        self.rows: dict[str, CampaignFacts] = {}

    def record(self, campaign: CampaignFacts) -> None:
        self.rows[campaign.campaign_id] = campaign

    def get(self, campaign_id: str) -> CampaignFacts | None:
        return self.rows.get(campaign_id)


@dataclass
class FakeDelivery:
    """One delivery row."""

    id: str
    event_id: str
    recipient: str
    kind: str
    campaign_id: str
    donation_id: str | None
    subject: str
    message_id: str | None
    message: str | None
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None = None
    recipient_ref: str | None = None
    post_id: str | None = None
    milestone: str | None = None
    dift_id: str | None = None
    programme_id: str | None = None
    not_after: datetime | None = None


@dataclass
class FakeDeliveries:
    """The delivery log, with the real table's unique keys."""

    rows: list[FakeDelivery] = field(default_factory=list)

    def _keys(self, row: FakeDelivery | NewDelivery) -> list[tuple[Any, ...]]:
        keys: list[tuple[Any, ...]] = [("event", row.event_id, row.recipient, row.kind)]
        if row.kind == "receipt":
            keys.append(("receipt", row.donation_id, row.recipient))
        if row.kind == "news":
            keys.append(("news", row.campaign_id, row.post_id, row.recipient))
        if row.kind == "impact":
            keys.append(("impact", row.campaign_id, row.milestone, row.recipient))
        if row.dift_id is not None:
            keys.append(("dift", row.dift_id, row.kind))
        return keys

    def add(self, delivery: NewDelivery, now: datetime) -> bool:
        taken = {key for row in self.rows for key in self._keys(row)}
        if any(key in taken for key in self._keys(delivery)):
            return False
        skipped = delivery.skipped_because is not None
        self.rows.append(
            FakeDelivery(
                id=str(uuid.uuid4()),
                event_id=delivery.event_id,
                recipient=delivery.recipient,
                kind=delivery.kind,
                campaign_id=delivery.campaign_id,
                donation_id=delivery.donation_id,
                subject=delivery.subject,
                message_id=delivery.message_id,
                message=delivery.message,
                status="skipped" if skipped else "pending",
                attempts=0,
                last_error=delivery.skipped_because,
                next_attempt_at=None if skipped else now,
                created_at=now,
                recipient_ref=delivery.recipient_ref,
                post_id=delivery.post_id,
                milestone=delivery.milestone,
                dift_id=delivery.dift_id,
                programme_id=delivery.programme_id,
                not_after=delivery.not_after,
            )
        )
        return True

    def _row(self, delivery_id: str) -> FakeDelivery | None:
        return next((row for row in self.rows if row.id == delivery_id), None)

    def get(self, delivery_id: str) -> Any | None:
        found = self._row(delivery_id)
        return SimpleNamespace(**vars(found)) if found else None

    def claim_due(
        self,
        now: datetime,
        limit: int,
        lease_until: datetime,
        kinds: Sequence[str] | None = None,
    ) -> list[DueDelivery]:
        due = [
            row
            for row in self.rows
            if row.status == "pending"
            and row.next_attempt_at
            and row.next_attempt_at <= now
            and (kinds is None or row.kind in kinds)
        ]
        due.sort(key=lambda row: row.next_attempt_at or now)
        claimed = due[:limit]
        for row in claimed:
            row.next_attempt_at = lease_until
        return [
            DueDelivery(
                r.id,
                r.recipient,
                r.message or "",
                r.attempts,
                r.kind,
                r.campaign_id,
                r.dift_id,
                r.programme_id,
                r.not_after,
            )
            for r in claimed
        ]

    def _pending(self, delivery_id: str) -> FakeDelivery | None:
        row = self._row(delivery_id)
        return row if row is not None and row.status == "pending" else None

    def mark_sent(self, delivery_id: str, now: datetime) -> bool:
        if row := self._pending(delivery_id):
            row.status, row.attempts, row.sent_at = "sent", row.attempts + 1, now
            row.next_attempt_at, row.last_error = None, None
            return True
        return False

    def mark_bounced(self, delivery_id: str, error: str) -> bool:
        if row := self._pending(delivery_id):
            row.status, row.attempts, row.last_error = "bounced", row.attempts + 1, error
            row.next_attempt_at = None
            return True
        return False

    def skip_pending_of_dift(self, dift_id: str, kinds: Sequence[str], reason: str) -> int:
        skipped = 0
        for row in self.rows:
            if row.dift_id == dift_id and row.status == "pending" and row.kind in kinds:
                row.status, row.last_error, row.next_attempt_at = "skipped", reason, None
                skipped += 1
        return skipped

    def status_of_dift(self, dift_id: str, kind: str) -> str | None:
        return next(
            (row.status for row in self.rows if (row.dift_id, row.kind) == (dift_id, kind)), None
        )

    def mark_retry(self, delivery_id: str, error: str, retry_at: datetime) -> None:
        if row := self._pending(delivery_id):
            row.attempts, row.last_error, row.next_attempt_at = row.attempts + 1, error, retry_at

    def mark_failed(self, delivery_id: str, error: str) -> None:
        if row := self._pending(delivery_id):
            row.status, row.attempts, row.last_error = "failed", row.attempts + 1, error
            row.next_attempt_at = None

    def mark_skipped(self, delivery_id: str, reason: str) -> None:
        if row := self._pending(delivery_id):
            row.status, row.last_error, row.next_attempt_at = "skipped", reason, None

    def mark_all_skipped(self, delivery_ids: Sequence[str], reason: str) -> None:
        for delivery_id in delivery_ids:
            self.mark_skipped(delivery_id, reason)

    def release(self, delivery_ids: Sequence[str], at: datetime) -> None:
        for delivery_id in delivery_ids:
            if row := self._pending(delivery_id):
                row.next_attempt_at = at

    def requeue(self, delivery_id: str, now: datetime) -> None:
        if row := self._row(delivery_id):
            row.status, row.next_attempt_at, row.last_error, row.sent_at = (
                "pending",
                now,
                None,
                None,
            )

    def skip_pending(self, email_ref: str, campaign_id: str | None, reason: str) -> int:
        skipped = 0
        for row in self.rows:
            if (
                row.recipient_ref == email_ref
                and row.status == "pending"
                and row.kind in BY_CONSENT
                and (campaign_id is None or row.campaign_id == campaign_id)
            ):
                row.status, row.last_error, row.next_attempt_at = "skipped", reason, None
                skipped += 1
        return skipped

    def status_of(self, event_id: str, recipient: str, kind: str) -> str | None:
        return next(
            (
                row.status
                for row in self.rows
                if (row.event_id, row.recipient, row.kind) == (event_id, recipient, kind)
            ),
            None,
        )

    def receipt_recipient(self, donation_id: str) -> str | None:
        found = next(
            (r for r in self.rows if r.donation_id == donation_id and r.kind == "receipt"), None
        )
        if found is None or found.recipient.startswith("erased:"):
            return None
        return found.recipient

    def pseudonymise(self, email: str, email_ref: str) -> tuple[int, int]:
        mine = [
            r
            for r in self.rows
            if r.recipient.lower() == _address(email) or r.recipient_ref == email_ref
        ]
        cancelled = 0
        for row in mine:
            if row.status == "pending":
                row.status, row.last_error, row.next_attempt_at = (
                    "skipped",
                    "erased on request",
                    None,
                )
                cancelled += 1
            row.recipient, row.recipient_ref, row.message = f"erased:{row.id}", email_ref, None
            row.last_error = None if row.last_error is None else "(erased)"
        return len(mine), cancelled


class FakeUnitOfWork:
    """The notifications unit of work, in memory; `committed` counts clean exits."""

    def __init__(self) -> None:
        self.donors = FakeDonors()
        self.campaigns = FakeCampaigns()
        self.difts = FakeDifts()
        self.deliveries = FakeDeliveries()
        self.outbox = FakeOutbox()
        self.committed = 0

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, exc_type: Any, *_rest: Any) -> None:
        if exc_type is None:
            self.committed += 1

    def commit(self) -> None:
        self.committed += 1
