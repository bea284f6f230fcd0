"""From the delivery log to SMTP, on an in-memory unit of work and a scripted relay: due
emails go over one connection and are marked sent; 4xx replies and an unreachable relay are
retried with backoff, 5xx replies fail for good; a lost connection hands the rest back; the
sender keeps its rate and skips news whose donor unsubscribed after it was claimed."""

from __future__ import annotations

import smtplib
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notifications.domain import BULK, TRANSACTIONAL, Consent, RetryPolicy
from services.notifications.sender import Sender, SmtpRelay
from tests.unit.notifications.conftest import Deliver, booked, gift, news, rows
from tests.unit.notifications.fakes import FakeUnitOfWork


@dataclass
class ScriptedSmtp:
    """An SMTP session that answers as told: the next replies for sendmail, in order."""

    replies: list[BaseException | None]
    sent: list[tuple[str, list[str], str]] = field(default_factory=list)
    closed: bool = False

    def sendmail(self, from_addr: str, to_addrs: list[str], msg: str) -> dict[str, Any]:
        reply = self.replies.pop(0) if self.replies else None
        if reply is not None:
            raise reply
        self.sent.append((from_addr, to_addrs, msg))
        return {}

    def noop(self) -> tuple[int, bytes]:
        return (250, b"OK")

    def quit(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class ScriptedRelay(SmtpRelay):
    """A relay that hands out one scripted session per batch, or refuses connections."""

    sessions: list[ScriptedSmtp | OSError] = field(default_factory=list)

    def connect(self) -> smtplib.SMTP:
        session = self.sessions.pop(0)
        if isinstance(session, OSError):
            raise session
        return session  # type: ignore[return-value]


def a_sender(
    uow: FakeUnitOfWork,
    *sessions: ScriptedSmtp | OSError,
    max_attempts: int = 3,
    rate: float = 0,
    kinds: tuple[str, ...] | None = None,
    batch_size: int = 20,
) -> Sender:
    relay = ScriptedRelay(host="relay.test", port=25, timeout=1, sessions=list(sessions))
    return Sender(
        lambda: uow,  # type: ignore[arg-type, return-value]
        relay,
        "thanks@difts.localhost",
        RetryPolicy(max_attempts=max_attempts, first_delay=timedelta(seconds=30)),
        batch_size=batch_size,
        rate=rate,
        kinds=kinds,
    )


def soon() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=1)


def receipts(deliver: Deliver, *addresses: str) -> None:
    for n, address in enumerate(addresses):
        deliver(booked(f"don_{n}", address))


