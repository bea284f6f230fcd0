"""Giving through the handlers on an in-memory unit of work: a gift is priced and stored
pending once Stripe opened its checkout; a retry under the same Idempotency-Key gets the
first donation; a refused gift or an unreachable Stripe stores nothing; a donor who leaves the
checkout cancels a pending donation, once."""

from __future__ import annotations

import pytest

from services.donations.domain.donations import donation_id_for_retry
from services.donations.domain.giving import GiftRefused
from services.donations.handlers.campaigns import UnknownCampaign
from services.donations.handlers.giving import IdempotencyConflict, cancel_donation
from services.donations.payments import PaymentProviderError
from services.shared.events import DONATION_FAILED, DONATION_SUCCEEDED
from tests.unit.donations.conftest import (
    apply,
    pending_donation,
    published,
    session,
    start,
    status_of,
    stored,
    stripe_event,
)
from tests.unit.donations.fakes import FakePayments, FakeUnitOfWork


def test_a_gift_of_meals_is_stored_pending_with_its_checkout(
    uow: FakeUnitOfWork, payments: FakePayments
) -> None:
    donation = start(uow, payments, updates_opt_in=True, cover_fee=True)
    kept = stored(uow, donation.id)
    assert (kept.status.value, kept.amount.amount, kept.fee_covered.amount) == ("pending", 2767, 67)
    assert kept.priced_meals == 2  # what the donor chose on the form
    assert kept.checkout_session_id == f"cs_test_{donation.id}"
    assert kept.consent_at is not None
    [asked] = payments.sessions
    assert (asked.gift.amount, asked.fee_covered.amount) == (2767, 67)
    assert asked.success_url == f"http://t/donations/{donation.id}/thanks"
    assert published(uow) == []


def test_an_amount_is_priced_at_the_whole_meals_it_pays(
    uow: FakeUnitOfWork, payments: FakePayments
) -> None:
    donation = start(uow, payments, amount=2000, meals=None)
    assert (donation.amount.amount, donation.priced_meals) == (2000, 1)


def test_a_retry_with_the_same_idempotency_key_gets_the_first_donation(
    uow: FakeUnitOfWork, payments: FakePayments
) -> None:
    first = start(uow, payments, idempotency_key="key-2")
    again = start(uow, payments, idempotency_key="key-2")
    assert again.id == first.id == donation_id_for_retry("key-2", "canteens")
    assert len(payments.sessions) == 1 and len(uow.donations.rows) == 1
    with pytest.raises(IdempotencyConflict):
        start(uow, payments, idempotency_key="key-2", meals=3)


def test_a_refused_gift_or_an_unreachable_stripe_stores_nothing(uow: FakeUnitOfWork) -> None:
    with pytest.raises(GiftRefused) as refused:
        start(uow, FakePayments(), meals=None, amount=50)
    assert refused.value.field == "amount"
    with pytest.raises(GiftRefused) as too_much:
        start(uow, FakePayments(), meals=None, amount=1_000_000, cover_fee=True)
    assert too_much.value.field == "cover_fee"
    with pytest.raises(PaymentProviderError):
        start(uow, FakePayments(down=True))
    with pytest.raises(UnknownCampaign):
        start(uow, FakePayments(), campaign_slug="nope")
    assert uow.donations.rows == {}


def test_checkout_for_a_donation_not_yet_stored_is_applied_when_it_is(
    uow: FakeUnitOfWork, payments: FakePayments
) -> None:
    donation_id = donation_id_for_retry("key-1", "canteens")
    early = stripe_event("checkout.session.completed", session(donation_id, amount=2700))
    assert apply(uow, early) == "unmatched"
    answer = start(uow, payments, updates_opt_in=False, idempotency_key="key-1")
    assert answer.id == donation_id
    assert status_of(uow, donation_id) == "succeeded"
    assert len(published(uow, DONATION_SUCCEEDED)) == 1


def test_abandoned_checkout_is_canceled_never_succeeded(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    with uow:
        assert cancel_donation(donation_id, uow) == "canceled"
    with uow:
        assert cancel_donation(donation_id, uow) == "canceled"
    assert status_of(uow, donation_id) == "canceled"
    assert published(uow, DONATION_SUCCEEDED) == []
    [event] = published(uow, DONATION_FAILED)  # announced once, however often the page loads
    assert event["data"]["status"] == "canceled"


def test_only_a_known_donation_is_canceled(uow: FakeUnitOfWork) -> None:
    with uow:
        assert cancel_donation("no-such-donation", uow) is None
