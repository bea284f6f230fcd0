"""The donations service's unit of work: one transaction on its database, with the
repositories of campaigns, news posts, donations (their refunds, disputes, payouts), the
Stripe events received and the ledger's meal counts, sponsors, their programmes and difts, its
outbox and the ids of the events it processed (services/shared/unit_of_work.py).

On SQLite, writing transactions take turns through a lock of their own (a thread lock, and a
file lock beside the database for the other processes) before SQLite's: a writer then waits
in the kernel and starts as soon as the one before it ends, where SQLite's busy handler makes
it sleep and retry, in steps of up to 100 ms. Under a burst of webhooks that sleeping, not the
work, was what bounded them."""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection, Engine

from services.shared.unit_of_work import SqlUnitOfWork

from . import store
from .handlers import Repositories


class SqliteWriters:
    """Whose turn it is to write an SQLite database file: one writer in this process (a
    thread lock), one across processes (flock on `<database>.writers`)."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".writers")
        self.threads = threading.Lock()
        self.fd: int | None = None
        self.pid = 0

    def acquire(self) -> None:
        self.threads.acquire()
        try:
            if self.fd is None or self.pid != os.getpid():  # a forked child opens its own
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self.pid = os.getpid()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.threads.release()
            raise

    def release(self) -> None:
        try:
            if self.fd is not None:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.threads.release()


_WRITERS: dict[str, SqliteWriters] = {}
_WRITERS_LOCK = threading.Lock()


def sqlite_writers(engine: Engine) -> SqliteWriters | None:
    """The turn-taking of `engine`'s database when it is an SQLite file, else None."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    writers = _WRITERS.get(database)  # every unit of work asks: no path resolving each time
    if writers is None:
        with _WRITERS_LOCK:
            path = Path(database).resolve()
            same_file = next((w for w in _WRITERS.values() if w.database == path), None)
            writers = _WRITERS[database] = same_file or SqliteWriters(path)
    return writers


class DonationsUnitOfWork(SqlUnitOfWork, Repositories):
    """One transaction on the donations database, with the repositories handlers.Repositories
    names."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, store.outbox, store.processed)
        self._writers = sqlite_writers(engine)

    def __enter__(self) -> Self:
        if self._writers is None:
            return super().__enter__()
        self._writers.acquire()
        try:
            return super().__enter__()
        except BaseException:
            self._writers.release()
            raise

    def __exit__(self, *exc_info: Any, **_: Any) -> None:
        try:
            super().__exit__(*exc_info)
        finally:
            if self._writers is not None:
                self._writers.release()

    def bind(self, conn: Connection) -> None:
        """The repositories, on this transaction."""
        self.campaigns = store.Campaigns(conn)
        self.news = store.NewsPosts(conn)
        self.meals = store.CampaignMeals(conn)
        self.donations = store.Donations(conn)
        self.refunds = store.Refunds(conn)
        self.disputes = store.Disputes(conn)
        self.payouts = store.Payouts(conn)
        self.stripe_events = store.StripeEvents(conn)
        self.sponsors = store.Sponsors(conn)
        self.programmes = store.Programmes(conn)
        self.fundings = store.Fundings(conn)
        self.credits = store.Credits(conn)
        self.difts = store.Difts(conn)
        self.uploads = store.Uploads(conn)
        self.redemptions = store.RedemptionAttempts(conn)
        self.receipts = store.Receipts(conn)
        self.dift_bookings = store.DiftBookings(conn)
        self.accounts = store.Accounts(conn)


@dataclass
class _Waiting:
    """One webhook's row waiting for its commit."""

    row: tuple[str, str, str, datetime, str | None]
    done: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    fresh: bool = False
    error: BaseException | None = None


class StripeEventRecorder:
    """Records the Stripe events the webhook verified, committed before each webhook answers;
    the webhooks of one process that arrive together share one transaction (group commit):
    the first one writes every row waiting and commits, the others wait for that commit, and
    whoever comes while it commits is written by the next one. A transaction's cost (and on
    SQLite its turn at the write lock) is paid once per group instead of once per webhook."""

    def __init__(self, engine: Engine, max_group: int = 64) -> None:
        self.engine = engine
        self.max_group = max_group
        self._writers = sqlite_writers(engine)
        self._sqlite = store.SqliteReceiver(engine) if engine.dialect.name == "sqlite" else None
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._leading = False

    def receive(
        self,
        event_id: str,
        event_type: str,
        payload: str,
        when: datetime,
        correlation_id: str | None = None,
    ) -> bool:
        """Record one event (as StripeEvents.receive), returning once it is committed: False
        if its id was recorded before. Raises what the database raised."""
        mine = _Waiting((event_id, event_type, payload, when, correlation_id))
        with self._lock:
            self._waiting.append(mine)
            if not self._leading:
                self._leading = mine.leads = True
        if not mine.leads:
            mine.done.wait()
        if mine.leads:  # first, or handed the lead by the one before
            self._lead()
        if mine.error is not None:
            raise mine.error
        return mine.fresh

    def _lead(self) -> None:
        with self._lock:
            group = self._waiting[: self.max_group]
            del self._waiting[: self.max_group]
        try:
            self._commit(group)
        finally:
            for waiting in group:
                waiting.done.set()
            with self._lock:
                if self._waiting:
                    following = self._waiting[0]
                    following.leads = True
                    following.done.set()
                else:
                    self._leading = False

    def _commit(self, group: list[_Waiting]) -> None:
        try:
            self._write(group)
        except Exception as error:
            if len(group) == 1:
                group[0].error = error
                return
            # One row the database refuses must not fail the others: each on its own.
            for waiting in group:
                try:
                    self._write([waiting])
                except Exception as alone:  # noqa: BLE001 - raised in that webhook's request
                    waiting.error = alone

    def _write(self, group: list[_Waiting]) -> None:
        if self._sqlite is not None:
            fresh = self._write_on_sqlite(self._sqlite, group)
        else:
            with DonationsUnitOfWork(self.engine) as uow:
                fresh = [uow.stripe_events.receive(*waiting.row) for waiting in group]
        for waiting, was_fresh in zip(group, fresh, strict=True):
            waiting.fresh = was_fresh

    def _write_on_sqlite(self, receiver: store.SqliteReceiver, group: list[_Waiting]) -> list[bool]:
        """The group in one transaction on the driver's connection (a pooled one), in the
        database's writing turn, as DonationsUnitOfWork takes it."""
        rows = [store.received_row(*waiting.row) for waiting in group]
        if self._writers is not None:
            self._writers.acquire()
        try:
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    fresh = receiver.receive(cursor, rows)
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
                return fresh
            finally:
                connection.close()
        finally:
            if self._writers is not None:
                self._writers.release()
