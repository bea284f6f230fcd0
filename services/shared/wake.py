"""Waking a loop (the outbox relay, the webhook applier, the email sender) as soon as what it
waits for is committed, instead of when its poll comes around; the poll stays, as the safety
net.

- In the same process, every commit that wrote on the engine rings, once it is done: a
  consumer thread's batch wakes the relay thread of its worker at once.
- Across processes on PostgreSQL, a trigger on the table calls pg_notify at commit
  (`notify_on_insert`, in a service's migration) and the loop LISTENs on its own connection:
  a webhook answered by a gunicorn worker wakes the worker process at once.
- Across processes on SQLite there is no notification: the loop polls every `poll` seconds
  (a short, indexed query).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)


# What a connection's info holds between a write and the moment its commit is done.
_WROTE = "difts_wake_wrote"
_RING_DUE = "difts_wake_ring_due"
_WRITES = ("INSERT", "UPDATE", "DELETE", "WITH", "MERGE", "COPY")


class _Ring:
    """The pipes of the loops waiting on one engine: a commit that wrote something writes a
    byte to each, so a loop blocked in select() wakes at once.

    SQLAlchemy's `commit` event comes *before* the database commits: a loop woken then could
    look before the rows are visible and sleep again. So the commit only marks the connection,
    and the ring sounds when the connection is next used or given back to the pool, after the
    commit. A transaction that only read (an idle loop's round) rings nothing, so a loop never
    wakes itself."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pipes: list[int] = []

    def wrote(
        self,
        conn: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        if conn.info.get(_WROTE):
            return
        flagged = context is not None and (context.isinsert or context.isupdate or context.isdelete)
        if flagged or statement.lstrip()[:6].upper().startswith(_WRITES):
            conn.info[_WROTE] = True

    def committing(self, conn: Any) -> None:
        if conn.info.pop(_WROTE, False):
            conn.info[_RING_DUE] = True

    def rolling_back(self, conn: Any) -> None:
        conn.info.pop(_WROTE, None)

    def connection_used(self, conn: Any) -> None:
        if conn.info.pop(_RING_DUE, False):
            self.ring()

    def checked_in(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(_RING_DUE, False):
            self.ring()

    def ring(self) -> None:
        with self.lock:
            for write_end in self.pipes:
                try:
                    os.write(write_end, b"!")
                except (BlockingIOError, OSError):
                    pass  # full already: the loop has a wake-up waiting


_RINGS: weakref.WeakKeyDictionary[Engine, _Ring] = weakref.WeakKeyDictionary()
_RINGS_LOCK = threading.Lock()


def watch_commits(engine: Engine) -> None:
    """Listen to `engine`'s commits now, while no other thread uses it: make_engine calls it.
    SQLAlchemy's event lists are not safe to change while another thread's connection
    dispatches them ("deque mutated during iteration"), so a Wakeup made later, on an engine
    already in use, finds its listeners in place instead of adding them."""
    _ring_of(engine)


def _ring_of(engine: Engine) -> _Ring:
    """The ring the commits on `engine` sound (listening once per engine)."""
    with _RINGS_LOCK:
        ring = _RINGS.get(engine)
        if ring is None:
            ring = _RINGS[engine] = _Ring()
            event.listen(engine, "after_cursor_execute", ring.wrote)
            event.listen(engine, "commit", ring.committing)
            event.listen(engine, "rollback", ring.rolling_back)
            # After the commit: the connection's next transaction, or its return to the pool.
            event.listen(engine, "begin", ring.connection_used)
            event.listen(engine, "engine_connect", ring.connection_used)
            event.listen(engine.pool, "checkin", ring.checked_in)
        return ring


def notify_on_insert(table: str, channel: str) -> tuple[str, str]:
    """The PostgreSQL statements (create, drop) of a trigger that notifies `channel` once per
    statement inserting into `table`; delivered to listeners when the transaction commits."""
    function = f"{table}_notify_{channel}"
    create = f"""
        CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$;
        CREATE TRIGGER {function} AFTER INSERT ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION {function}();
    """
    drop = f"DROP TRIGGER IF EXISTS {function} ON {table}; DROP FUNCTION IF EXISTS {function}();"
    return create, drop


class Wakeup:
    """What a loop waits on between rounds: a commit in this process, a notification on
    `channel` from another (PostgreSQL), or `poll` seconds, whichever comes first."""

    def __init__(self, engine: Engine, channel: str, poll: float = 0.05) -> None:
        self.engine = engine
        self.channel = channel
        self.poll = poll
        self._read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        os.set_blocking(self._read_end, False)
        self._write_end = write_end
        self._ring = _ring_of(engine)
        with self._ring.lock:
            self._ring.pipes.append(write_end)
        self._listener: Any = None

    def wait(self, stop: threading.Event, timeout: float) -> bool:
        """Return once woken (True), or after `timeout` seconds (at most `poll` on SQLite, a
        second on PostgreSQL) or when `stop` is set (False; heard within 0.25 s)."""
        waiting_on = [self._read_end]
        if self.engine.dialect.name == "postgresql" and self._listening():
            waiting_on.append(self._listener.fileno())
            timeout = min(timeout, 1.0)
        else:
            timeout = min(timeout, self.poll)
        deadline = time.monotonic() + timeout
        ready: list[Any] = []
        # In slices, so a stop is heard within a quarter of a second whatever the poll.
        while not ready:
            left = deadline - time.monotonic()
            if stop.is_set() or left <= 0:
                return False
            try:
                ready, _, _ = select.select(waiting_on, [], [], min(left, 0.25))
            except (OSError, ValueError):
                self.close()
                return False
        if self._read_end in ready:
            self._drain()
        if self._listener is not None and self._listener.fileno() in ready:
            try:
                for _notice in self._listener.notifies(timeout=0, stop_after=64):
                    pass
            except Exception:  # noqa: BLE001 - a lost connection: listen again next time
                log.warning("lost the LISTEN connection on %s", self.channel)
                self.close()
        return bool(ready)

    def _drain(self) -> None:
        try:
            while os.read(self._read_end, 4096):
                pass
        except BlockingIOError:
            pass

    def _listening(self) -> bool:
        """A connection of our own LISTENing on the channel (made once, remade if lost)."""
        if self._listener is not None:
            return True
        import psycopg

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        try:
            listener = psycopg.connect(conninfo, autocommit=True)
            listener.execute(f'LISTEN "{self.channel}"')
        except Exception:  # noqa: BLE001 - no listening: the poll serves
            log.warning("cannot LISTEN on %s; polling instead", self.channel)
            return False
        self._listener = listener
        return True

    def close(self) -> None:
        """Give the listening connection back (the loop may wait again: it listens anew)."""
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None
