"""Back-office accounts, their signed-in sessions and the failed sign-ins counted against
guessing, on the unit of work's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from services.shared.db import as_utc, insert_if_absent

from ..domain.accounts import Account
from .tables import backoffice_accounts, backoffice_sessions, sign_in_failures


def account_of(row: Any) -> Account:
    return Account(
        id=row.id,
        email=row.email,
        name=row.name,
        roles=frozenset(filter(None, row.roles.split("+"))),
        password_hash=row.password_hash,
        sponsor_id=row.sponsor_id,
    )


class Accounts:
    """The accounts, their sessions (by token digest) and the failure counters."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, account: Account, now: datetime) -> bool:
        """Store a new account; False when its email already has one."""
        return insert_if_absent(
            self.conn,
            backoffice_accounts,
            {
                "id": account.id,
                "email": account.email,
                "name": account.name,
                "roles": "+".join(sorted(account.roles)),
                "password_hash": account.password_hash,
                "sponsor_id": account.sponsor_id,
                "created_at": now,
            },
            key="email",
        )

    def by_email(self, email: str) -> Account | None:
        row = self.conn.execute(
            select(backoffice_accounts).where(backoffice_accounts.c.email == email)
        ).first()
        return account_of(row) if row is not None else None

    def set_password_hash(self, account_id: str, password_hash: str) -> None:
        self.conn.execute(
            update(backoffice_accounts)
            .where(backoffice_accounts.c.id == account_id)
            .values(password_hash=password_hash)
        )

    def count(self) -> int:
        counted = select(func.count()).select_from(backoffice_accounts)
        return int(self.conn.execute(counted).scalar_one())

    # Sessions

    def open_session(self, digest: str, account_id: str, now: datetime, expires: datetime) -> None:
        self.conn.execute(
            backoffice_sessions.insert().values(
                digest=digest, account_id=account_id, created_at=now, expires_at=expires
            )
        )

    def close_session(self, digest: str) -> None:
        self.conn.execute(delete(backoffice_sessions).where(backoffice_sessions.c.digest == digest))

    def forget_expired_sessions(self, now: datetime) -> None:
        expired = backoffice_sessions.c.expires_at <= now
        self.conn.execute(delete(backoffice_sessions).where(expired))

    # Failed sign-ins

    def failures(self, key: str, since: datetime) -> tuple[int, datetime | None]:
        """The failures counted for `key` in a window that started after `since`."""
        row = self.conn.execute(
            select(sign_in_failures).where(sign_in_failures.c.key == key)
        ).first()
        if row is None or as_utc(row.first_failure_at) <= since:
            return 0, None
        return int(row.failures), as_utc(row.first_failure_at)

    def count_failure(self, key: str, now: datetime, since: datetime) -> None:
        """One more failure for `key`; a window older than `since` starts again at one."""
        counted, _first = self.failures(key, since)
        if counted == 0:
            self.conn.execute(delete(sign_in_failures).where(sign_in_failures.c.key == key))
            self.conn.execute(
                sign_in_failures.insert().values(key=key, failures=1, first_failure_at=now)
            )
        else:
            self.conn.execute(
                update(sign_in_failures)
                .where(sign_in_failures.c.key == key)
                .values(failures=sign_in_failures.c.failures + 1)
            )

    def clear_failures(self, key: str) -> None:
        self.conn.execute(delete(sign_in_failures).where(sign_in_failures.c.key == key))


def session_account(conn: Connection, digest: str, now: datetime) -> Account | None:
    """The account a session token's digest signs in, unless the session ended or expired
    (a read: the pages' check of every request)."""
    sessions = backoffice_sessions.c
    row = conn.execute(
        select(backoffice_accounts)
        .join(backoffice_sessions, sessions.account_id == backoffice_accounts.c.id)
        .where(sessions.digest == digest, sessions.expires_at > now)
    ).first()
    return account_of(row) if row is not None else None
