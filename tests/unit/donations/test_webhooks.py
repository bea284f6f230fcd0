"""Every Stripe event type the donations service handles, applied through the handlers on an
in-memory unit of work: each outcome once, whatever is duplicated or reordered. Stripe is the
payments port's fake here (integration tests use stripe-mock)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.donations.domain.donations import derived_event_id
from services.donations.domain.payments import NO_FACTS, CheckoutPaid, PaymentFacts
from services.donations.handlers.webhooks import apply_kept_events
from services.shared.events import (
    DISPUTE_CLOSED,
    DISPUTE_OPENED,
    DONATION_FAILED,
    DONATION_REFUND_FAILED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    PAYOUT_PAID,
    load_data,
)
from tests.unit.donations.conftest import (
    amount_refunded,
    apply,
    dispute,
    pending_donation,
    published,
    refund,
    session,
    status_of,
    stripe_event,
)
from tests.unit.donations.fakes import FakePayments, FakeUnitOfWork


def test_paid_checkout_succeeds_once_with_fee_and_net_from_the_balance(
    uow: FakeUnitOfWork,
) -> None:
    donation_id = pending_donation(uow)
    event = stripe_event("checkout.session.completed", session(donation_id, pi="pi_1"))
    assert apply(uow, event) == "succeeded"
    assert apply(uow, event) == "duplicate"
    again = stripe_event("checkout.session.completed", session(donation_id, pi="pi_1"))
    assert apply(uow, again) == "already_succeeded"
    [succeeded] = published(uow, DONATION_SUCCEEDED)
    data = load_data(DONATION_SUCCEEDED, succeeded["data"])
    assert (data["fee"], data["net"]) == (66, 2634)
    assert (data["charge_id"], data["balance_transaction_id"]) == ("ch_pi_1", "txn_pi_1")
    assert data["consent_at"] is not None and data["updates_opt_in"] is True


def test_a_balance_transaction_of_another_payment_gives_no_fee(uow: FakeUnitOfWork) -> None:
    other_payment = FakePayments(PaymentFacts("ch_fixture", "txn_fixture", 0, 100, 100, "USD"))
    donation_id = pending_donation(uow)
    event = stripe_event("checkout.session.completed", session(donation_id, pi="pi_f"))
    assert apply(uow, event, other_payment) == "succeeded"
    data = published(uow, DONATION_SUCCEEDED)[0]["data"]
    assert (data["fee"], data["net"], data["charge_id"]) == (None, None, "ch_fixture")


def test_delayed_payment_waits_for_async_success(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    pending = session(donation_id, paid="unpaid")
    assert apply(uow, stripe_event("checkout.session.completed", pending)) == "awaiting_payment"
    assert status_of(uow, donation_id) == "pending"
    paid = stripe_event("checkout.session.async_payment_succeeded", session(donation_id))
    assert apply(uow, paid) == "succeeded"
    assert apply(uow, paid) == "duplicate"
    assert len(published(uow, DONATION_SUCCEEDED)) == 1


def test_async_payment_failure_fails_the_donation_once(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    failed = stripe_event("checkout.session.async_payment_failed", session(donation_id))
    assert apply(uow, failed) == "failed"
    assert apply(uow, failed) == "duplicate"
    again = stripe_event("checkout.session.async_payment_failed", session(donation_id))
    assert apply(uow, again) == "already_failed"
    [event] = published(uow, DONATION_FAILED)
    assert event["data"]["status"] == "failed"
    assert published(uow, DONATION_SUCCEEDED) == []


def test_expired_session_expires_the_donation_and_a_late_payment_still_counts(
    uow: FakeUnitOfWork,
) -> None:
    donation_id = pending_donation(uow)
    assert apply(uow, stripe_event("checkout.session.expired", session(donation_id))) == ("expired")
    assert status_of(uow, donation_id) == "expired"
    [event] = published(uow, DONATION_FAILED)
    assert event["data"]["status"] == "expired"
    # Stripe's word that money moved wins over an expiry delivered first.
    paid = stripe_event("checkout.session.completed", session(donation_id))
    assert apply(uow, paid) == "succeeded"
    expired_again = stripe_event("checkout.session.expired", session(donation_id))
    assert apply(uow, expired_again) == "already_succeeded"
    assert status_of(uow, donation_id) == "succeeded"


def test_charge_refunded_and_refund_created_count_one_refund_once(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    apply(uow, stripe_event("checkout.session.completed", session(donation_id, pi="pi_r")))
    first = refund("re_1", 1000, "pi_r")
    charge = {
        "id": "ch_pi_r",
        "object": "charge",
        "payment_intent": "pi_r",
        "amount_refunded": 1000,
        "refunds": {"data": [first]},
    }
    assert apply(uow, stripe_event("charge.refunded", charge)) == "partially_refunded"
    assert apply(uow, stripe_event("refund.created", first)) == "already_refunded"
    assert apply(uow, stripe_event("refund.updated", first)) == "already_refunded"
    assert status_of(uow, donation_id) == "succeeded"
    rest = refund("re_2", 1700, "pi_r")
    assert apply(uow, stripe_event("refund.created", rest)) == "refunded"
    charge_again = {**charge, "amount_refunded": 2700, "refunds": {"data": [rest, first]}}
    assert apply(uow, stripe_event("charge.refunded", charge_again)) == "already_refunded"
    events = [load_data(DONATION_REFUNDED, e["data"]) for e in published(uow, DONATION_REFUNDED)]
    assert [(e["refund_id"], e["amount"], e["total_refunded"]) for e in events] == [
        ("re_1", 1000, 1000),
        ("re_2", 1700, 2700),
    ]
    assert [e["fully_refunded"] for e in events] == [False, True]
    assert status_of(uow, donation_id) == "refunded"


def test_a_refund_larger_than_what_is_left_is_not_counted(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    apply(uow, stripe_event("checkout.session.completed", session(donation_id, pi="pi_x")))
    assert apply(uow, stripe_event("refund.created", refund("re_x", 5000, "pi_x"))) == (
        "refund_mismatch"
    )
    failed = refund("re_f", 100, "pi_x", status="failed")
    assert apply(uow, stripe_event("refund.updated", failed)) == "refund_failed"
    assert published(uow, DONATION_REFUNDED) == []


def test_a_counted_refund_that_fails_is_reversed_once_and_announced_once(
    uow: FakeUnitOfWork,
) -> None:
    donation_id = pending_donation(uow)
    apply(uow, stripe_event("checkout.session.completed", session(donation_id, pi="pi_rf")))
    assert apply(uow, stripe_event("refund.created", refund("re_rf", 2700, "pi_rf"))) == (
        "refunded"
    )
    assert (status_of(uow, donation_id), amount_refunded(uow, donation_id)) == (
        "refunded",
        2700,
    )
    failed = {
        **refund("re_rf", 2700, "pi_rf", status="failed"),
        "failure_balance_transaction": "txn_re_rf_failure",
    }
    assert apply(uow, stripe_event("refund.failed", failed)) == "refund_reversed"
    # Stripe says it again, under other event types: nothing more happens.
    assert apply(uow, stripe_event("refund.updated", failed)) == "refund_already_failed"
    assert apply(uow, stripe_event("charge.refund.updated", failed)) == ("refund_already_failed")
    # A late copy of the refund's creation does not count it again.
    created_again = stripe_event("refund.created", refund("re_rf", 2700, "pi_rf", "pending"))
    assert apply(uow, created_again) == "refund_already_failed"
    assert (status_of(uow, donation_id), amount_refunded(uow, donation_id)) == (
        "succeeded",
        0,
    )
    [event] = published(uow, DONATION_REFUND_FAILED)
    data = load_data(DONATION_REFUND_FAILED, event["data"])
    assert (data["refund_id"], data["amount"], data["currency"]) == ("re_rf", 2700, "EUR")
    assert (data["total_refunded"], data["balance_transaction_id"]) == (0, "txn_re_rf_failure")
    assert event["id"] == derived_event_id("re_rf", "refund_failed")
    assert len(published(uow, DONATION_REFUNDED)) == 1


def test_a_failed_partial_refund_leaves_the_other_refunds_counted(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    apply(uow, stripe_event("checkout.session.completed", session(donation_id, pi="pi_pf")))
    apply(uow, stripe_event("refund.created", refund("re_p1", 1000, "pi_pf")))
    apply(uow, stripe_event("refund.created", refund("re_p2", 500, "pi_pf", "pending")))
    canceled = refund("re_p2", 500, "pi_pf", status="canceled")
    assert apply(uow, stripe_event("refund.updated", canceled)) == "refund_reversed"
    assert (status_of(uow, donation_id), amount_refunded(uow, donation_id)) == (
        "succeeded",
        1000,
    )
    [event] = published(uow, DONATION_REFUND_FAILED)
    assert event["data"]["total_refunded"] == 1000
    # What the failed refund gave back to the donation can be refunded for real.
    assert apply(uow, stripe_event("refund.created", refund("re_p3", 1700, "pi_pf"))) == (
        "refunded"
    )
    assert amount_refunded(uow, donation_id) == 2700


def test_a_refund_that_failed_before_it_was_seen_never_counts(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    apply(uow, stripe_event("checkout.session.completed", session(donation_id, pi="pi_ff")))
    failed = refund("re_ff", 2700, "pi_ff", status="failed")
    assert apply(uow, stripe_event("refund.failed", failed)) == "refund_failed"
    assert apply(uow, stripe_event("refund.failed", failed)) == "refund_already_failed"
    for kind, status in (("refund.created", "pending"), ("refund.updated", "succeeded")):
        late = stripe_event(kind, refund("re_ff", 2700, "pi_ff", status=status))
        assert apply(uow, late) == "refund_already_failed"
    charge = {
        "id": "ch_pi_ff",
        "object": "charge",
        "payment_intent": "pi_ff",
        "refunds": {"data": [refund("re_ff", 2700, "pi_ff", status="pending")]},
    }
    assert apply(uow, stripe_event("charge.refunded", charge)) == "refund_already_failed"
    assert (status_of(uow, donation_id), amount_refunded(uow, donation_id)) == (
        "succeeded",
        0,
    )
    assert published(uow, DONATION_REFUNDED) == []
    assert published(uow, DONATION_REFUND_FAILED) == []


def test_a_refund_failure_before_its_payment_waits_and_then_counts_nothing(
    uow: FakeUnitOfWork,
) -> None:
    donation_id = pending_donation(uow)
    failed = stripe_event("refund.failed", refund("re_w", 2700, "pi_w", status="failed"))
    created = stripe_event("refund.created", refund("re_w", 2700, "pi_w", status="pending"))
    assert apply(uow, failed) == "waiting"
    assert apply(uow, created) == "waiting"
    paid = stripe_event("checkout.session.completed", session(donation_id, pi="pi_w"))
    assert apply(uow, paid) == "succeeded"
    assert (status_of(uow, donation_id), amount_refunded(uow, donation_id)) == (
        "succeeded",
        0,
    )
    assert [e["type"] for e in published(uow)] == [DONATION_SUCCEEDED]


def test_refund_before_the_paid_checkout_is_kept_and_applied_after_it(
    uow: FakeUnitOfWork,
) -> None:
    donation_id, early = refund_before_payment(uow, "re_early", 2700, "pi_early")
    assert apply(uow, early) == "duplicate"
    assert published(uow) == []
    paid = stripe_event("checkout.session.completed", session(donation_id, pi="pi_early"))
    assert apply(uow, paid) == "succeeded"
    assert [e["type"] for e in published(uow)] == [DONATION_SUCCEEDED, DONATION_REFUNDED]
    assert status_of(uow, donation_id) == "refunded"
    row = uow.stripe_events.rows[early["id"]]
    assert row.outcome == "refunded" and row.payload is None


def refund_before_payment(
    uow: FakeUnitOfWork, refund_id: str, amount: int, pi: str
) -> tuple[str, dict[str, Any]]:
    """A pending donation, and a refund of its payment that arrived first: it waits."""
    donation_id = pending_donation(uow)
    early = stripe_event("refund.created", refund(refund_id, amount, pi))
    assert apply(uow, early) == "waiting"
    return donation_id, early


def test_dispute_opened_then_won_reinstates_the_donation(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    apply(uow, stripe_event("checkout.session.completed", session(donation_id, pi="pi_d")))
    opened = stripe_event("charge.dispute.created", dispute("dp_1", "pi_d", "needs_response"))
    assert apply(uow, opened) == "dispute_opened"
    assert apply(uow, opened) == "duplicate"
    again = stripe_event("charge.dispute.created", dispute("dp_1", "pi_d", "needs_response"))
    assert apply(uow, again) == "already_disputed"
    assert status_of(uow, donation_id) == "disputed"
    won = stripe_event("charge.dispute.closed", dispute("dp_1", "pi_d", "won"))
    assert apply(uow, won) == "dispute_won"
    won_again = stripe_event("charge.dispute.closed", dispute("dp_1", "pi_d", "won"))
    assert apply(uow, won_again) == "already_closed"
    assert status_of(uow, donation_id) == "succeeded"
    [open_event] = published(uow, DISPUTE_OPENED)
    [closed_event] = published(uow, DISPUTE_CLOSED)
    assert open_event["data"]["fee"] == 1500
    closed = load_data(DISPUTE_CLOSED, closed_event["data"])
    assert (closed["status"], closed["amount_reinstated"], closed["fee_reinstated"]) == (
        "won",
        2700,
        1500,
    )


def test_dispute_closed_before_it_opened_waits_then_counts_lost(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    lost = stripe_event("charge.dispute.closed", dispute("dp_2", "pi_l", "lost"))
    opened = stripe_event("charge.dispute.created", dispute("dp_2", "pi_l", "needs_response"))
    assert apply(uow, lost) == "waiting"
    assert apply(uow, opened) == "waiting"  # the payment itself is not known yet
    paid = stripe_event("checkout.session.completed", session(donation_id, pi="pi_l"))
    assert apply(uow, paid) == "succeeded"
    assert [e["type"] for e in published(uow)] == [
        DONATION_SUCCEEDED,
        DISPUTE_OPENED,
        DISPUTE_CLOSED,
    ]
    closed = published(uow, DISPUTE_CLOSED)[0]["data"]
    assert (closed["status"], closed["amount_reinstated"]) == ("lost", 0)
    assert status_of(uow, donation_id) == "disputed"


def test_payout_paid_lists_its_balance_transactions_once(uow: FakeUnitOfWork) -> None:
    payout = {
        "id": "po_1",
        "object": "payout",
        "amount": 12345,
        "currency": "eur",
        "arrival_date": 1_767_225_600,
        "status": "paid",
    }
    payments = FakePayments()
    assert apply(uow, stripe_event("payout.paid", payout), payments) == "payout_paid"
    assert apply(uow, stripe_event("payout.paid", payout), payments) == "already_paid_out"
    [event] = published(uow, PAYOUT_PAID)
    data = load_data(PAYOUT_PAID, event["data"])
    assert data["balance_transaction_ids"] == ["txn_a", "txn_b"]
    assert (data["amount"], data["currency"]) == (12345, "EUR")
    assert "payout:po_1" in payments.asked


def test_unhandled_types_are_recorded_and_ignored(uow: FakeUnitOfWork) -> None:
    assert apply(uow, stripe_event("customer.created", {"id": "cus_1"})) == "ignored"
    assert published(uow) == []


def test_a_signed_event_our_events_cannot_carry_is_kept_not_applied(uow: FakeUnitOfWork) -> None:
    payout = {"id": "po_zz", "amount": 500, "currency": "zzz", "arrival_date": 1}
    assert apply(uow, stripe_event("payout.paid", payout)) == "unreadable"
    assert published(uow) == []
    assert uow.payouts.rows == {}
    [kept] = [row.payload for row in uow.stripe_events.rows.values()]
    assert kept and "po_zz" in kept


def test_the_worker_applies_an_event_kept_while_its_payment_was_being_committed(
    uow: FakeUnitOfWork,
) -> None:
    donation_id, _early = refund_before_payment(uow, "re_race", 700, "pi_race")
    # As if the paid checkout committed in a concurrent request that could not see the
    # kept refund yet: the donation succeeded, and nothing replayed the refund.
    with uow:
        donation = uow.donations.get(donation_id, lock=True)
        assert donation is not None
        donation.succeed(CheckoutPaid(donation_id, None, "pi_race", None, None), NO_FACTS, _now())
        uow.donations.save(donation)
    assert apply_kept_events(uow, FakePayments()) == 1
    assert apply_kept_events(uow, FakePayments()) == 0
    [refunded] = published(uow, DONATION_REFUNDED)
    assert (refunded["data"]["refund_id"], refunded["data"]["amount"]) == ("re_race", 700)


def _now() -> datetime:
    return datetime.now(UTC)
