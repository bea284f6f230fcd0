"""What the donations service learns from Stripe about a payment, against stripe-mock."""

from __future__ import annotations

import pytest

from services.donations.payments import StripePayments

pytestmark = pytest.mark.integration


def test_a_charge_that_is_not_the_payments_own_is_not_attributed_to_it(
    stripe_mock_url: str,
) -> None:
    # stripe-mock answers every payment intent with the same fixture charge, which names no
    # payment intent: attributing it would make every gift after the first a "duplicate".
    balance = StripePayments("sk_test_123", stripe_mock_url)
    first = balance.payment_facts("pi_first_gift")
    second = balance.payment_facts("pi_second_gift")
    assert first.charge_id is None and second.charge_id is None
    assert first.fee is None and first.net is None


def test_a_payment_without_an_intent_has_no_facts(stripe_mock_url: str) -> None:
    assert StripePayments("sk_test_123", stripe_mock_url).payment_facts(None).charge_id is None
