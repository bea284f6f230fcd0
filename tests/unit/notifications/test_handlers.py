"""The notifications handlers on an in-memory unit of work: who gets which email, once each.
Receipts come from the ledger's booking and state its meals; news and impact emails reach only
the donors of a campaign who consented and did not unsubscribe; refunds are confirmed;
operators resend and erase."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.notifications import handlers
from services.notifications.consent import ConsentKeys, UnsubscribeRequest
from services.notifications.handlers import Stationery
from services.shared.consumer import PoisonEvent
from tests.unit.notifications.conftest import (
    NOW,
    SECRET,
    Clock,
    Deliver,
    booked,
    gift,
    milestone,
    news,
    parsed,
    published,
    refund,
    rows,
    text_of,
)
from tests.unit.notifications.fakes import FakeUnitOfWork

REF = ConsentKeys(SECRET).email_ref

# --- receipts: one per gift, from the ledger's booking --------------------------------------


def test_a_booked_gift_queues_one_receipt_stating_the_ledgers_meals(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("zoe@example.org", opt_in=False, donation_id="don_1"))
    assert rows(uow) == []  # the succeeded event records the donor; the receipt waits
    deliver(booked("don_1", "zoe@example.org", meals=2, remainder=300, amount=3000))

    [row] = rows(uow, "receipt")
    assert (row.recipient, row.status, row.attempts, row.donation_id) == (
        "zoe@example.org",
        "pending",
        0,
        "don_1",
    )
    text = text_of(row)
    assert "It funds 2 meals" in text
    assert "The remaining €3.00 goes towards the next meal." in text
    assert "List-Unsubscribe" not in parsed(row)


def test_a_booking_redelivered_or_announced_twice_queues_one_receipt(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    event = booked("don_1", "zoe@example.org")
    deliver(event, event, booked("don_1", "zoe@example.org"))

    assert len(rows(uow, "receipt")) == 1


def test_a_gift_resynced_from_stripe_gets_no_receipt(deliver: Deliver, uow: FakeUnitOfWork) -> None:
    deliver(booked("don_1", "zoe@example.org", receipt=False))

    assert rows(uow) == []


def test_an_address_we_cannot_write_is_logged_as_skipped(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(booked("don_1", "zoé@exämple.org"))

    [row] = rows(uow, "receipt")
    assert row.status == "skipped"
    assert row.message is None
    assert row.last_error


def test_a_french_donor_gets_a_french_receipt(deliver: Deliver, uow: FakeUnitOfWork) -> None:
    deliver(booked("don_1", "zoe@example.org", locale="fr-FR"))

    [row] = rows(uow, "receipt")
    assert "repas" in text_of(row)


# --- consent --------------------------------------------------------------------------------


def test_consent_to_news_once_given_is_kept_by_later_gifts(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("Zoe@Example.org", opt_in=True, at=NOW))
    deliver(gift("zoe@example.org", opt_in=False, at=NOW + timedelta(days=1)))

    donor = uow.donors.get("camp_1", "zoe@example.org")
    assert donor is not None
    assert (donor.email, donor.wants_news, donor.consent.consent_at) == (
        "zoe@example.org",
        True,
        NOW,
    )
    assert donor.email_ref == REF("zoe@example.org")


def test_a_news_post_is_queued_once_to_each_consenting_donor_of_its_campaign_only(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("yes@example.org", opt_in=True))
    deliver(gift("no@example.org", opt_in=False))
    deliver(gift("other@example.org", opt_in=True, campaign="camp_2"))
    deliver(news(), news(event_id="again"))  # the same post announced twice

    [row] = rows(uow, "news")
    assert (row.recipient, row.status, row.post_id) == ("yes@example.org", "pending", "post_1")
    message = parsed(row)
    assert message["Subject"] == "Les Petites Cantines: Opening of Petites Cantines Bagnolet"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = text_of(row)
    assert text.startswith("Dear difteurs,\n")
    assert "We **open** in Bagnolet on Monday." in text
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<strong>open</strong>" in html
    assert "<script>" not in html


def test_a_french_donor_gets_the_news_in_french(deliver: Deliver, uow: FakeUnitOfWork) -> None:
    deliver(gift("zoe@example.org", opt_in=True, locale="fr-FR"), news())

    [row] = rows(uow, "news")
    assert text_of(row).startswith("Chers difteurs,")


def test_unsubscribing_skips_the_pending_news_and_the_next_post(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("ada@example.org", opt_in=True), gift("bob@example.org", opt_in=True))
    deliver(news(post_id="post_1"))

    changed = handlers.unsubscribe(UnsubscribeRequest(REF("ada@example.org"), "camp_1"), uow, NOW)
    deliver(news(post_id="post_2"))

    assert changed == 1
    statuses = {(r.post_id, r.recipient): (r.status, r.last_error) for r in rows(uow, "news")}
    assert statuses == {
        ("post_1", "ada@example.org"): ("skipped", "unsubscribed"),
        ("post_1", "bob@example.org"): ("pending", None),
        ("post_2", "ada@example.org"): ("skipped", "unsubscribed"),
        ("post_2", "bob@example.org"): ("pending", None),
    }


def test_unsubscribing_from_every_campaign_covers_campaigns_given_to_later(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("ada@example.org", opt_in=True, campaign="camp_1"))
    handlers.unsubscribe(UnsubscribeRequest(REF("ada@example.org"), None), uow, NOW)
    # A later gift to another campaign, without the box ticked: no news from it either.
    deliver(gift("ada@example.org", opt_in=False, campaign="camp_2", at=NOW + timedelta(hours=1)))
    deliver(news(campaign="camp_1"), news(campaign="camp_2", post_id="post_2"))

    assert all(row.status == "skipped" for row in rows(uow, "news"))
    donor = uow.donors.get("camp_1", "ada@example.org")
    assert donor is not None and not donor.wants_news


def test_a_new_gift_with_consent_subscribes_again(deliver: Deliver, uow: FakeUnitOfWork) -> None:
    deliver(gift("ada@example.org", opt_in=True, at=NOW - timedelta(days=1)))
    handlers.unsubscribe(UnsubscribeRequest(REF("ada@example.org"), None), uow, NOW)
    deliver(gift("ada@example.org", opt_in=False, at=NOW + timedelta(seconds=1)))
    donor = uow.donors.get("camp_1", "ada@example.org")
    assert donor is not None and not donor.wants_news  # no box ticked: still out

    deliver(gift("ada@example.org", opt_in=True, at=NOW + timedelta(seconds=2)))

    donor = uow.donors.get("camp_1", "ada@example.org")
    assert donor is not None and donor.wants_news
    assert donor.consent.unsubscribed_at is None
    assert donor.consent.source == "checkout"


def test_a_donor_recorded_before_pseudonyms_gets_one_with_the_next_fan_out(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("ada@example.org", opt_in=True))
    key = ("camp_1", "ada@example.org")
    uow.donors.rows[key] = replace(uow.donors.rows[key], email_ref=None)  # as 0001 left it

    deliver(news())

    donor = uow.donors.get("camp_1", "ada@example.org")
    assert donor is not None and donor.email_ref == REF("ada@example.org")


# --- impact emails --------------------------------------------------------------------------


def test_an_impact_email_goes_at_most_once_per_donor_and_milestone(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("yes@example.org", opt_in=True), gift("no@example.org", opt_in=False))
    deliver(milestone(count=500), milestone(count=500))  # a second event id, the same milestone

    [row] = rows(uow, "impact")
    assert (row.recipient, row.milestone) == ("yes@example.org", "meals-500")
    assert parsed(row)["Subject"] == "Together you funded 500 meals for Les Petites Cantines"


def test_milestones_within_the_period_wait_and_go_as_one_email_naming_the_highest(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    deliver(gift("ada@example.org", opt_in=True))
    deliver(milestone(count=100))
    clock.now = NOW + timedelta(days=1)
    deliver(milestone(count=200, meals_funded=230), milestone(count=300, meals_funded=330))
    assert [row.milestone for row in rows(uow, "impact")] == ["meals-100"]

    assert handlers.release_due_impact(uow, stationery, NOW + timedelta(days=6)) == 0
    assert handlers.release_due_impact(uow, stationery, NOW + timedelta(days=7)) == 1

    first, second = rows(uow, "impact")
    assert second.milestone == "meals-300"
    assert parsed(second)["Subject"] == "Together you funded 300 meals for Les Petites Cantines"
    assert "The counter now stands at 330 meals." in text_of(second)
    assert handlers.release_due_impact(uow, stationery, NOW + timedelta(days=30)) == 0


def test_a_milestone_that_is_a_share_of_the_goal_says_so(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("ada@example.org", opt_in=True, locale="fr"))
    parts = [
        {"milestone": "goal-25", "kind": "goal_percent", "value": 25, "meals": 500},
        {"milestone": "meals-500", "kind": "meals", "value": 500, "meals": 500},
    ]
    deliver(
        milestone(
            count=500,
            milestone="goal-25",
            kind="goal_percent",
            value=25,
            meals=500,
            milestones=parts,
            meals_funded=512,
            goal_meals=2000,
        )
    )

    [row] = rows(uow, "impact")
    assert parsed(row)["Subject"] == (
        "Ensemble, vous avez financé 500 repas pour Les Petites Cantines : un quart de l'objectif"
    )
    assert "Le compteur en est à 512 repas." in text_of(row)


def test_a_held_milestone_of_a_donor_who_unsubscribed_is_dropped(
    deliver: Deliver, uow: FakeUnitOfWork, stationery: Stationery, clock: Clock
) -> None:
    deliver(gift("ada@example.org", opt_in=True), milestone(count=100))
    clock.now = NOW + timedelta(days=1)
    deliver(milestone(count=200))
    handlers.unsubscribe(UnsubscribeRequest(REF("ada@example.org"), "camp_1"), uow, clock.now)

    assert handlers.release_due_impact(uow, stationery, NOW + timedelta(days=8)) == 0
    donor = uow.donors.get("camp_1", "ada@example.org")
    assert donor is not None and donor.impact.held is None


def test_a_published_campaign_names_the_impact_emails(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(published("camp_3", "bruz", "A new Petite Cantine in Bruz", "Les Petites Cantines"))
    deliver(gift("ada@example.org", opt_in=True, campaign="camp_3"))
    deliver(milestone(campaign="camp_3", count=100))

    [row] = rows(uow, "impact")
    assert "Together you funded 100 meals for Les Petites Cantines" in text_of(row)


# --- refunds --------------------------------------------------------------------------------


def test_a_refund_is_confirmed_to_the_donor_once_per_refund(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("ada@example.org", opt_in=False, donation_id="don_9", locale="fr"))
    deliver(booked("don_9", "ada@example.org", locale="fr"))
    deliver(refund("don_9", "re_1", 700, 700), refund("don_9", "re_2", 2000, 2700))

    refunds = rows(uow, "refund")
    assert [row.recipient for row in refunds] == ["ada@example.org"] * 2
    assert parsed(refunds[1])["Subject"] == "Votre don à Les Petites Cantines a été remboursé"
    assert "List-Unsubscribe" not in parsed(refunds[1])


def test_a_refund_of_a_donation_nobody_knows_cannot_be_applied(deliver: Deliver) -> None:
    with pytest.raises(PoisonEvent, match="no donor"):
        deliver(refund("don_unknown", "re_1", 700, 700))


# --- operators ------------------------------------------------------------------------------


def test_an_operator_resends_a_failed_delivery_but_not_news_to_who_left(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("ada@example.org", opt_in=True), booked("don_1", "ada@example.org"), news())
    receipt, post = rows(uow, "receipt")[0], rows(uow, "news")[0]
    uow.deliveries.mark_failed(receipt.id, "550 no such user")

    handlers.resend(receipt.id, uow, NOW)
    assert (receipt.status, receipt.next_attempt_at, receipt.last_error) == ("pending", NOW, None)

    handlers.unsubscribe(UnsubscribeRequest(REF("ada@example.org"), "camp_1"), uow, NOW)
    with pytest.raises(handlers.CannotResend, match="no longer wants"):
        handlers.resend(post.id, uow, NOW)
    with pytest.raises(handlers.CannotResend) as missing:
        handlers.resend("nope", uow, NOW)
    assert missing.value.missing


def test_erasure_removes_the_donor_and_leaves_a_pseudonym_in_the_log(
    deliver: Deliver, uow: FakeUnitOfWork
) -> None:
    deliver(gift("ada@example.org", opt_in=True), gift("bob@example.org", opt_in=True))
    deliver(booked("don_a", "ada@example.org"), news())
    ref = REF("ada@example.org")

    outcome = handlers.erase("Ada@example.org", ref, uow)

    assert outcome == {
        "donors_removed": 1,
        "deliveries_pseudonymised": 2,
        "pending_cancelled": 2,
        "difts_forgotten": 0,
    }
    assert [d.email for d in uow.donors.rows.values()] == ["bob@example.org"]
    for row in rows(uow):
        if row.recipient_ref == ref:
            assert row.recipient.startswith("erased:")
            assert (row.message, row.status) == (None, "skipped")
        else:
            assert row.recipient == "bob@example.org"
    assert handlers.erase("ada@example.org", ref, uow)["donors_removed"] == 0
