"""A company's difts on an in-memory unit of work: one invitation per dift with its personal
link, whatever is redelivered; one reminder REMINDER_DAYS before expiry to those who have not
directed it, cancelled when it is directed or expires, never sent after expiry; one
confirmation of where it went; consent to the chosen causes' news only when asked; and the
sender's outcome of an invitation (sent, bounced) published in the same transaction."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from html.parser import HTMLParser

from services.notifications import handlers
from services.notifications.domain import CONSENT_FROM_DIFT, TRANSACTIONAL
from services.notifications.handlers import Stationery
from services.shared.events import DIFT_INVITATION_SENT, NOTIFICATIONS_TOPIC, load_data
from tests.support.notifications import dift_directed, dift_expired, dift_issued
from tests.unit.notifications.conftest import (
    NOW,
    Clock,
    Deliver,
    booked,
    news,
    parsed,
    rows,
    text_of,
)
from tests.unit.notifications.fakes import FakeUnitOfWork
from tests.unit.notifications.test_sender import ScriptedSmtp, a_sender

NBSP = "\u00a0"
# When the sender looks, in the tests' time: the invitations queued at NOW are due.
SOON = NOW + timedelta(seconds=1)
INVITATION, REMINDER, CONFIRMATION = "dift_invitation", "dift_reminder", "dift_confirmation"


def html_of(row: object) -> str:
    part = parsed(row).get_body(("html",))  # type: ignore[arg-type]
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


class Links(HTMLParser):
    """The links of an HTML part (it must parse)."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value or "" for name, value in attrs if name == "href"]


# --- the invitation -------------------------------------------------------------------------


