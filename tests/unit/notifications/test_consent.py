"""Signed unsubscribe links and address pseudonyms: a link names the donor by a keyed HMAC,
never the address, and nobody can forge or alter one."""

from __future__ import annotations

import pytest

from services.notifications.consent import ConsentKeys, InvalidUnsubscribeLink, UnsubscribeRequest

KEYS = ConsentKeys("the-signing-secret")


def test_a_pseudonym_is_stable_case_blind_and_meaningless_without_the_secret() -> None:
    ref = KEYS.email_ref("Ada@Example.org ")
    assert ref == KEYS.email_ref("ada@example.org")
    assert "ada" not in ref and len(ref) == 64
    assert ConsentKeys("another-secret").email_ref("ada@example.org") != ref


def test_a_link_says_whom_to_unsubscribe_from_which_campaign() -> None:
    ref = KEYS.email_ref("ada@example.org")
    assert KEYS.read_unsubscribe_token(KEYS.unsubscribe_token(ref, "camp_1")) == (
        UnsubscribeRequest(ref, "camp_1")
    )
    assert KEYS.read_unsubscribe_token(KEYS.unsubscribe_token(ref, None)) == (
        UnsubscribeRequest(ref, None)
    )
    assert "ada" not in KEYS.unsubscribe_token(ref, "camp_1")


def test_a_tampered_forged_or_malformed_link_is_refused() -> None:
    ref = KEYS.email_ref("ada@example.org")
    token = KEYS.unsubscribe_token(ref, "camp_1")
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    forged = ConsentKeys("not-our-secret").unsubscribe_token(ref, None)
    for bad in (tampered, forged, "not-a-token", "garbage", ""):
        with pytest.raises(InvalidUnsubscribeLink):
            KEYS.read_unsubscribe_token(bad)