def test_due_receipts_go_out_over_one_connection_and_are_marked_sent(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    receipts(deliver, "a@example.org", "b@example.org")
    session = ScriptedSmtp(replies=[])

    assert a_sender(uow, session).send_due(now=soon()) == 2

    assert sorted(to[0] for _from, to, _msg in session.sent) == ["a@example.org", "b@example.org"]
    assert session.closed
    assert [(row.status, row.attempts) for row in rows(uow)] == [("sent", 1)] * 2
    assert all(row.sent_at is not None for row in rows(uow))
    assert a_sender(uow, ScriptedSmtp(replies=[])).send_due(now=soon()) == 0


def test_an_unreachable_relay_schedules_a_later_attempt_with_backoff(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    moment = soon()
    receipts(deliver, "zoe@example.org")

    a_sender(uow, ConnectionRefusedError(111, "Connection refused")).send_due(now=moment)

    [row] = rows(uow)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "Connection refused" in (row.last_error or "")
    # 30 s, plus up to a quarter of jitter.
    assert row.next_attempt_at is not None
    assert moment + timedelta(seconds=30) <= row.next_attempt_at <= moment + timedelta(seconds=37.5)
    assert a_sender(uow).send_due(now=moment + timedelta(seconds=29)) == 0


def test_a_4xx_reply_is_retried_and_a_later_attempt_succeeds(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    receipts(deliver, "zoe@example.org")
    busy = smtplib.SMTPRecipientsRefused({"zoe@example.org": (451, b"4.7.1 try later")})
    a_sender(uow, ScriptedSmtp(replies=[busy])).send_due(now=soon())
    [row] = rows(uow)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "451 4.7.1 try later")

    assert row.next_attempt_at is not None
    a_sender(uow, ScriptedSmtp(replies=[])).send_due(now=row.next_attempt_at + timedelta(seconds=1))

    [row] = rows(uow)
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_5xx_reply_fails_the_delivery_for_good_with_the_reply(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    moment = soon()
    receipts(deliver, "zoe@example.org")
    refused = smtplib.SMTPRecipientsRefused(
        {"zoe@example.org": (550, b"5.1.1 <zoe@example.org>: no such user")}
    )

    a_sender(uow, ScriptedSmtp(replies=[refused])).send_due(now=moment)

    [row] = rows(uow)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "550 5.1.1 <zoe@example.org>: no such user"
    assert a_sender(uow).send_due(now=moment + timedelta(days=1)) == 0


def test_a_delivery_fails_after_the_maximum_number_of_attempts(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    receipts(deliver, "zoe@example.org")
    moment = soon()
    for _ in range(3):
        a_sender(uow, OSError("timed out"), max_attempts=3).send_due(now=moment)
        moment += timedelta(days=1)

    [row] = rows(uow)
    assert (row.status, row.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in (row.last_error or "")


def test_a_lost_connection_retries_that_delivery_and_hands_the_rest_back_unattempted(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    moment = soon()
    receipts(deliver, "a@example.org", "b@example.org")
    session = ScriptedSmtp(replies=[smtplib.SMTPServerDisconnected("gone")])

    a_sender(uow, session).send_due(now=moment)

    found = sorted(rows(uow), key=lambda row: row.attempts)
    assert [(row.status, row.attempts) for row in found] == [("pending", 0), ("pending", 1)]
    assert found[0].next_attempt_at == moment


def test_a_421_retries_that_email_later_and_hands_the_rest_back_unattempted(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    receipts(deliver, "a@example.org", "b@example.org")
    closing = smtplib.SMTPDataError(421, b"4.3.2 Service shutting down")
    session = ScriptedSmtp(replies=[closing, None])

    a_sender(uow, session).send_due(now=soon())

    assert session.sent == []  # the second email was not tried on a closed session
    states = sorted((row.status, row.attempts, row.last_error or "") for row in rows(uow))
    assert states == [("pending", 0, ""), ("pending", 1, "421 4.3.2 Service shutting down")]


def test_the_sender_keeps_to_its_rate(deliver: Deliver, uow: FakeUnitOfWork) -> None:
    receipts(deliver, *(f"donor-{n}@example.org" for n in range(6)))
    session = ScriptedSmtp(replies=[])

    started = time.monotonic()
    assert a_sender(uow, session, rate=20).send_due(now=soon()) == 6
    took = time.monotonic() - started

    assert len(session.sent) == 6
    assert took >= 5 / 20 * 0.9  # six messages at 20/s: five intervals of 50 ms


def test_news_whose_donor_unsubscribed_after_it_was_claimed_is_skipped_not_sent(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("ada@example.org", opt_in=True), gift("bob@example.org", opt_in=True))
    receipts(deliver, "ada@example.org", "bob@example.org")
    deliver(news())
    # Ada unsubscribes while her email sits in a sender's claimed batch: only her donor row
    # changes (the page's skip of pending rows has nothing left to catch).
    key = ("camp_1", "ada@example.org")
    ada = uow.donors.rows[key]
    uow.donors.rows[key] = replace(ada, consent=Consent(ada.consent.consent_at, "checkout", soon()))
    session = ScriptedSmtp(replies=[])

    while a_sender(uow, session).send_due(now=soon()):
        pass

    sent = sorted(to[0] for _from, to, _msg in session.sent)
    assert sent == ["ada@example.org", "bob@example.org", "bob@example.org"]  # 2 receipts, 1 news
    statuses = {(row.kind, row.recipient): row.status for row in rows(uow)}
    assert statuses[("news", "ada@example.org")] == "skipped"
    assert statuses[("news", "bob@example.org")] == "sent"


def test_an_idle_round_commits_nothing(uow: FakeUnitOfWork) -> None:
    # A commit wakes every waiting loop of the process, this lane too (services/shared/wake.py).
    assert a_sender(uow).send_due(now=soon()) == 0
    assert uow.committed == 0


def test_each_lane_claims_only_its_kinds(deliver: Deliver, uow: FakeUnitOfWork) -> None:
    deliver(gift("ada@example.org", opt_in=True))
    receipts(deliver, "ada@example.org")
    deliver(news())
    bulk = ScriptedSmtp(replies=[])
    transactional = ScriptedSmtp(replies=[])

    assert a_sender(uow, bulk, kinds=BULK).send_due(now=soon()) == 1
    statuses = {row.kind: row.status for row in rows(uow)}
    assert statuses == {"news": "sent", "receipt": "pending"}

    assert a_sender(uow, transactional, kinds=TRANSACTIONAL).send_due(now=soon()) == 1
    assert {row.kind: row.status for row in rows(uow)} == {"news": "sent", "receipt": "sent"}
    assert len(bulk.sent) == len(transactional.sent) == 1


def test_a_batchs_consent_is_read_in_one_query(deliver: Deliver, uow: FakeUnitOfWork) -> None:
    donors = [f"donor-{n}@example.org" for n in range(3)]
    deliver(*(gift(address, opt_in=True) for address in donors))
    deliver(news())
    asked: list[list[tuple[str, str]]] = []
    wanting_news = uow.donors.wanting_news

    def counted(recipients: Any) -> set[tuple[str, str]]:
        asked.append(list(recipients))
        return wanting_news(asked[-1])

    uow.donors.wanting_news = counted  # type: ignore[method-assign]
    session = ScriptedSmtp(replies=[])

    assert a_sender(uow, session, kinds=BULK).send_due(now=soon()) == 3

    assert len(asked) == 1 and len(asked[0]) == 3
    assert sorted(to[0] for _from, to, _msg in session.sent) == donors


def test_a_lane_keeps_its_session_while_batches_come_full(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    receipts(deliver, *(f"donor-{n}@example.org" for n in range(3)))
    session = ScriptedSmtp(replies=[])
    sender = a_sender(uow, session, batch_size=2)  # one session only: a second connect fails

    assert sender.send_due(now=soon()) == 2
    assert not session.closed
    assert sender.send_due(now=soon()) == 1

    assert len(session.sent) == 3
    assert session.closed  # the batch was not full: the lane hangs up


def test_each_accepted_message_is_committed_before_the_next_is_handed_over(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    # The at-least-once window: a crash may leave at most one accepted message unrecorded.
    receipts(deliver, *(f"donor-{n}@example.org" for n in range(5)))
    unrecorded: list[int] = []
    commits: list[int] = []

    @dataclass
    class Watched(ScriptedSmtp):
        def sendmail(self, from_addr: str, to_addrs: list[str], msg: str) -> dict[str, Any]:
            recorded = sum(1 for row in rows(uow) if row.status == "sent")
            unrecorded.append(len(self.sent) - recorded)
            commits.append(uow.committed)
            return super().sendmail(from_addr, to_addrs, msg)

    assert a_sender(uow, Watched(replies=[])).send_due(now=soon()) == 5

    assert unrecorded == [0] * 5
    assert commits == [commits[0] + n for n in range(5)]  # one commit per message
    assert [row.status for row in rows(uow)] == ["sent"] * 5
