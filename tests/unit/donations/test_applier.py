"""The webhook records, the worker's applier applies: nothing the webhook does asks Stripe;
each recorded event is applied once, whichever applier claims it, whatever crashed between
the record and the apply; an event that needs Stripe waits while Stripe does not answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from services.donations.handlers.webhooks import (
    ASK_AGAIN_AFTER,
    ASK_STRIPE_FOR,
    CLAIM_FOR,
    apply_received,
    apply_received_events,
    record_stripe_event,
)
from services.donations.stripe_events import read_parsed
from services.shared.events import DONATION_REFUNDED, DONATION_SUCCEEDED, load_data
from tests.unit.donations.conftest import (
    pending_donation,
    published,
    refund,
    session,
    status_of,
    stripe_event,
)
from tests.unit.donations.fakes import FakeDonations, FakePayments, FakeUnitOfWork


def _paid(donation_id: str, pi: str = "pi_1") -> dict:
    return stripe_event("checkout.session.completed", session(donation_id, pi=pi))


def test_recording_asks_stripe_nothing_and_applies_nothing(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    event = _paid(donation_id)
    assert record_stripe_event(read_parsed(event), uow.stripe_events, "corr-1") == "received"
    assert record_stripe_event(read_parsed(event), uow.stripe_events, "corr-1") == "duplicate"
    assert status_of(uow, donation_id) == "pending"
    assert published(uow) == []
    row = uow.stripe_events.rows[event["id"]]
    assert row.outcome == "received" and row.payload
    payments = FakePayments()
    assert apply_received_events(uow, payments) == 1
    assert payments.asked == ["payment:pi_1"]
    assert status_of(uow, donation_id) == "succeeded"
    [succeeded] = published(uow, DONATION_SUCCEEDED)
    assert succeeded["correlationid"] == "corr-1"  # the webhook request's, carried along
    assert row.outcome == "succeeded" and row.payload is None
    assert apply_received_events(uow, payments) == 0


def test_an_event_is_applied_once_when_two_appliers_hold_it(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    event = _paid(donation_id)
    record_stripe_event(read_parsed(event), uow.stripe_events, None)
    now = datetime.now(UTC)
    with uow:
        [claimed] = uow.stripe_events.claim_received(now, now + CLAIM_FOR, 10)
    # A second applier after the first one's claim ran out: both hold the same event.
    later = now + CLAIM_FOR + timedelta(seconds=1)
    with uow:
        [again] = uow.stripe_events.claim_received(later, later + CLAIM_FOR, 10)
    assert again.id == claimed.id
    assert apply_received(claimed, uow, FakePayments(), now) == "succeeded"
    assert apply_received(again, uow, FakePayments(), later) is None
    assert len(published(uow, DONATION_SUCCEEDED)) == 1


def test_a_claim_keeps_other_appliers_off_until_it_runs_out(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    record_stripe_event(read_parsed(_paid(donation_id)), uow.stripe_events, None)
    now = datetime.now(UTC)
    with uow:
        assert len(uow.stripe_events.claim_received(now, now + CLAIM_FOR, 10)) == 1
    # That applier was killed here, between its claim and its apply.
    assert apply_received_events(uow, FakePayments(), now=now + timedelta(seconds=1)) == 0
    assert status_of(uow, donation_id) == "pending"
    restarted = now + CLAIM_FOR + timedelta(seconds=1)
    assert apply_received_events(uow, FakePayments(), now=restarted) == 1
    assert status_of(uow, donation_id) == "succeeded"
    assert len(published(uow, DONATION_SUCCEEDED)) == 1


def test_a_payment_waits_while_stripe_does_not_answer_and_applies_when_it_does(
    uow: FakeUnitOfWork,
) -> None:
    first, second = pending_donation(uow), pending_donation(uow)
    record_stripe_event(read_parsed(_paid(first, "pi_a")), uow.stripe_events, None)
    record_stripe_event(read_parsed(_paid(second, "pi_b")), uow.stripe_events, None)
    down = FakePayments(down=True)
    now = datetime.now(UTC)
    assert apply_received_events(uow, down, now=now) == 0
    assert down.asked == ["payment:pi_a"]  # the round stops asking once Stripe did not answer
    assert (status_of(uow, first), status_of(uow, second)) == ("pending", "pending")
    assert apply_received_events(uow, FakePayments(), now=now + timedelta(seconds=1)) == 0
    back = FakePayments()
    assert apply_received_events(uow, back, now=now + ASK_AGAIN_AFTER * 2) == 2
    assert (status_of(uow, first), status_of(uow, second)) == ("succeeded", "succeeded")
    for event in published(uow, DONATION_SUCCEEDED):
        data = load_data(DONATION_SUCCEEDED, event["data"])
        assert data["fee"] == 66  # the balance's answer, once Stripe answered


def test_events_that_need_no_stripe_apply_while_stripe_is_down(uow: FakeUnitOfWork) -> None:
    donation_id = pending_donation(uow)
    paid = _paid(donation_id, "pi_r")
    early_refund = stripe_event("refund.created", refund("re_1", 700, "pi_r"))
    record_stripe_event(read_parsed(paid), uow.stripe_events, None)
    record_stripe_event(read_parsed(early_refund), uow.stripe_events, None)
    assert apply_received_events(uow, FakePayments(down=True)) == 1
    assert uow.stripe_events.rows[early_refund["id"]].outcome == "waiting"
    assert uow.stripe_events.rows[paid["id"]].outcome == "received"
    later = datetime.now(UTC) + ASK_AGAIN_AFTER * 2
    assert apply_received_events(uow, FakePayments(), now=later) == 1
    assert [e["type"] for e in published(uow)] == [DONATION_SUCCEEDED, DONATION_REFUNDED]


def test_a_payment_stripe_never_answers_about_is_counted_with_its_fee_unknown(
    uow: FakeUnitOfWork,
) -> None:
    donation_id = pending_donation(uow)
    record_stripe_event(read_parsed(_paid(donation_id)), uow.stripe_events, None)
    much_later = datetime.now(UTC) + ASK_STRIPE_FOR + timedelta(seconds=1)
    assert apply_received_events(uow, FakePayments(down=True), now=much_later) == 1
    assert status_of(uow, donation_id) == "succeeded"
    [succeeded] = published(uow, DONATION_SUCCEEDED)
    assert (succeeded["data"]["fee"], succeeded["data"]["net"]) == (None, None)


def test_a_recorded_body_that_no_longer_reads_is_kept_as_unreadable(uow: FakeUnitOfWork) -> None:
    with uow:
        uow.stripe_events.receive("evt_bad", "payout.paid", "{not json", datetime.now(UTC))
    assert apply_received_events(uow, FakePayments()) == 1
    row = uow.stripe_events.rows["evt_bad"]
    assert (row.outcome, row.payload) == ("unreadable", "{not json")
    assert row.problem.startswith("not JSON")


def test_an_event_the_database_fails_on_waits_for_its_claim_to_run_out_and_the_round_goes_on(
    uow: FakeUnitOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken, fine = pending_donation(uow), pending_donation(uow)
    record_stripe_event(read_parsed(_paid(broken, "pi_x")), uow.stripe_events, None)
    record_stripe_event(read_parsed(_paid(fine, "pi_y")), uow.stripe_events, None)
    get = FakeDonations.get

    def failing(self: FakeDonations, donation_id: str, lock: bool = False) -> Any:
        if donation_id == broken:
            raise OperationalError("SELECT", {}, Exception("the database went away"))
        return get(self, donation_id, lock)

    monkeypatch.setattr(FakeDonations, "get", failing)
    now = datetime.now(UTC)
    assert apply_received_events(uow, FakePayments(), now=now) == 1
    monkeypatch.setattr(FakeDonations, "get", get)
    assert (status_of(uow, broken), status_of(uow, fine)) == ("pending", "succeeded")
    assert apply_received_events(uow, FakePayments(), now=now) == 0  # still claimed
    later = now + CLAIM_FOR + timedelta(seconds=1)
    assert apply_received_events(uow, FakePayments(), now=later) == 1
    assert status_of(uow, broken) == "succeeded"
    assert len(published(uow, DONATION_SUCCEEDED)) == 2
