"""Back-office accounts: make one (the CLI), sign in (a password checked, failures counted per
email and per address, a session opened), sign out (the session closed). No event leaves:
who signs in is no business of the other services."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..domain.accounts import (
    Account,
    AccountRefused,
    SignInLimits,
    check_new_account,
    hash_password,
    needs_rehash,
    normalise_email,
    password_matches,
)
from . import UnitOfWork

SESSION_LIFETIME = timedelta(hours=12)


def token_digest(token: str) -> str:
    """What is stored of a session token: its sha256, so a copy of the table signs nobody in."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CreateAccount:
    email: str
    name: str
    roles: frozenset[str]
    password: str
    sponsor_id: str | None = None


def create_account(command: CreateAccount, uow: UnitOfWork) -> Account:
    """Store a new account; AccountRefused names the field when it cannot be made."""
    email = normalise_email(command.email)
    check_new_account(email, command.name, command.roles, command.password)
    if "sponsor" in command.roles and not command.sponsor_id:
        raise AccountRefused("sponsor", "a sponsor's contact needs the sponsor's id")
    password_hash = hash_password(command.password)
    with uow:
        sponsor_id = None
        if command.sponsor_id:
            # Its id, or the seed key of a sponsor seed-demo made ("demo-sponsor").
            sponsor = uow.sponsors.get(command.sponsor_id) or uow.sponsors.by_seed_key(
                command.sponsor_id
            )
            if sponsor is None:
                raise AccountRefused("sponsor", f"no sponsor {command.sponsor_id}")
            sponsor_id = sponsor.id
        account = Account(
            id=str(uuid.uuid4()),
            email=email,
            name=command.name.strip(),
            roles=command.roles,
            password_hash=password_hash,
            sponsor_id=sponsor_id,
        )
        if not uow.accounts.add(account, datetime.now(UTC)):
            raise AccountRefused("email", f"{email} already has an account")
    return account


@dataclass(frozen=True)
class SignIn:
    email: str
    password: str
    address: str  # the client's address, counted against guessing from one place


@dataclass(frozen=True)
class SignedIn:
    account: Account
    token: str  # goes in the session cookie; only its digest is stored


class SignInRefused(Exception):
    """Wrong email or password (never which), or too many failures: `until` says when the
    next attempt is allowed."""

    def __init__(self, until: datetime | None = None) -> None:
        super().__init__("sign-in refused")
        self.until = until


def sign_in(command: SignIn, uow: UnitOfWork, limits: SignInLimits | None = None) -> SignedIn:
    """Check the password; open a session, or count the failure and raise SignInRefused."""
    limits = limits or SignInLimits()
    now = datetime.now(UTC)
    since = now - limits.window
    email = normalise_email(command.email)
    keys = (
        (f"email:{hashlib.sha256(email.encode()).hexdigest()[:40]}", limits.per_email),
        (f"address:{command.address[:60]}", limits.per_address),
    )
    with uow:
        for key, allowed in keys:
            failures, first = uow.accounts.failures(key, since)
            until = limits.refused_until(failures, allowed, first, now)
            if until is not None:
                raise SignInRefused(until)
        account = uow.accounts.by_email(email)
        if not password_matches(account.password_hash if account else None, command.password):
            for key, _allowed in keys:
                uow.accounts.count_failure(key, now, since)
            account = None  # the failures are committed as the block ends, then refused
        else:
            assert account is not None  # a password matches only an account's hash
            if needs_rehash(account.password_hash):
                uow.accounts.set_password_hash(account.id, hash_password(command.password))
            uow.accounts.clear_failures(keys[0][0])
            uow.accounts.forget_expired_sessions(now)
            token = secrets.token_urlsafe(32)
            digest = token_digest(token)
            uow.accounts.open_session(digest, account.id, now, now + SESSION_LIFETIME)
    if account is None:
        raise SignInRefused()
    return SignedIn(account, token)


def sign_out(token: str, uow: UnitOfWork) -> None:
    """Close the session: its cookie signs nobody in any more, even copied."""
    with uow:
        uow.accounts.close_session(token_digest(token))