def test_an_issued_dift_queues_one_french_invitation_with_its_link_and_what_it_funds(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    issued = dift_issued(NOW, dift_id="dift_1", locale="fr-FR")
    deliver(issued)

    [row] = rows(uow)
    assert (row.kind, row.status, row.recipient) == (INVITATION, "pending", "lea@example.org")
    assert (row.dift_id, row.programme_id) == ("dift_1", "prog_1")
    assert row.kind in TRANSACTIONAL  # never queued behind news
    assert row.not_after == NOW + timedelta(days=30)
    message = parsed(row)
    assert message["Subject"] == "Acme vous offre un dift de 20 €"  # one line: plain spaces
    text = text_of(row)
    link = "http://127.0.0.1:8001/difts/redeem/tok-dift_1"
    assert link in text
    assert f"20{NBSP}€ = 1{NBSP}repas à Les Petites Cantines Bagnolet" in text
    assert f"20{NBSP}€ = 74{NBSP}% d'un repas à Les Petites Cantines Bruz" in text
    assert "Merci pour cette **belle année** !" in text
    assert "valable jusqu'au 13 avril 2025" in text
    html = html_of(row)
    links = Links()
    links.feed(html)
    assert links.hrefs.count(link) == 2  # the button and the link written out
    assert "<strong>belle année</strong>" in html
    assert "<script>" not in html


def test_an_english_recipient_gets_an_english_invitation(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_en", locale="en", value=500))

    [row] = rows(uow)
    assert parsed(row)["Subject"] == "Acme gives you a €5 dift"
    text = text_of(row)
    assert "€5 = 37% of a meal at Les Petites Cantines Bagnolet" in text
    assert "€5 = 18% of a meal at Les Petites Cantines Bruz" in text
    assert "valid until April 13, 2025" in text
    assert "http://127.0.0.1:8001/difts/redeem/tok-dift_en" in text


def test_an_invitation_redelivered_or_announced_again_is_queued_once(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery
) -> None:
    issued = dift_issued(NOW, dift_id="dift_1")
    deliver(issued, issued, dift_issued(NOW, dift_id="dift_1"))

    assert len(rows(uow, INVITATION)) == 1
    kept = uow.difts.get("dift_1")
    assert kept is not None and kept.reminder_due_at == NOW + timedelta(days=27)


def test_an_anonymous_code_gets_no_email_but_is_kept_for_its_confirmation(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_code", email=None))

    assert rows(uow) == []
    kept = uow.difts.get("dift_code")
    assert kept is not None and kept.recipient is None and kept.reminder_due_at is None


# --- the reminder ---------------------------------------------------------------------------


def remind(uow: FakeUnitOfWork, stationery: Stationery, clock: Clock, after: timedelta) -> int:
    clock.now = NOW + after
    return handlers.release_due_reminders(uow, stationery, clock.now)


def test_one_reminder_goes_three_days_before_expiry_to_a_recipient_who_has_not_chosen(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_1", locale="fr"))

    assert remind(uow, stationery, clock, timedelta(days=26, hours=23)) == 0
    assert remind(uow, stationery, clock, timedelta(days=27)) == 1
    assert remind(uow, stationery, clock, timedelta(days=28)) == 0

    [row] = rows(uow, REMINDER)
    assert (row.status, row.dift_id, row.not_after) == (
        "pending",
        "dift_1",
        NOW + timedelta(days=30),
    )
    assert parsed(row)["Subject"] == (
        "Rappel : votre dift de 20 € offert par Acme expire le 13 avril 2025"
    )
    text = text_of(row)
    assert "http://127.0.0.1:8001/difts/redeem/tok-dift_1" in text
    assert f"20{NBSP}€ = 1{NBSP}repas à Les Petites Cantines Bagnolet" in text
    # Once queued, nothing keeps the personal link but the delivery log.
    assert uow.difts.get("dift_1").redeem_url is None  # type: ignore[union-attr]


def test_a_directed_dift_gets_no_reminder(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    issued = dift_issued(NOW, dift_id="dift_1")
    deliver(issued, dift_directed(issued, NOW + timedelta(days=2)))

    assert remind(uow, stationery, clock, timedelta(days=27)) == 0
    assert rows(uow, REMINDER) == []


def test_an_expired_dift_gets_no_reminder(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    issued = dift_issued(NOW, dift_id="dift_1", expires_in=timedelta(days=30))
    deliver(issued, dift_expired(issued, NOW + timedelta(days=1)))

    assert remind(uow, stationery, clock, timedelta(days=27)) == 0
    assert rows(uow, REMINDER) == []


def test_a_reminder_queued_then_directed_or_expired_before_it_went_is_skipped(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    chosen, forgotten = dift_issued(NOW, dift_id="dift_a"), dift_issued(NOW, dift_id="dift_b")
    deliver(chosen, forgotten)
    assert remind(uow, stationery, clock, timedelta(days=27)) == 2

    deliver(dift_directed(chosen, clock.now), dift_expired(forgotten, clock.now))

    assert sorted((r.dift_id, r.status, r.last_error) for r in rows(uow, REMINDER)) == [
        ("dift_a", "skipped", "directed"),
        ("dift_b", "skipped", "expired"),
    ]


def test_a_reminder_due_once_the_dift_has_expired_is_logged_skipped_not_sent(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_1", expires_in=timedelta(days=30)))

    # The worker was down from before the reminder was due until after the expiry.
    assert remind(uow, stationery, clock, timedelta(days=30)) == 0

    [row] = rows(uow, REMINDER)
    assert (row.status, row.last_error, row.message) == ("skipped", "expired", None)
    assert remind(uow, stationery, clock, timedelta(days=31)) == 0


def test_a_dift_expiring_within_the_reminder_days_gets_its_invitation_only(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_1", expires_in=timedelta(days=2)))

    assert uow.difts.get("dift_1").reminder_due_at is None  # type: ignore[union-attr]
    assert remind(uow, stationery, clock, timedelta(days=1)) == 0
    assert [r.kind for r in rows(uow)] == [INVITATION]


def test_a_bounced_invitation_gets_no_reminder(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_1"))
    refused = smtplib.SMTPRecipientsRefused({"lea@example.org": (550, b"5.1.1 no such user")})
    a_sender(uow, ScriptedSmtp([refused])).send_due(SOON)

    assert remind(uow, stationery, clock, timedelta(days=27)) == 0
    assert rows(uow, REMINDER) == []


# --- the confirmation and the news of the chosen causes -------------------------------------


def test_a_directed_dift_is_confirmed_once_saying_where_it_went_and_what_it_funds(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    issued = dift_issued(NOW, dift_id="dift_1", locale="fr")
    split = (("camp_bagnolet", 1400), ("camp_bruz", 600))
    directed = dift_directed(issued, NOW, allocations=split)
    deliver(issued, directed, directed, dift_directed(issued, NOW, allocations=split))

    [row] = rows(uow, CONFIRMATION)
    assert (row.status, row.dift_id, row.recipient) == ("pending", "dift_1", "lea@example.org")
    assert parsed(row)["Subject"] == "Merci : votre dift de 20 € est parti"
    text = text_of(row)
    assert (
        f"- 14{NBSP}€ à Les Petites Cantines Bagnolet "
        f"(14{NBSP}€ = 1{NBSP}repas à Les Petites Cantines Bagnolet)"
    ) in text
    assert (
        f"- 6{NBSP}€ à Les Petites Cantines Bruz "
        f"(6{NBSP}€ = 22{NBSP}% d'un repas à Les Petites Cantines Bruz)"
    ) in text
    assert "nouvelles" not in text  # no consent asked, none recorded
    Links().feed(html_of(row))


def test_the_confirmation_goes_to_the_recipient_kept_from_the_invitation(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    issued = dift_issued(NOW, dift_id="dift_1", locale="en")
    deliver(issued, dift_directed(issued, NOW, with_recipient=False))

    [row] = rows(uow, CONFIRMATION)
    assert row.recipient == "lea@example.org"
    assert "- €20 to Les Petites Cantines Bagnolet (€20 = 1 meal at" in text_of(row)


def test_an_anonymous_code_directed_without_a_recipient_is_confirmed_to_nobody(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    issued = dift_issued(NOW, dift_id="dift_code", email=None)
    deliver(issued, dift_directed(issued, NOW, with_recipient=False))

    assert rows(uow) == []
    assert uow.difts.get("dift_code").settled == "directed"  # type: ignore[union-attr]


def test_consent_to_the_chosen_causes_news_is_recorded_only_when_asked(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    asked, not_asked = dift_issued(NOW, dift_id="d1"), dift_issued(NOW, dift_id="d2")
    asked.data["recipient"]["email"] = "asked@example.org"
    not_asked.data["recipient"]["email"] = "quiet@example.org"
    split = (("camp_bagnolet", 1000), ("camp_bruz", 1000))
    deliver(
        asked,
        not_asked,
        dift_directed(asked, NOW, allocations=split, updates_opt_in=True),
        dift_directed(not_asked, NOW, allocations=split, updates_opt_in=False),
    )

    for campaign in ("camp_bagnolet", "camp_bruz"):
        donor = uow.donors.get(campaign, "asked@example.org")
        assert donor is not None and donor.wants_news
        assert (donor.consent.source, donor.consent.consent_at) == (CONSENT_FROM_DIFT, NOW)
        assert uow.donors.get(campaign, "quiet@example.org") is None
    confirmation = next(r for r in rows(uow, CONFIRMATION) if r.recipient == "asked@example.org")
    assert (
        "Vous recevrez les nouvelles de Les Petites Cantines Bagnolet et Les Petites Cantines Bruz"
        in text_of(confirmation)
    )

    # The difteur gets the campaign's news, with its one-click unsubscribe, as donors do.
    deliver(news(campaign="camp_bagnolet"))
    [post] = rows(uow, "news")
    assert post.recipient == "asked@example.org"
    assert "List-Unsubscribe" in parsed(post)


# --- what the sender concludes, and what it publishes ---------------------------------------


def published(uow: FakeUnitOfWork) -> list[tuple[str, str, dict[str, object]]]:
    return [
        (topic, key, load_data(event.type, event.data))
        for topic, key, event in uow.outbox.events
        if event.type == DIFT_INVITATION_SENT
    ]


def test_a_sent_invitation_publishes_dift_invitation_sent_in_its_transaction(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_1"))
    smtp = ScriptedSmtp([])
    a_sender(uow, smtp).send_due(SOON)

    [row] = rows(uow, INVITATION)
    assert row.status == "sent" and len(smtp.sent) == 1
    [(topic, key, data)] = published(uow)
    assert (topic, key) == (NOTIFICATIONS_TOPIC, "prog_1")
    assert (data["dift_id"], data["kind"], data["status"]) == ("dift_1", "invitation", "sent")


def test_a_5xx_refusal_of_an_invitation_is_a_bounce_recorded_and_published_not_retried(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_1"))
    refused = smtplib.SMTPRecipientsRefused({"lea@example.org": (550, b"5.1.1 no such user")})
    sender = a_sender(uow, ScriptedSmtp([refused]), ScriptedSmtp([]))
    sender.send_due(SOON)

    [row] = rows(uow, INVITATION)
    assert (row.status, row.attempts, row.next_attempt_at) == ("bounced", 1, None)
    assert row.last_error is not None and row.last_error.startswith("550")
    [(_topic, _key, data)] = published(uow)
    assert (data["kind"], data["status"]) == ("invitation", "bounced")
    assert sender.send_due(SOON + timedelta(days=1)) == 0


def test_a_4xx_reply_to_an_invitation_is_retried_and_publishes_nothing_yet(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_1"))
    busy = smtplib.SMTPRecipientsRefused({"lea@example.org": (451, b"4.7.1 try later")})
    a_sender(uow, ScriptedSmtp([busy])).send_due(SOON)

    [row] = rows(uow, INVITATION)
    assert (row.status, row.attempts) == ("pending", 1)
    assert published(uow) == []


def test_a_sent_reminder_is_published_as_a_reminder(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_1"))
    a_sender(uow, ScriptedSmtp([])).send_due(SOON)
    assert remind(uow, stationery, clock, timedelta(days=27)) == 1
    a_sender(uow, ScriptedSmtp([])).send_due(clock.now + timedelta(seconds=1))

    assert [(d["kind"], d["status"]) for _t, _k, d in published(uow)] == [
        ("invitation", "sent"),
        ("reminder", "sent"),
    ]


def test_a_reminder_still_pending_at_expiry_is_skipped_by_the_sender_never_sent(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    deliver(dift_issued(NOW, dift_id="dift_1", expires_in=timedelta(days=30)))
    assert remind(uow, stationery, clock, timedelta(days=27)) == 1
    invitation, reminder = rows(uow)
    invitation.status = "sent"
    smtp = ScriptedSmtp([])

    # The relay was down for days: the reminder is claimed again only after the expiry.
    a_sender(uow, smtp).send_due(NOW + timedelta(days=30, seconds=1))

    assert (reminder.status, reminder.last_error) == ("skipped", "expired")
    assert smtp.sent == []
    assert published(uow) == []


def test_a_refused_receipt_still_fails_and_publishes_nothing(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(booked("don_1", "zoe@example.org"))
    refused = smtplib.SMTPRecipientsRefused({"zoe@example.org": (550, b"5.1.1 no such user")})
    a_sender(uow, ScriptedSmtp([refused])).send_due(SOON)

    [row] = rows(uow, "receipt")
    assert row.status == "failed"
    assert uow.outbox.events == []
