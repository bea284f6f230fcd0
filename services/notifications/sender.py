"""Sending queued emails over SMTP: claim due deliveries, send them over one SMTP session, and
record each outcome in the delivery log the moment it is known. A 4xx reply or an unreachable
relay is retried with exponential backoff and jitter; a 5xx reply fails the delivery for good
(a dift's invitation or reminder: it bounced). A news or impact email whose donor unsubscribed
after it was queued is skipped, not sent; so is an email past its moment (a dift's reminder
once the dift expired). A dift's invitation or reminder sent or bounced publishes
dift_invitation_sent through the outbox, in the transaction that records the outcome.

Two lanes, each a sender of its own (a thread of the worker): transactional mail (receipts,
refund confirmations, a dift's invitation, reminder and confirmation) is sent as soon as it is
committed, never behind bulk mail; bulk mail (news, impact) is paced at
NOTIFICATIONS_SEND_RATE. A lane waits for work on a wake-up (a commit
in this process, PostgreSQL's NOTIFY of a new delivery from another), with a poll as the safety
net. Several workers may run: claims are leases, taken with SKIP LOCKED on PostgreSQL.

Delivery is at-least-once with a window of one message per lane: each outcome is committed
right after the relay's reply, so if the process dies between the relay's "250" and that
commit (a few milliseconds), that one message is sent again once its claim lapses. The other
claimed messages of the batch were either marked sent already or never handed to the relay,
so they go out exactly once. SMTP gives no way to ask a relay whether it already has a
message, so the window can be narrowed, not closed. Nothing is ever lost silently."""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from services.shared.metrics import EMAILS

from . import handlers
from .domain import DeliveryStatus, Kind, RetryPolicy, smtp_refusal
from .messages import mask_email, redact
from .store import DueDelivery
from .unit_of_work import NotificationsUnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpRelay:
    """Where and how to hand mail over."""

    host: str
    port: int
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout: float = 20.0

    @classmethod
    def of(cls, settings: Any) -> SmtpRelay:
        """The relay the service's settings name (SMTP_HOST, SMTP_PORT, ...)."""
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_username,
            settings.smtp_password,
            settings.smtp_starttls,
            settings.smtp_timeout,
        )

    def connect(self) -> smtplib.SMTP:
        """An open, greeted (and, if configured, encrypted and logged-in) SMTP session."""
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            smtp.close()
            raise
        return smtp


class _Outcomes:
    """Where a batch records that the relay accepted each message: one commit per message,
    right after the relay's reply (the at-least-once window stays one message wide), on one
    unit of work opened at the first outcome and held for the batch, so a message costs its
    UPDATE and COMMIT and not a connection and transaction of its own."""

    def __init__(self, unit_of_work: Callable[[], NotificationsUnitOfWork]) -> None:
        self.unit_of_work = unit_of_work
        self._open: NotificationsUnitOfWork | None = None

    def sent(self, delivery: DueDelivery, at: datetime) -> None:
        if self._open is None:
            self._open = self.unit_of_work().__enter__()
        if self._open.deliveries.mark_sent(delivery.id, at):
            handlers.invitation_concluded(self._open, delivery, DeliveryStatus.SENT, at)
        self._open.commit()

    def __enter__(self) -> _Outcomes:
        return self

    def __exit__(self, *exc: Any) -> None:
        opened, self._open = self._open, None
        if opened is not None:
            opened.__exit__(*exc)


class _NothingDue(Exception):
    """Leaves an empty claim's unit of work by rolling back: every commit wakes the loops
    waiting in this process (services/shared/wake.py), this lane too, so an idle round must
    commit nothing or the lane would wake itself forever."""


class _ConnectionLost(Exception):
    """The SMTP session is unusable; the rest of the batch waits for the next one."""


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {words}".strip()


