"""Every Stripe event type the donations service handles, applied through the handlers on a
migrated SQLite database: each outcome once, whatever is duplicated or reordered. Stripe's
balance is the only fake here (integration tests use stripe-mock)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from services.donations import handlers, store
from services.donations.payments import CheckoutSession, PaymentFacts
from services.donations.stripe_events import read_parsed
from services.shared.db import make_engine, upgrade
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
from services.shared.money import Money

MIGRATIONS = Path(__file__).resolve().parents[2] / "services/donations/migrations"


class FakeBalance:
    """Stripe's balance as the handlers ask it: fixed facts, and a record of the questions."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def payment_facts(self, payment_intent_id: str | None) -> PaymentFacts:
        self.asked.append(f"payment:{payment_intent_id}")
        return PaymentFacts(
            f"ch_{payment_intent_id}", f"txn_{payment_intent_id}", 66, 2634, 2700, "EUR"
        )

    def payout_transactions(self, payout_id: str) -> list[str]:
        self.asked.append(f"payout:{payout_id}")
        return ["txn_a", "txn_b"]


class FakeCheckout:
    """Opens pretend Checkout Sessions (no network) for start_donation."""

    def create_session(self, **kwargs: Any) -> CheckoutSession:
        return CheckoutSession(f"cs_test_{kwargs['donation_id']}", "https://checkout.test/pay")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'donations.db'}"
    upgrade(url, MIGRATIONS)
    engine = make_engine(url)
    handlers.publish_campaign(
        engine,
        slug="canteens",
        title="Canteens",
        cause="Les Petites Cantines",
        summary="",
        meal_price=Money(1350, "EUR"),
        goal_meals=100,
    )
    yield engine
    engine.dispose()


def pending_donation(engine: Engine, amount: int = 2700, donation_id: str | None = None) -> str:
    donation_id = donation_id or str(uuid.uuid4())
    with engine.begin() as conn:
        campaign = store.campaign_by_slug(conn, "canteens")
        assert campaign is not None
        conn.execute(
            store.donations.insert().values(
                id=donation_id,
                campaign_id=campaign.id,
                amount=amount,
                currency="EUR",
                meals=amount // 1350,
                donor_email="ada@example.org",
                donor_name="Ada",
                locale="fr",
                updates_opt_in=True,
                consent_at=datetime.now(UTC),
                status="pending",
                checkout_session_id=f"cs_{donation_id}",
                created_at=datetime.now(UTC),
            )
        )
    return donation_id


def stripe_event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": kind,
        "data": {"object": obj},
    }


def session(
    donation_id: str, amount: int = 2700, paid: str = "paid", pi: str = ""
) -> dict[str, Any]:
    return {
        "id": f"cs_{donation_id}",
        "object": "checkout.session",
        "amount_total": amount,
        "currency": "eur",
        "payment_status": paid,
        "payment_intent": pi or f"pi_{donation_id[:8]}",
        "client_reference_id": donation_id,
        "metadata": {"donation_id": donation_id},
    }


def refund(refund_id: str, amount: int, pi: str, status: str = "succeeded") -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "eur",
        "payment_intent": pi,
        "charge": f"ch_{pi}",
        "status": status,
        "balance_transaction": f"txn_{refund_id}",
    }


def dispute(dispute_id: str, pi: str, status: str, amount: int = 2700) -> dict[str, Any]:
    txns = [{"id": f"txn_{dispute_id}_1", "amount": -amount, "fee": 1500}]
    if status == "won":
        txns.append({"id": f"txn_{dispute_id}_2", "amount": amount, "fee": -1500})
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "currency": "eur",
        "charge": f"ch_{pi}",
        "payment_intent": pi,
        "reason": "fraudulent",
        "status": status,
        "balance_transactions": txns,
    }


def published(engine: Engine, event_type: str | None = None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(store.outbox).order_by(store.outbox.c.seq)).all()
    events = [json.loads(row.payload) for row in rows]
    return [
        event
        for event in events
        if event["type"].startswith("difts.donation") or event["type"].startswith("difts.payout")
        if event_type is None or event["type"] == event_type
    ]


def status_of(engine: Engine, donation_id: str) -> str:
    with engine.connect() as conn:
        row = store.donation_row(conn, donation_id)
    assert row is not None
    return str(row.status)


