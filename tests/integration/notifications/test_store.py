"""One contract for the notifications repositories, run against SQLite, PostgreSQL and the
unit tests' in-memory fake (as the eventsourcing library runs one recorder suite against each
database): the same calls give the same answers everywhere."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.notifications.cli import MIGRATIONS
from services.notifications.domain import (
    CampaignFacts,
    Consent,
    Dift,
    Donor,
    ImpactState,
    Reached,
    Recipient,
    ShortlistedCause,
)
from services.notifications.store import NewDelivery
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.shared.db import make_engine, upgrade
from services.shared.money import Money
from tests.unit.notifications.fakes import FakeUnitOfWork

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
OpenUnitOfWork = Callable[[], contextlib.AbstractContextManager[Any]]


@pytest.fixture(params=["fake", "sqlite", "postgresql"])
def open_uow(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenUnitOfWork]:
    """Opens a unit of work (a transaction, committed on leaving) on one kind of store."""
    if request.param == "fake":
        fake = FakeUnitOfWork()
        yield lambda: fake
        return
    url = (
        f"sqlite:///{tmp_path / 'notifications.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("database_url")
    )
    upgrade(url, MIGRATIONS)
    engine = make_engine(url)
    yield lambda: NotificationsUnitOfWork(engine)
    engine.dispose()


def donor(email: str = "Ada@Example.org", campaign: str = "camp_1", **changes: Any) -> Donor:
    values: dict[str, Any] = {
        "campaign_id": campaign,
        "email": email,
        "name": "Ada",
        "locale": "fr",
        "email_ref": f"ref-{email.lower()}",
        "consent": Consent(NOW, "checkout", None),
        **changes,
    }
    return Donor(**values)


def delivery(recipient: str = "ada@example.org", **changes: Any) -> NewDelivery:
    values: dict[str, Any] = {
        "event_id": "evt_1",
        "recipient": recipient,
        "kind": "receipt",
        "campaign_id": "camp_1",
        "donation_id": "don_1",
        "subject": "Thank you",
        "message_id": "<1@difts>",
        "message": "Subject: Thank you\r\n\r\nHello",
        "recipient_ref": f"ref-{recipient}",
        **changes,
    }
    return NewDelivery(**values)


# --- donors ---------------------------------------------------------------------------------


def test_a_donor_is_kept_by_campaign_and_lower_cased_address(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.donors.save(donor(), NOW)
        uow.donors.save(donor(campaign="camp_2", consent=Consent()), NOW)
    with open_uow() as uow:
        found = uow.donors.get("camp_1", "ADA@example.org")
        assert found is not None
        assert (found.email, found.name, found.locale, found.email_ref) == (
            "ada@example.org",
            "Ada",
            "fr",
            "ref-ada@example.org",
        )
        assert found.consent == Consent(NOW, "checkout", None) and found.wants_news
        assert uow.donors.get("camp_3", "ada@example.org") is None
        assert [d.campaign_id for d in uow.donors.of_campaign("camp_1")] == ["camp_1"]
        assert uow.donors.of_campaign("camp_2") == []  # never consented


def test_saving_a_donor_again_changes_them_in_place(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.donors.save(donor(), NOW)
        uow.donors.save(donor(name="Ada L.", consent=Consent(NOW, "checkout", NOW)), NOW)
        uow.donors.save(donor("bob@example.org"), NOW)
    with open_uow() as uow:
        ada = uow.donors.get("camp_1", "ada@example.org")
        assert ada is not None and ada.name == "Ada L." and not ada.wants_news
        assert [d.email for d in uow.donors.of_campaign("camp_1")] == [
            "ada@example.org",
            "bob@example.org",
        ]


def test_unsubscribing_one_campaign_or_every_campaign(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.donors.save(donor(campaign="camp_1"), NOW)
        uow.donors.save(donor(campaign="camp_2"), NOW)
        assert uow.donors.unsubscribe("ref-ada@example.org", "camp_1", NOW) == 1
        assert uow.donors.unsubscribe("ref-ada@example.org", "camp_1", NOW) == 0
    with open_uow() as uow:
        assert not uow.donors.get("camp_1", "ada@example.org").wants_news
        assert uow.donors.get("camp_2", "ada@example.org").wants_news
        assert uow.donors.unsubscribe("ref-ada@example.org", None, NOW) == 1
    with open_uow() as uow:
        later = uow.donors.get("camp_2", "ada@example.org")
        assert not later.wants_news and later.everywhere_at == NOW


def test_a_pseudonym_is_given_only_where_there_is_none(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.donors.save(donor(email_ref=None), NOW)
        uow.donors.save(donor("bob@example.org"), NOW)
        uow.donors.set_email_ref("ada@example.org", "new-ref")
        uow.donors.set_email_ref("bob@example.org", "new-ref")
    with open_uow() as uow:
        assert uow.donors.get("camp_1", "ada@example.org").email_ref == "new-ref"
        assert uow.donors.get("camp_1", "bob@example.org").email_ref == "ref-bob@example.org"


def test_what_a_donor_was_told_and_what_waits_is_kept(open_uow: OpenUnitOfWork) -> None:
    held = Reached("meals-300", 300, 310, 2000, None)
    state = ImpactState(104, NOW, held)
    with open_uow() as uow:
        uow.donors.save(donor(), NOW)
        uow.donors.save(donor("bob@example.org"), NOW)
        uow.donors.save_impact("camp_1", "ada@example.org", state, NOW + timedelta(days=7))
    with open_uow() as uow:
        assert uow.donors.get("camp_1", "ada@example.org").impact == state
        assert uow.donors.with_impact_due(NOW + timedelta(days=6)) == []
        [due] = uow.donors.with_impact_due(NOW + timedelta(days=7))
        assert due.email == "ada@example.org" and due.impact.held == held
        uow.donors.save_impact("camp_1", "ada@example.org", ImpactState(310, NOW), None)
    with open_uow() as uow:
        assert uow.donors.with_impact_due(NOW + timedelta(days=30)) == []


def test_an_erasure_removes_every_donor_row_of_an_address(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.donors.save(donor(campaign="camp_1"), NOW)
        uow.donors.save(donor(campaign="camp_2"), NOW)
        uow.donors.save(donor("bob@example.org"), NOW)
        assert uow.donors.erase("ADA@example.org", "ref-ada@example.org") == 2
        assert uow.donors.erase("ada@example.org", "ref-ada@example.org") == 0
    with open_uow() as uow:
        assert [d.email for d in uow.donors.of_campaign("camp_1")] == ["bob@example.org"]


# --- campaigns ------------------------------------------------------------------------------


def test_a_campaigns_facts_are_kept_and_refreshed(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.campaigns.record(CampaignFacts("camp_1", "lpc", "Canteens", "LPC"))
        uow.campaigns.record(CampaignFacts("camp_1", "lpc", "Les Petites Cantines", "LPC"))
    with open_uow() as uow:
        assert uow.campaigns.get("camp_1") == CampaignFacts(
            "camp_1", "lpc", "Les Petites Cantines", "LPC"
        )
        assert uow.campaigns.get("camp_2") is None


# --- deliveries -----------------------------------------------------------------------------


def test_one_delivery_per_event_recipient_and_kind_and_per_receipt_post_and_milestone(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        assert uow.deliveries.add(delivery(), NOW)
        assert not uow.deliveries.add(delivery(), NOW)  # the same event again
        assert not uow.deliveries.add(delivery(event_id="evt_2"), NOW)  # the donation's receipt
        assert uow.deliveries.add(delivery(kind="refund", event_id="evt_3"), NOW)
        assert uow.deliveries.add(delivery(kind="refund", event_id="evt_4"), NOW)  # 2nd refund
        news = {"kind": "news", "donation_id": None, "post_id": "post_1"}
        assert uow.deliveries.add(delivery(event_id="evt_5", **news), NOW)
        assert not uow.deliveries.add(delivery(event_id="evt_6", **news), NOW)
        impact = {"kind": "impact", "donation_id": None, "milestone": "meals-100"}
        assert uow.deliveries.add(delivery(event_id="evt_7", **impact), NOW)
        assert not uow.deliveries.add(delivery(event_id="evt_8", **impact), NOW)
        assert uow.deliveries.status_of("evt_1", "ada@example.org", "receipt") == "pending"
        assert uow.deliveries.status_of("evt_2", "ada@example.org", "receipt") is None
        assert uow.deliveries.receipt_recipient("don_1") == "ada@example.org"
        assert uow.deliveries.receipt_recipient("don_2") is None


def test_a_skipped_delivery_is_logged_but_never_due(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.deliveries.add(delivery(message=None, skipped_because="cannot address"), NOW)
        assert uow.deliveries.status_of("evt_1", "ada@example.org", "receipt") == "skipped"
        assert uow.deliveries.claim_due(NOW + timedelta(days=1), 10, NOW) == []


def test_claimed_deliveries_are_hidden_from_other_senders_until_the_lease_ends(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        uow.deliveries.add(delivery(), NOW)
    with open_uow() as uow:
        [claimed] = uow.deliveries.claim_due(NOW, 10, NOW + timedelta(minutes=10))
        assert (claimed.recipient, claimed.attempts, claimed.kind) == (
            "ada@example.org",
            0,
            "receipt",
        )
    with open_uow() as uow:
        assert uow.deliveries.claim_due(NOW + timedelta(minutes=1), 10, NOW) == []
        assert len(uow.deliveries.claim_due(NOW + timedelta(minutes=10), 10, NOW)) == 1


def test_outcomes_of_attempts(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        for n in range(4):
            uow.deliveries.add(delivery(f"d{n}@example.org", donation_id=f"don_{n}"), NOW)
        ids = [d.id for d in uow.deliveries.claim_due(NOW, 10, NOW + timedelta(minutes=5))]
        uow.deliveries.mark_sent(ids[0], NOW)
        uow.deliveries.mark_retry(ids[1], "451 later", NOW + timedelta(seconds=30))
        uow.deliveries.mark_failed(ids[2], "550 no such user")
        uow.deliveries.mark_skipped(ids[3], "unsubscribed")
        uow.deliveries.mark_sent(ids[2], NOW)  # a finished delivery stays as it ended
    with open_uow() as uow:
        rows = [uow.deliveries.get(delivery_id) for delivery_id in ids]
        assert [(r.status, r.attempts, r.last_error) for r in rows] == [
            ("sent", 1, None),
            ("pending", 1, "451 later"),
            ("failed", 1, "550 no such user"),
            ("skipped", 0, "unsubscribed"),
        ]
        assert uow.deliveries.get("nope") is None
        uow.deliveries.release([ids[1]], NOW)
        [again] = uow.deliveries.claim_due(NOW, 10, NOW + timedelta(minutes=5))
        assert again.id == ids[1]
        uow.deliveries.requeue(ids[2], NOW + timedelta(hours=1))
        assert uow.deliveries.get(ids[2]).status == "pending"


def test_a_lane_claims_only_its_kinds_and_skips_a_batch_in_one_call(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        uow.deliveries.add(delivery(), NOW)  # a receipt
        for n in range(3):
            news = {"kind": "news", "donation_id": None, "post_id": "post_1"}
            uow.deliveries.add(delivery(f"d{n}@example.org", event_id="evt_n", **news), NOW)
    with open_uow() as uow:
        lease = NOW + timedelta(minutes=5)
        [receipt] = uow.deliveries.claim_due(NOW, 10, lease, ("receipt", "refund"))
        bulk = uow.deliveries.claim_due(NOW, 10, lease, ("news", "impact"))
        assert receipt.kind == "receipt"
        assert sorted(d.recipient for d in bulk) == [f"d{n}@example.org" for n in range(3)]
        uow.deliveries.mark_all_skipped([d.id for d in bulk[:2]], "unsubscribed")
        uow.deliveries.mark_all_skipped([], "unsubscribed")
    with open_uow() as uow:
        statuses = sorted(uow.deliveries.get(d.id).status for d in bulk)
        assert statuses == ["pending", "skipped", "skipped"]


def test_the_donors_who_want_news_among_a_batchs_recipients(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.donors.save(donor("Ada@Example.org"), NOW)
        uow.donors.save(donor("bob@example.org", consent=Consent(NOW, "checkout", NOW)), NOW)
        uow.donors.save(donor("cy@example.org", campaign="camp_2"), NOW)
        uow.donors.save(donor("dee@example.org"), NOW)
        uow.donors.unsubscribe("ref-dee@example.org", None, NOW + timedelta(seconds=1))
    with open_uow() as uow:
        asked = [
            ("camp_1", "ADA@example.org"),  # as the delivery names them, capitals and all
            ("camp_1", "bob@example.org"),  # unsubscribed from this campaign
            ("camp_1", "cy@example.org"),  # a donor of another campaign
            ("camp_1", "dee@example.org"),  # unsubscribed from every campaign
            ("camp_1", "nobody@example.org"),
        ]
        assert uow.donors.wanting_news(asked) == {("camp_1", "ADA@example.org")}
        assert uow.donors.wanting_news([]) == set()


def test_unsubscribing_skips_pending_news_and_impact_only(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.deliveries.add(delivery(), NOW)  # a receipt
        for n, kind in enumerate(("news", "impact")):
            extra = {"post_id": "post_1"} if kind == "news" else {"milestone": "meals-100"}
            uow.deliveries.add(
                delivery(event_id=f"e{n}", kind=kind, donation_id=None, **extra), NOW
            )
        other = delivery(event_id="e9", kind="news", campaign_id="camp_2", donation_id=None)
        uow.deliveries.add(other, NOW)
        assert uow.deliveries.skip_pending("ref-ada@example.org", "camp_1", "unsubscribed") == 2
        assert uow.deliveries.skip_pending("ref-ada@example.org", None, "unsubscribed") == 1
        assert uow.deliveries.status_of("evt_1", "ada@example.org", "receipt") == "pending"


def test_an_erasure_leaves_only_the_pseudonym_and_cancels_what_is_pending(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        uow.deliveries.add(delivery("Ada@example.org"), NOW)
        bob = delivery("bob@example.org", event_id="e2", donation_id="don_2")
        uow.deliveries.add(bob, NOW + timedelta(seconds=1))
        [first] = uow.deliveries.claim_due(NOW, 1, NOW)
        uow.deliveries.mark_sent(first.id, NOW)
        assert uow.deliveries.pseudonymise("ada@example.org", "ref-Ada@example.org") == (1, 0)
    with open_uow() as uow:
        erased = uow.deliveries.get(first.id)
        assert erased.recipient == f"erased:{first.id}" and erased.message is None
        assert uow.deliveries.receipt_recipient("don_1") is None
        assert uow.deliveries.receipt_recipient("don_2") == "bob@example.org"


# --- company difts --------------------------------------------------------------------------


def a_dift(dift_id: str = "dift_1", **changes: Any) -> Dift:
    values: dict[str, Any] = {
        "dift_id": dift_id,
        "programme_id": "prog_1",
        "brand_name": "Acme",
        "value": Money(2000, "EUR"),
        "expires_at": NOW + timedelta(days=30),
        "shortlist": (
            ShortlistedCause("camp_1", "bagnolet", "Bagnolet", "LPC", Money(1350, "EUR")),
            ShortlistedCause("camp_2", "bruz", "Bruz", "LPC", Money(2700, "EUR")),
        ),
        "recipient": Recipient("Lea@Example.org", "Léa", "fr"),
        "redeem_url": f"https://difts.example/r/{dift_id}",
        **changes,
    }
    return Dift(**values)


def test_a_dift_is_kept_once_with_its_shortlist_and_recipient(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        assert uow.difts.record(a_dift(), NOW)
        assert not uow.difts.record(a_dift(brand_name="Other"), NOW)  # the first one stands
        assert uow.difts.record(a_dift("dift_code", recipient=None, redeem_url=None), NOW)
    with open_uow() as uow:
        kept = uow.difts.get("dift_1")
        assert kept == a_dift(recipient=Recipient("lea@example.org", "Léa", "fr"))
        assert kept.cause("camp_2").meal_price == Money(2700, "EUR")
        code = uow.difts.get("dift_code")
        assert code is not None and code.recipient is None and not code.invitable
        assert uow.difts.get("nope") is None


def test_a_difts_reminder_is_due_once_and_settling_cancels_it(open_uow: OpenUnitOfWork) -> None:
    due = NOW + timedelta(days=27)
    with open_uow() as uow:
        for dift_id in ("d1", "d2", "d3"):
            uow.difts.record(a_dift(dift_id), NOW)
            uow.difts.schedule_reminder(dift_id, due)
        assert uow.difts.settle("d2", "directed", NOW)
        assert not uow.difts.settle("d2", "expired", NOW)  # settled already
        assert not uow.difts.settle("unknown", "expired", NOW)
    with open_uow() as uow:
        assert uow.difts.with_reminder_due(due - timedelta(seconds=1)) == []
        assert [d.dift_id for d in uow.difts.with_reminder_due(due)] == ["d1", "d3"]
        uow.difts.reminder_done("d1")
        settled = uow.difts.get("d2")
        assert (settled.settled, settled.redeem_url, settled.reminder_due_at) == (
            "directed",
            None,
            None,
        )
        uow.difts.schedule_reminder("d2", due)  # a settled dift is not reminded
    with open_uow() as uow:
        assert [d.dift_id for d in uow.difts.with_reminder_due(due)] == ["d3"]
        assert uow.difts.get("d1").redeem_url is None
        assert uow.difts.get("d3").reminder_due_at == due


def test_an_erasure_forgets_the_recipient_of_their_difts(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.difts.record(a_dift("d1"), NOW)
        uow.difts.schedule_reminder("d1", NOW + timedelta(days=27))
        uow.difts.record(a_dift("d2", recipient=Recipient("bob@example.org")), NOW)
        assert uow.difts.erase("LEA@example.org") == 1
    with open_uow() as uow:
        forgotten = uow.difts.get("d1")
        assert (forgotten.recipient, forgotten.redeem_url, forgotten.reminder_due_at) == (
            None,
            None,
            None,
        )
        assert uow.difts.get("d2").recipient == Recipient("bob@example.org", "", "fr")


def dift_delivery(kind: str, dift_id: str = "dift_1", **changes: Any) -> NewDelivery:
    values: dict[str, Any] = {
        "event_id": f"evt-{kind}-{dift_id}",
        "kind": kind,
        "campaign_id": "",
        "donation_id": None,
        "dift_id": dift_id,
        "programme_id": "prog_1",
        "not_after": NOW + timedelta(days=30),
        **changes,
    }
    return delivery(**values)


def test_one_email_of_each_kind_per_dift_whatever_the_event(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        assert uow.deliveries.add(dift_delivery("dift_invitation"), NOW)
        again = dift_delivery("dift_invitation", event_id="another-announcement")
        assert not uow.deliveries.add(again, NOW)
        assert uow.deliveries.add(dift_delivery("dift_reminder"), NOW)
        assert uow.deliveries.add(dift_delivery("dift_invitation", "dift_2"), NOW)
        assert uow.deliveries.status_of_dift("dift_1", "dift_invitation") == "pending"
        assert uow.deliveries.status_of_dift("dift_1", "dift_confirmation") is None
    with open_uow() as uow:
        due = uow.deliveries.claim_due(NOW, 10, NOW + timedelta(minutes=5))
        assert sorted((d.dift_id, d.kind) for d in due) == [
            ("dift_1", "dift_invitation"),
            ("dift_1", "dift_reminder"),
            ("dift_2", "dift_invitation"),
        ]
        assert {(d.programme_id, d.not_after) for d in due} == {
            ("prog_1", NOW + timedelta(days=30))
        }


def test_a_dift_email_bounces_once_and_a_settled_dift_skips_what_is_pending(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        uow.deliveries.add(dift_delivery("dift_invitation"), NOW)
        uow.deliveries.add(dift_delivery("dift_reminder"), NOW)
        uow.deliveries.add(dift_delivery("dift_confirmation"), NOW)
        uow.deliveries.add(dift_delivery("dift_invitation", "dift_2"), NOW)
    with open_uow() as uow:
        ids = {
            (d.dift_id, d.kind): d.id
            for d in uow.deliveries.claim_due(NOW, 10, NOW + timedelta(minutes=5))
        }
        bounced = ids[("dift_2", "dift_invitation")]
        assert uow.deliveries.mark_bounced(bounced, "550 5.1.1 no such user")
        assert not uow.deliveries.mark_bounced(bounced, "550 again")
        assert not uow.deliveries.mark_sent(bounced, NOW)
        kinds = ("dift_invitation", "dift_reminder")
        assert uow.deliveries.skip_pending_of_dift("dift_1", kinds, "directed") == 2
    with open_uow() as uow:
        row = uow.deliveries.get(bounced)
        assert (row.status, row.attempts, row.last_error) == (
            "bounced",
            1,
            "550 5.1.1 no such user",
        )
        assert uow.deliveries.status_of_dift("dift_1", "dift_reminder") == "skipped"
        assert uow.deliveries.status_of_dift("dift_1", "dift_confirmation") == "pending"
        assert uow.deliveries.mark_sent(ids[("dift_1", "dift_confirmation")], NOW)
