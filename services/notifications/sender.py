"""Sending queued emails over SMTP: claim due deliveries, send them over one connection per
batch at a throttled rate, and record each outcome in the delivery log the moment it is known.
A 4xx reply or an unreachable relay is retried with exponential backoff and jitter; a 5xx reply
fails the delivery for good. A news or impact email whose donor unsubscribed after it was
queued is skipped, not sent.

Delivery is at-least-once with a window of one message per sender: each outcome is committed
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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


class _ConnectionLost(Exception):
    """The SMTP session is unusable; the rest of the batch waits for the next one."""


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {words}".strip()


class Sender:
    """Sends due deliveries from the delivery log; several instances may run at once."""

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
    ) -> None:
        self.unit_of_work = unit_of_work
        self.relay = relay
        self.envelope_from = envelope_from
        self.policy = policy or RetryPolicy()
        self.batch_size = batch_size
        self.lease = lease
        self.idle_wait = idle_wait
        # Messages per second (0: as fast as the relay takes them), so a fan-out to thousands
        # of donors does not trip the relay's or the receiving providers' limits.
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next_slot = 0.0

    def send_due(self, now: datetime | None = None) -> int:
        """Claim one batch of due deliveries, try each, record the outcomes; return how many
        were claimed (0 when nothing is due)."""
        now = now or datetime.now(UTC)
        with self.unit_of_work() as uow:
            due = uow.deliveries.claim_due(now, self.batch_size, now + self.lease)
        if not due:
            return 0
        # Stop well before the claim lapses, so no other sender can take a row we still send.
        lease = self.lease.total_seconds()
        must_stop = time.monotonic() + lease - min(3 * self.relay.timeout, lease / 2)
        try:
            smtp = self.relay.connect()
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
            for index, delivery in enumerate(due):
                self._wait_for_slot()
                if time.monotonic() > must_stop:
                    self._release(due[index:], now)
                    break
                if not self._still_wanted(delivery):
                    continue
                try:
                    self._send(smtp, delivery, now)
                except _ConnectionLost:
                    self._release(due[index + 1 :], now)
                    break
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
        return len(due)

    def _wait_for_slot(self) -> None:
        """Hold the pace of `rate` messages per second."""
        if not self.interval:
            return
        now = time.monotonic()
        if self._next_slot > now:
            time.sleep(self._next_slot - now)
        self._next_slot = max(now, self._next_slot) + self.interval

    def _still_wanted(self, delivery: DueDelivery) -> bool:
        """A news or impact email is only sent if its donor has not unsubscribed meanwhile."""
        if not Kind(delivery.kind).needs_consent:
            return True
        with self.unit_of_work() as uow:
            donor = uow.donors.get(delivery.campaign_id, delivery.recipient)
            if donor is not None and donor.wants_news:
                return True
            uow.deliveries.mark_skipped(delivery.id, "unsubscribed")
        log.info("delivery %s skipped: the donor unsubscribed", delivery.id)
        return False

    def _send(self, smtp: smtplib.SMTP, delivery: DueDelivery, now: datetime) -> None:
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
            with self.unit_of_work() as uow:
                uow.deliveries.mark_sent(delivery.id, datetime.now(UTC))
            log.info("sent delivery %s to %s", delivery.id, mask_email(delivery.recipient))

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
        """Record a failed attempt as the retry policy decides: again later, or for good."""
        outcome = self.policy.after_failure(delivery.attempts, reason, now, permanent)
        with self.unit_of_work() as uow:
            if outcome.status is DeliveryStatus.FAILED:
                uow.deliveries.mark_failed(delivery.id, outcome.reason or reason)
            else:
                assert outcome.retry_at is not None
                uow.deliveries.mark_retry(delivery.id, reason, outcome.retry_at)
        if outcome.status is DeliveryStatus.FAILED:
            log.warning(
                "delivery %s to %s failed for good: %s",
                delivery.id,
                mask_email(delivery.recipient),
                redact(outcome.reason or reason),
            )
        else:
            assert outcome.retry_at is not None
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
        """Send until `stop` is set; on a database error, wait and try again."""
        backoff = 0.5
        while not stop.is_set():
            try:
                claimed = self.send_due()
                backoff = 0.5
            except Exception:  # noqa: BLE001 - keep sending; claimed rows come back later
                log.exception("sender failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if claimed < self.batch_size:
                stop.wait(self.idle_wait)