def apply(engine: Engine, event: dict[str, Any], balance: FakeBalance | None = None) -> str:
    return handlers.apply_stripe_event(engine, read_parsed(event), None, balance or FakeBalance())


def test_paid_checkout_succeeds_once_with_fee_and_net_from_the_balance(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    event = stripe_event("checkout.session.completed", session(donation_id, pi="pi_1"))
    assert apply(engine, event) == "succeeded"
    assert apply(engine, event) == "duplicate"
    again = stripe_event("checkout.session.completed", session(donation_id, pi="pi_1"))
    assert apply(engine, again) == "already_succeeded"
    [succeeded] = published(engine, DONATION_SUCCEEDED)
    data = load_data(DONATION_SUCCEEDED, succeeded["data"])
    assert (data["fee"], data["net"]) == (66, 2634)
    assert (data["charge_id"], data["balance_transaction_id"]) == ("ch_pi_1", "txn_pi_1")
    assert data["consent_at"] is not None and data["updates_opt_in"] is True


def test_a_balance_transaction_of_another_payment_gives_no_fee(engine: Engine) -> None:
    class OtherPayment(FakeBalance):
        def payment_facts(self, payment_intent_id: str | None) -> PaymentFacts:
            return PaymentFacts("ch_fixture", "txn_fixture", 0, 100, 100, "USD")

    donation_id = pending_donation(engine)
    event = stripe_event("checkout.session.completed", session(donation_id, pi="pi_f"))
    assert apply(engine, event, OtherPayment()) == "succeeded"
    data = published(engine, DONATION_SUCCEEDED)[0]["data"]
    assert (data["fee"], data["net"], data["charge_id"]) == (None, None, "ch_fixture")


def test_delayed_payment_waits_for_async_success(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    pending = session(donation_id, paid="unpaid")
    assert apply(engine, stripe_event("checkout.session.completed", pending)) == "awaiting_payment"
    assert status_of(engine, donation_id) == "pending"
    paid = stripe_event("checkout.session.async_payment_succeeded", session(donation_id))
    assert apply(engine, paid) == "succeeded"
    assert apply(engine, paid) == "duplicate"
    assert len(published(engine, DONATION_SUCCEEDED)) == 1


def test_async_payment_failure_fails_the_donation_once(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    failed = stripe_event("checkout.session.async_payment_failed", session(donation_id))
    assert apply(engine, failed) == "failed"
    assert apply(engine, failed) == "duplicate"
    again = stripe_event("checkout.session.async_payment_failed", session(donation_id))
    assert apply(engine, again) == "already_failed"
    [event] = published(engine, DONATION_FAILED)
    assert event["data"]["status"] == "failed"
    assert published(engine, DONATION_SUCCEEDED) == []


def test_expired_session_expires_the_donation_and_a_late_payment_still_counts(
    engine: Engine,
) -> None:
    donation_id = pending_donation(engine)
    assert apply(engine, stripe_event("checkout.session.expired", session(donation_id))) == (
        "expired"
    )
    assert status_of(engine, donation_id) == "expired"
    [event] = published(engine, DONATION_FAILED)
    assert event["data"]["status"] == "expired"
    # Stripe's word that money moved wins over an expiry delivered first.
    paid = stripe_event("checkout.session.completed", session(donation_id))
    assert apply(engine, paid) == "succeeded"
    expired_again = stripe_event("checkout.session.expired", session(donation_id))
    assert apply(engine, expired_again) == "already_succeeded"
    assert status_of(engine, donation_id) == "succeeded"


def test_abandoned_checkout_is_canceled_never_succeeded(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    assert handlers.cancel_donation(engine, donation_id) == "canceled"
    assert handlers.cancel_donation(engine, donation_id) == "canceled"
    assert status_of(engine, donation_id) == "canceled"
    assert published(engine, DONATION_SUCCEEDED) == []
    [event] = published(engine, DONATION_FAILED)  # announced once, however often the page loads
    assert event["data"]["status"] == "canceled"


def test_charge_refunded_and_refund_created_count_one_refund_once(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    apply(engine, stripe_event("checkout.session.completed", session(donation_id, pi="pi_r")))
    first = refund("re_1", 1000, "pi_r")
    charge = {
        "id": "ch_pi_r",
        "object": "charge",
        "payment_intent": "pi_r",
        "amount_refunded": 1000,
        "refunds": {"data": [first]},
    }
    assert apply(engine, stripe_event("charge.refunded", charge)) == "partially_refunded"
    assert apply(engine, stripe_event("refund.created", first)) == "already_refunded"
    assert apply(engine, stripe_event("refund.updated", first)) == "already_refunded"
    assert status_of(engine, donation_id) == "succeeded"
    rest = refund("re_2", 1700, "pi_r")
    assert apply(engine, stripe_event("refund.created", rest)) == "refunded"
    charge_again = {**charge, "amount_refunded": 2700, "refunds": {"data": [rest, first]}}
    assert apply(engine, stripe_event("charge.refunded", charge_again)) == "already_refunded"
    events = [load_data(DONATION_REFUNDED, e["data"]) for e in published(engine, DONATION_REFUNDED)]
    assert [(e["refund_id"], e["amount"], e["total_refunded"]) for e in events] == [
        ("re_1", 1000, 1000),
        ("re_2", 1700, 2700),
    ]
    assert [e["fully_refunded"] for e in events] == [False, True]
    assert status_of(engine, donation_id) == "refunded"


def test_a_refund_larger_than_what_is_left_is_not_counted(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    apply(engine, stripe_event("checkout.session.completed", session(donation_id, pi="pi_x")))
    assert apply(engine, stripe_event("refund.created", refund("re_x", 5000, "pi_x"))) == (
        "refund_mismatch"
    )
    failed = refund("re_f", 100, "pi_x", status="failed")
    assert apply(engine, stripe_event("refund.updated", failed)) == "refund_failed"
    assert published(engine, DONATION_REFUNDED) == []


def amount_refunded(engine: Engine, donation_id: str) -> int:
    with engine.connect() as conn:
        row = store.donation_row(conn, donation_id)
    assert row is not None
    return int(row.amount_refunded)


def test_a_counted_refund_that_fails_is_reversed_once_and_announced_once(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    apply(engine, stripe_event("checkout.session.completed", session(donation_id, pi="pi_rf")))
    assert apply(engine, stripe_event("refund.created", refund("re_rf", 2700, "pi_rf"))) == (
        "refunded"
    )
    assert (status_of(engine, donation_id), amount_refunded(engine, donation_id)) == (
        "refunded",
        2700,
    )
    failed = {
        **refund("re_rf", 2700, "pi_rf", status="failed"),
        "failure_balance_transaction": "txn_re_rf_failure",
    }
    assert apply(engine, stripe_event("refund.failed", failed)) == "refund_reversed"
    # Stripe says it again, under other event types: nothing more happens.
    assert apply(engine, stripe_event("refund.updated", failed)) == "refund_already_failed"
    assert apply(engine, stripe_event("charge.refund.updated", failed)) == ("refund_already_failed")
    # A late copy of the refund's creation does not count it again.
    created_again = stripe_event("refund.created", refund("re_rf", 2700, "pi_rf", "pending"))
    assert apply(engine, created_again) == "refund_already_failed"
    assert (status_of(engine, donation_id), amount_refunded(engine, donation_id)) == (
        "succeeded",
        0,
    )
    [event] = published(engine, DONATION_REFUND_FAILED)
    data = load_data(DONATION_REFUND_FAILED, event["data"])
    assert (data["refund_id"], data["amount"], data["currency"]) == ("re_rf", 2700, "EUR")
    assert (data["total_refunded"], data["balance_transaction_id"]) == (0, "txn_re_rf_failure")
    assert event["id"] == handlers.derived_event_id("re_rf", "refund_failed")
    assert len(published(engine, DONATION_REFUNDED)) == 1


def test_a_failed_partial_refund_leaves_the_other_refunds_counted(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    apply(engine, stripe_event("checkout.session.completed", session(donation_id, pi="pi_pf")))
    apply(engine, stripe_event("refund.created", refund("re_p1", 1000, "pi_pf")))
    apply(engine, stripe_event("refund.created", refund("re_p2", 500, "pi_pf", "pending")))
    canceled = refund("re_p2", 500, "pi_pf", status="canceled")
    assert apply(engine, stripe_event("refund.updated", canceled)) == "refund_reversed"
    assert (status_of(engine, donation_id), amount_refunded(engine, donation_id)) == (
        "succeeded",
        1000,
    )
    [event] = published(engine, DONATION_REFUND_FAILED)
    assert event["data"]["total_refunded"] == 1000
    # What the failed refund gave back to the donation can be refunded for real.
    assert apply(engine, stripe_event("refund.created", refund("re_p3", 1700, "pi_pf"))) == (
        "refunded"
    )
    assert amount_refunded(engine, donation_id) == 2700


def test_a_refund_that_failed_before_it_was_seen_never_counts(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    apply(engine, stripe_event("checkout.session.completed", session(donation_id, pi="pi_ff")))
    failed = refund("re_ff", 2700, "pi_ff", status="failed")
    assert apply(engine, stripe_event("refund.failed", failed)) == "refund_failed"
    assert apply(engine, stripe_event("refund.failed", failed)) == "refund_already_failed"
    for kind, status in (("refund.created", "pending"), ("refund.updated", "succeeded")):
        late = stripe_event(kind, refund("re_ff", 2700, "pi_ff", status=status))
        assert apply(engine, late) == "refund_already_failed"
    charge = {
        "id": "ch_pi_ff",
        "object": "charge",
        "payment_intent": "pi_ff",
        "refunds": {"data": [refund("re_ff", 2700, "pi_ff", status="pending")]},
    }
    assert apply(engine, stripe_event("charge.refunded", charge)) == "refund_already_failed"
    assert (status_of(engine, donation_id), amount_refunded(engine, donation_id)) == (
        "succeeded",
        0,
    )
    assert published(engine, DONATION_REFUNDED) == []
    assert published(engine, DONATION_REFUND_FAILED) == []


def test_a_refund_failure_before_its_payment_waits_and_then_counts_nothing(
    engine: Engine,
) -> None:
    donation_id = pending_donation(engine)
    failed = stripe_event("refund.failed", refund("re_w", 2700, "pi_w", status="failed"))
    created = stripe_event("refund.created", refund("re_w", 2700, "pi_w", status="pending"))
    assert apply(engine, failed) == "waiting"
    assert apply(engine, created) == "waiting"
    paid = stripe_event("checkout.session.completed", session(donation_id, pi="pi_w"))
    assert apply(engine, paid) == "succeeded"
    assert (status_of(engine, donation_id), amount_refunded(engine, donation_id)) == (
        "succeeded",
        0,
    )
    assert [e["type"] for e in published(engine)] == [DONATION_SUCCEEDED]


def test_refund_before_the_paid_checkout_is_kept_and_applied_after_it(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    early = stripe_event("refund.created", refund("re_early", 2700, "pi_early"))
    assert apply(engine, early) == "waiting"
    assert apply(engine, early) == "duplicate"
    assert published(engine) == []
    paid = stripe_event("checkout.session.completed", session(donation_id, pi="pi_early"))
    assert apply(engine, paid) == "succeeded"
    assert [e["type"] for e in published(engine)] == [DONATION_SUCCEEDED, DONATION_REFUNDED]
    assert status_of(engine, donation_id) == "refunded"
    with engine.connect() as conn:
        row = conn.execute(
            select(store.stripe_events).where(store.stripe_events.c.id == early["id"])
        ).one()
    assert row.outcome == "refunded" and row.payload is None


def test_checkout_for_a_donation_not_yet_stored_is_applied_when_it_is(engine: Engine) -> None:
    donation_id = handlers.donation_id_for_retry("key-1", "canteens")
    early = stripe_event("checkout.session.completed", session(donation_id, amount=2700))
    assert apply(engine, early) == "unmatched"
    gift = handlers.Gift(
        campaign_slug="canteens",
        amount=None,
        meals=2,
        currency="EUR",
        donor_email="ada@example.org",
        donor_name="Ada",
        locale="fr",
        updates_opt_in=False,
        correlation_id=None,
        idempotency_key="key-1",
    )
    answer = handlers.start_donation(
        engine,
        FakeCheckout(),
        handlers.GiftLimits(100, 10**6),
        gift,
        "http://t",
        balance=FakeBalance(),
    )
    assert answer["id"] == donation_id
    assert status_of(engine, donation_id) == "succeeded"
    assert len(published(engine, DONATION_SUCCEEDED)) == 1


def test_dispute_opened_then_won_reinstates_the_donation(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    apply(engine, stripe_event("checkout.session.completed", session(donation_id, pi="pi_d")))
    opened = stripe_event("charge.dispute.created", dispute("dp_1", "pi_d", "needs_response"))
    assert apply(engine, opened) == "dispute_opened"
    assert apply(engine, opened) == "duplicate"
    again = stripe_event("charge.dispute.created", dispute("dp_1", "pi_d", "needs_response"))
    assert apply(engine, again) == "already_disputed"
    assert status_of(engine, donation_id) == "disputed"
    won = stripe_event("charge.dispute.closed", dispute("dp_1", "pi_d", "won"))
    assert apply(engine, won) == "dispute_won"
    won_again = stripe_event("charge.dispute.closed", dispute("dp_1", "pi_d", "won"))
    assert apply(engine, won_again) == "already_closed"
    assert status_of(engine, donation_id) == "succeeded"
    [open_event] = published(engine, DISPUTE_OPENED)
    [closed_event] = published(engine, DISPUTE_CLOSED)
    assert open_event["data"]["fee"] == 1500
    closed = load_data(DISPUTE_CLOSED, closed_event["data"])
    assert (closed["status"], closed["amount_reinstated"], closed["fee_reinstated"]) == (
        "won",
        2700,
        1500,
    )


def test_dispute_closed_before_it_opened_waits_then_counts_lost(engine: Engine) -> None:
    donation_id = pending_donation(engine)
    lost = stripe_event("charge.dispute.closed", dispute("dp_2", "pi_l", "lost"))
    opened = stripe_event("charge.dispute.created", dispute("dp_2", "pi_l", "needs_response"))
    assert apply(engine, lost) == "waiting"
    assert apply(engine, opened) == "waiting"  # the payment itself is not known yet
    paid = stripe_event("checkout.session.completed", session(donation_id, pi="pi_l"))
    assert apply(engine, paid) == "succeeded"
    assert [e["type"] for e in published(engine)] == [
        DONATION_SUCCEEDED,
        DISPUTE_OPENED,
        DISPUTE_CLOSED,
    ]
    closed = published(engine, DISPUTE_CLOSED)[0]["data"]
    assert (closed["status"], closed["amount_reinstated"]) == ("lost", 0)
    assert status_of(engine, donation_id) == "disputed"


def test_payout_paid_lists_its_balance_transactions_once(engine: Engine) -> None:
    payout = {
        "id": "po_1",
        "object": "payout",
        "amount": 12345,
        "currency": "eur",
        "arrival_date": 1_767_225_600,
        "status": "paid",
    }
    balance = FakeBalance()
    assert apply(engine, stripe_event("payout.paid", payout), balance) == "payout_paid"
    assert apply(engine, stripe_event("payout.paid", payout), balance) == "already_paid_out"
    [event] = published(engine, PAYOUT_PAID)
    data = load_data(PAYOUT_PAID, event["data"])
    assert data["balance_transaction_ids"] == ["txn_a", "txn_b"]
    assert (data["amount"], data["currency"]) == (12345, "EUR")
    assert "payout:po_1" in balance.asked


def test_unhandled_types_are_recorded_and_ignored(engine: Engine) -> None:
    assert apply(engine, stripe_event("customer.created", {"id": "cus_1"})) == "ignored"
    assert published(engine) == []


def test_a_signed_event_our_events_cannot_carry_is_kept_not_applied(engine: Engine) -> None:
    payout = {"id": "po_zz", "amount": 500, "currency": "zzz", "arrival_date": 1}
    assert apply(engine, stripe_event("payout.paid", payout)) == "unreadable"
    assert published(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(store.payouts)).first() is None
        kept = conn.execute(select(store.stripe_events.c.payload)).scalar()
    assert kept and "po_zz" in kept


def test_the_worker_applies_an_event_kept_while_its_payment_was_being_committed(
    engine: Engine,
) -> None:
    donation_id = pending_donation(engine)
    early = stripe_event("refund.created", refund("re_race", 700, "pi_race"))
    assert apply(engine, early) == "waiting"
    # As if the paid checkout committed in a concurrent request that could not see the
    # kept refund yet: the donation succeeded, and nothing replayed the refund.
    with engine.begin() as conn:
        store.mark_succeeded(conn, donation_id, "pi_race", datetime.now(UTC))
    assert handlers.apply_kept_events(engine, FakeBalance()) == 1
    assert handlers.apply_kept_events(engine, FakeBalance()) == 0
    [refunded] = published(engine, DONATION_REFUNDED)
    assert (refunded["data"]["refund_id"], refunded["data"]["amount"]) == ("re_race", 700)