class Waiter(Protocol):
    """What a lane waits on between rounds (services.shared.wake.Wakeup, or a plain sleep)."""

    def wait(self, stop: threading.Event, timeout: float) -> bool:
        """Return once woken (True), `timeout` seconds passed or `stop` is set (False)."""

    def close(self) -> None:
        """Let go of what waiting holds (a LISTEN connection)."""


class _Sleep:
    """Waiting with no wake-up: the poll alone."""

    def wait(self, stop: threading.Event, timeout: float) -> bool:
        stop.wait(timeout)
        return False

    def close(self) -> None:
        pass


# A throttled lane checks its donors' consent for what it sends in this many seconds at a
# time: an unsubscribe is never older than that when a news email goes.
CONSENT_FRESHNESS = 0.25
# Every commit in the process wakes every lane (its own and the other lane's too): an idle
# lane looks again at most this often, so a busy lane's commits do not keep it claiming.
LOOK_AGAIN_AFTER = 0.02


class Sender:
    """Sends due deliveries (of `kinds`, or of every kind) from the delivery log; several
    instances may run at once, in this process and in others."""

    def __init__(
        self,
        unit_of_work: Callable[[], NotificationsUnitOfWork],
        relay: SmtpRelay,
        envelope_from: str,
        policy: RetryPolicy | None = None,
        batch_size: int = 20,
        lease: timedelta = timedelta(minutes=10),
        idle_wait: float = 1.0,
        rate: float = 0.0,
        kinds: Sequence[str] | None = None,
        wakeup: Callable[[], Waiter] | None = None,
    ) -> None:
        self.unit_of_work = unit_of_work
        self.relay = relay
        self.envelope_from = envelope_from
        self.policy = policy or RetryPolicy()
        self.batch_size = batch_size
        self.lease = lease
        self.idle_wait = idle_wait
        self.kinds = tuple(kinds) if kinds is not None else None
        self.wakeup = wakeup or _Sleep
        # Messages per second (0: as fast as the relay takes them), so a fan-out to thousands
        # of donors does not trip the relay's or the receiving providers' limits.
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next_slot = 0.0
        self.consent_chunk = max(1, int(rate * CONSENT_FRESHNESS)) if rate > 0 else batch_size
        # The session stays open while batches come full, and is closed when the lane idles.
        self._smtp: smtplib.SMTP | None = None

    def send_due(self, now: datetime | None = None) -> int:
        """Claim one batch of due deliveries, try each, record the outcomes; return how many
        were claimed (0 when nothing is due)."""
        now = now or datetime.now(UTC)
        try:
            with self.unit_of_work() as uow:
                due = uow.deliveries.claim_due(now, self.batch_size, now + self.lease, self.kinds)
                if not due:
                    raise _NothingDue
        except _NothingDue:
            self._hang_up()
            return 0
        # Stop well before the claim lapses, so no other sender can take a row we still send.
        lease = self.lease.total_seconds()
        must_stop = time.monotonic() + lease - min(3 * self.relay.timeout, lease / 2)
        try:
            smtp = self._session()
        except (OSError, smtplib.SMTPException) as error:
            reason = f"relay unavailable: {type(error).__name__}: {error}"
            log.warning(
                "SMTP relay %s:%s unavailable (%s); %d deliveries will be retried",
                self.relay.host,
                self.relay.port,
                type(error).__name__,
                len(due),
            )
            for delivery in due:
                self._transient(delivery, reason, now)
            return len(due)
        try:
            self._send_batch(smtp, due, now, must_stop)
        except BaseException:
            self._hang_up()
            raise
        if len(due) < self.batch_size:
            self._hang_up()  # nothing more right now
        return len(due)

    def _send_batch(
        self, smtp: smtplib.SMTP, due: list[DueDelivery], now: datetime, must_stop: float
    ) -> None:
        sent = 0
        with _Outcomes(self.unit_of_work) as outcomes:
            for start in range(0, len(due), self.consent_chunk):
                chunk = due[start : start + self.consent_chunk]
                wanted = self._still_wanted(chunk, now)
                for index, delivery in enumerate(chunk, start):
                    if delivery.id not in wanted:
                        continue
                    self._wait_for_slot()
                    if time.monotonic() > must_stop:
                        self._release(due[index:], now)
                        return
                    try:
                        self._send(smtp, delivery, now, outcomes)
                    except _ConnectionLost:
                        self._drop()
                        self._release(due[index + 1 :], now)
                        return
                    sent += 1
        if sent:
            log.info("sent %d of %d claimed deliveries", sent, len(due))

    def _session(self) -> smtplib.SMTP:
        """The open session if it still answers, else a new one."""
        if self._smtp is not None:
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()
        self._smtp = self.relay.connect()
        return self._smtp

    def _hang_up(self) -> None:
        """Say goodbye to the relay, if a session is open."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def _drop(self) -> None:
        """Forget a session that is unusable."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _wait_for_slot(self) -> None:
        """Hold the pace of `rate` messages per second."""
        if not self.interval:
            return
        now = time.monotonic()
        if self._next_slot > now:
            time.sleep(self._next_slot - now)
        self._next_slot = max(now, self._next_slot) + self.interval

    def _still_wanted(self, deliveries: list[DueDelivery], now: datetime) -> set[str]:
        """The ids of the deliveries to send: a news or impact email goes only if its donor
        has not unsubscribed meanwhile (one query for them all), and no email goes past its
        moment (a dift's, once it expired); the others are skipped."""
        ids = {delivery.id for delivery in deliveries}
        late = [d for d in deliveries if d.not_after is not None and now >= d.not_after]
        by_consent = [delivery for delivery in deliveries if Kind(delivery.kind).needs_consent]
        if not by_consent and not late:
            return ids
        with self.unit_of_work() as uow:
            wanting = uow.donors.wanting_news((d.campaign_id, d.recipient) for d in by_consent)
            unwanted = [d for d in by_consent if (d.campaign_id, d.recipient) not in wanting]
            uow.deliveries.mark_all_skipped([d.id for d in unwanted], "unsubscribed")
            uow.deliveries.mark_all_skipped([d.id for d in late], "expired")
        for delivery in unwanted:
            EMAILS.labels(delivery.kind, "skipped").inc()
            log.info("delivery %s skipped: the donor unsubscribed", delivery.id)
        for delivery in late:
            EMAILS.labels(delivery.kind, "skipped").inc()
            log.info("delivery %s skipped: its moment is past (expired)", delivery.id)
        return ids - {delivery.id for delivery in unwanted} - {delivery.id for delivery in late}

    def _send(
        self, smtp: smtplib.SMTP, delivery: DueDelivery, now: datetime, outcomes: _Outcomes
    ) -> None:
        try:
            smtp.sendmail(self.envelope_from, [delivery.recipient], delivery.message)
        except smtplib.SMTPRecipientsRefused as refused:
            code, text = next(iter(refused.recipients.values()))
            self._refused(delivery, code, _reply(code, text), now)
        except smtplib.SMTPServerDisconnected as error:
            self._transient(delivery, f"connection lost: {error}", now)
            raise _ConnectionLost from error
        except smtplib.SMTPResponseException as error:
            self._refused(delivery, error.smtp_code, _reply(error.smtp_code, error.smtp_error), now)
        except (OSError, smtplib.SMTPException) as error:
            self._transient(delivery, f"{type(error).__name__}: {error}", now)
            raise _ConnectionLost from error
        else:
            outcomes.sent(delivery, datetime.now(UTC))
            EMAILS.labels(delivery.kind, "sent").inc()
            log.debug("sent delivery %s to %s", delivery.id, mask_email(delivery.recipient))

    def _refused(self, delivery: DueDelivery, code: int, reply: str, now: datetime) -> None:
        self._failed(delivery, reply, now, permanent=smtp_refusal(code))
        if code == 421:
            # "Service not available, closing": smtplib has closed the session already, so the
            # rest of the batch goes back unattempted instead of failing on it.
            raise _ConnectionLost(reply)

    def _transient(self, delivery: DueDelivery, reason: str, now: datetime) -> None:
        self._failed(delivery, reason, now)

    def _failed(
        self, delivery: DueDelivery, reason: str, now: datetime, permanent: bool = False
    ) -> None:
        """Record a failed attempt as the retry policy decides: again later, or for good (a
        dift's invitation or reminder refused for good bounced: the outbox says so)."""
        bounces = Kind(delivery.kind).invites
        outcome = self.policy.after_failure(delivery.attempts, reason, now, permanent, bounces)
        with self.unit_of_work() as uow:
            if outcome.status is DeliveryStatus.BOUNCED:
                if uow.deliveries.mark_bounced(delivery.id, reason):
                    handlers.invitation_concluded(uow, delivery, DeliveryStatus.BOUNCED, now)
            elif outcome.status is DeliveryStatus.FAILED:
                uow.deliveries.mark_failed(delivery.id, outcome.reason or reason)
            else:
                assert outcome.retry_at is not None
                uow.deliveries.mark_retry(delivery.id, reason, outcome.retry_at)
        if outcome.status is DeliveryStatus.BOUNCED:
            EMAILS.labels(delivery.kind, "bounced").inc()
            log.warning(
                "%s of dift %s to %s bounced: %s",
                delivery.kind,
                delivery.dift_id,
                mask_email(delivery.recipient),
                redact(reason),
            )
        elif outcome.status is DeliveryStatus.FAILED:
            EMAILS.labels(delivery.kind, "failed").inc()
            log.warning(
                "delivery %s to %s failed for good: %s",
                delivery.id,
                mask_email(delivery.recipient),
                redact(outcome.reason or reason),
            )
        else:
            assert outcome.retry_at is not None
            EMAILS.labels(delivery.kind, "retried").inc()
            log.info(
                "delivery %s to %s will be retried at %s: %s",
                delivery.id,
                mask_email(delivery.recipient),
                outcome.retry_at.isoformat(),
                redact(reason),
            )

    def _release(self, deliveries: list[DueDelivery], now: datetime) -> None:
        with self.unit_of_work() as uow:
            uow.deliveries.release([delivery.id for delivery in deliveries], now)

    def run(self, stop: threading.Event) -> None:
        """Send until `stop` is set: again at once while batches come full, else when woken
        (a delivery committed) or after `idle_wait` at the latest; on a database error, wait
        and try again."""
        waiter = self.wakeup()
        backoff = 0.5
        try:
            while not stop.is_set():
                looked = time.monotonic()
                try:
                    claimed = self.send_due()
                    backoff = 0.5
                except Exception:  # noqa: BLE001 - keep sending; claimed rows come back later
                    log.exception("sender failed; retrying in %.1fs", backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                if claimed < self.batch_size:
                    waiter.wait(stop, self.idle_wait)
                    if not claimed:
                        stop.wait(max(0.0, looked + LOOK_AGAIN_AFTER - time.monotonic()))
        finally:
            self._hang_up()
            waiter.close()


@dataclass(frozen=True)
class Lanes:
    """The worker's two senders: transactional mail at once, bulk mail at its pace."""

    transactional: Sender
    bulk: Sender

    def send_due(self, now: datetime | None = None) -> int:
        """One round of each lane, transactional first; how many deliveries they claimed."""
        return self.transactional.send_due(now) + self.bulk.send_due(now)

    def loops(self) -> dict[str, Callable[[threading.Event], None]]:
        """Each lane's loop, to run in a thread of its own."""
        return {"sender-transactional": self.transactional.run, "sender-bulk": self.bulk.run}

    def run(self, stop: threading.Event) -> None:
        """Run both lanes until `stop` is set."""
        threads = [
            threading.Thread(target=loop, args=(stop,), name=name, daemon=True)
            for name, loop in self.loops().items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
