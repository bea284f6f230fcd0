"""Back-office accounts: who signs in (campaign managers, finance staff, a sponsor's contact),
with which roles, and the rules their passwords and sign-in attempts follow.

Passwords are hashed with argon2id (argon2-cffi's PasswordHasher and its memory-hard
defaults); only the hash is stored. Nothing here touches a database or a request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ADMIN = "admin"  # a campaign manager: campaigns, news posts, their deliveries
FINANCE = "finance"  # finance staff: dashboards, journal, trial balance, reconciliation, close
SPONSOR = "sponsor"  # a company's contact: its own programmes of difts
ROLES = (ADMIN, FINANCE, SPONSOR)

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 200
_EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")

_HASHER = PasswordHasher()
# Verified against when the email is unknown, so a wrong email costs what a wrong password does
# and the time taken says nothing about which accounts exist.
_DUMMY_HASH = _HASHER.hash("difts-no-such-account")


class AccountRefused(ValueError):
    """An account that cannot be made: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Account:
    """A person who signs in to the back office."""

    id: str
    email: str
    name: str
    roles: frozenset[str]
    password_hash: str
    sponsor_id: str | None = None

    def has(self, role: str) -> bool:
        return role in self.roles


def normalise_email(raw: str) -> str:
    """The email as accounts are looked up by: trimmed, lower case."""
    return raw.strip().lower()


def check_new_account(email: str, name: str, roles: frozenset[str], password: str) -> None:
    """Raise AccountRefused naming the first thing wrong with a new account."""
    if not _EMAIL.match(email) or len(email) > 320:
        raise AccountRefused("email", "an email address like name@example.org is needed")
    if not name.strip() or len(name) > 200:
        raise AccountRefused("name", "a name of 1 to 200 characters is needed")
    if not roles or not roles <= set(ROLES):
        raise AccountRefused("roles", f"roles are among {', '.join(ROLES)}")
    check_password(password)


def check_password(password: str) -> None:
    """A password long enough to resist guessing, short enough to hash quickly."""
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AccountRefused(
            "password", f"the password needs at least {PASSWORD_MIN_LENGTH} characters"
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise AccountRefused(
            "password", f"the password has at most {PASSWORD_MAX_LENGTH} characters"
        )


def hash_password(password: str) -> str:
    """The argon2id hash (with its salt and parameters) to store."""
    return _HASHER.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed; an unknown account (None) costs the same time."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the stored hash was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class SignInLimits:
    """How many failed sign-ins are tolerated per email and per address, within a window."""

    per_email: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)

    def refused_until(
        self, failures: int, allowed: int, first_failure: datetime | None, now: datetime
    ) -> datetime | None:
        """When attempts are allowed again, or None when they are allowed now."""
        if first_failure is None or failures < allowed:
            return None
        until = first_failure + self.window
        return until if until > now else None
