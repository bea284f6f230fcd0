"""Back-office accounts' rules: argon2id hashes, password and email checks, the sign-in
limits' window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.donations.domain.accounts import (
    AccountRefused,
    SignInLimits,
    check_new_account,
    hash_password,
    normalise_email,
    password_matches,
)


def test_a_password_is_stored_as_an_argon2id_hash_that_only_it_matches() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
    assert password_matches(stored, "correct horse battery")
    assert not password_matches(stored, "correct horse batterY")
    assert hash_password("correct horse battery") != stored  # salted


def test_an_unknown_account_or_a_broken_hash_matches_no_password() -> None:
    assert not password_matches(None, "difts-no-such-account")  # the dummy hash's own text
    assert not password_matches("not-a-hash", "anything")


@pytest.mark.parametrize(
    ("email", "name", "roles", "password", "field"),
    [
        ("not-an-email", "Ada", {"admin"}, "long-enough-pass", "email"),
        ("ada@example.org", " ", {"admin"}, "long-enough-pass", "name"),
        ("ada@example.org", "Ada", set(), "long-enough-pass", "roles"),
        ("ada@example.org", "Ada", {"root"}, "long-enough-pass", "roles"),
        ("ada@example.org", "Ada", {"finance"}, "short", "password"),
        ("ada@example.org", "Ada", {"finance"}, "x" * 201, "password"),
    ],
)
def test_a_new_account_is_refused_naming_the_field(
    email: str, name: str, roles: set[str], password: str, field: str
) -> None:
    with pytest.raises(AccountRefused) as refused:
        check_new_account(email, name, frozenset(roles), password)
    assert refused.value.field == field


def test_a_good_account_passes_and_emails_are_compared_in_lower_case() -> None:
    check_new_account("ada@example.org", "Ada", frozenset({"admin", "finance"}), "x" * 12)
    assert normalise_email("  Ada@Example.ORG ") == "ada@example.org"


def test_sign_in_is_refused_after_the_allowed_failures_until_the_window_ends() -> None:
    limits = SignInLimits(per_email=5, window=timedelta(minutes=15))
    first = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    now = first + timedelta(minutes=5)
    assert limits.refused_until(4, 5, first, now) is None
    assert limits.refused_until(5, 5, first, now) == first + timedelta(minutes=15)
    assert limits.refused_until(9, 5, first, first + timedelta(minutes=16)) is None
    assert limits.refused_until(0, 5, None, now) is None
