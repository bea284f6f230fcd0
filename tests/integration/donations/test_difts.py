"""Company difts through their handlers, on SQLite and PostgreSQL: funding (once per source,
with a gapless receipt number), issuing (one by the API, idempotent by the sponsor's reference;
a recipient file as an upload issued in chunks; printed codes), opening and directing (one
redemption, whatever is submitted twice), expiry into the fallback and closing to a zero
balance; and every event in the outbox of the same transaction, keyed by programme id."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.donations import programme_views, store, views
from services.donations.demo import seed_demo_campaign, seed_demo_difts
from services.donations.domain import codes
from services.donations.domain.programmes import (
    DiftAlreadyDirected,
    DiftExpired,
    DiftRuleBroken,
    DiftState,
    FallbackRule,
    ProgrammeRuleBroken,
    ProgrammeStatus,
    Recipient,
    UploadStatus,
)
from services.donations.domain.recipients import RecipientFileRejected
from services.donations.handlers import difts, programmes
from services.donations.unit_of_work import DonationsUnitOfWork
from services.donations.worker import programmes_round
from services.shared.db import make_engine, upgrade
from services.shared.envelope import new_event
from services.shared.events import (
    DIFT_BOOKED,
    DIFT_DIRECTED,
    DIFT_EXPIRED,
    DIFT_INVITATION_SENT,
    DIFT_ISSUED,
    PROGRAMME_CREDITED_BACK,
    PROGRAMME_FUNDED,
    load_data,
)
from services.shared.money import Money
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings
from tests.support.programmes import (
    draft_programme,
    fund_by_transfer,
    funded_open_programme,
    queued,
    register_sponsor,
    seed_causes,
)

pytestmark = pytest.mark.integration

PUBLIC = "http://donations.test"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated donations database of one kind."""
    url = (
        f"sqlite:///{tmp_path / 'difts.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("database_url")
    )
    upgrade(url, DONATIONS_MIGRATIONS)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def euros(amount: int) -> Money:
    return Money(amount * 100, "EUR")


def issue(engine: Engine, programme_id: str, **options: object) -> difts.IssuedDift:
    with DonationsUnitOfWork(engine) as uow:
        return difts.issue_dift(difts.IssueDift(programme_id, PUBLIC, **options), uow)  # type: ignore[arg-type]


def types(engine: Engine, programme_id: str) -> list[str]:
    return [event_type for event_type, _data in queued(engine, programme_id)]


# --- funding ------------------------------------------------------------------------------------


def test_a_bank_transfer_funds_a_draft_once_per_reference_with_a_numbered_receipt(
    engine: Engine,
) -> None:
    shortlist = seed_causes(engine)
    sponsor_id, _token = register_sponsor(engine)
    draft = draft_programme(engine, sponsor_id, shortlist)
    first = fund_by_transfer(engine, draft.id, 10_000, "VIR-1")
    again = fund_by_transfer(engine, draft.id, 10_000, "VIR-1")
    top_up = fund_by_transfer(engine, draft.id, 5_000, "VIR-2")
    assert (first[2], again[2], top_up[2]) == (True, False, True)
    year = datetime.now(UTC).year
    assert [first[1].number, again[1].number, top_up[1].number] == [
        f"{year}-000001",
        f"{year}-000001",
        f"{year}-000002",
    ]
    with DonationsUnitOfWork(engine) as uow:
        programme = uow.programmes.get(draft.id)
    assert programme is not None and programme.status is ProgrammeStatus.FUNDED
    assert programme.funded == Money(15_000, "EUR")
    funded = [data for kind, data in queued(engine, draft.id) if kind == PROGRAMME_FUNDED]
    assert [(d["amount"], d["total_funded"], d["method"]) for d in funded] == [
        (10_000, 10_000, "bank_transfer"),
        (5_000, 15_000, "bank_transfer"),
    ]
    assert funded[0]["bank_reference"] == "VIR-1" and funded[0]["sponsor_name"] == "Acme SAS"


def test_a_programme_opens_when_funded_and_its_date_has_come(engine: Engine) -> None:
    shortlist = seed_causes(engine)
    sponsor_id, _token = register_sponsor(engine)
    later = datetime.now(UTC) + timedelta(days=2)
    draft = draft_programme(
        engine, sponsor_id, shortlist, opens_at=later, expires_at=later + timedelta(days=9)
    )
    with DonationsUnitOfWork(engine) as uow:
        assert programmes.open_due_programmes(uow) == 0  # a draft
    fund_by_transfer(engine, draft.id, 10_000)
    with DonationsUnitOfWork(engine) as uow:
        assert programmes.open_due_programmes(uow) == 0  # its date has not come
        assert programmes.open_due_programmes(uow, later) == 1


def test_unused_budget_is_credited_back_never_more_than_is_left(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine, budget=5_000)
    issue(engine, programme.id, recipient=Recipient("ada@example.org"))
    with DonationsUnitOfWork(engine) as uow:
        credit = programmes.credit_back(
            programmes.CreditBackUnused(programme.id, euros(20), "refund 1"), uow
        )
    assert credit.amount == euros(20)
    with pytest.raises(ProgrammeRuleBroken) as refused, DonationsUnitOfWork(engine) as uow:
        programmes.credit_back(programmes.CreditBackUnused(programme.id, euros(11)), uow)
    assert refused.value.field == "amount"
    credited = [d for kind, d in queued(engine, programme.id) if kind == PROGRAMME_CREDITED_BACK]
    assert [(d["amount"], d["reason"]) for d in credited] == [(2000, "unused_budget")]


# --- issuing ------------------------------------------------------------------------------------


def test_one_dift_through_the_api_is_idempotent_by_the_sponsors_reference(engine: Engine) -> None:
    programme, _token, shortlist = funded_open_programme(engine)
    first = issue(
        engine,
        programme.id,
        recipient=Recipient("ada@example.org", "Ada", "en"),
        sponsor_reference="crm-1",
    )
    again = issue(engine, programme.id, sponsor_reference="crm-1")
    assert first.created and not again.created and again.dift.id == first.dift.id
    assert first.secret and first.redeem_url == f"{PUBLIC}/difts/{first.secret}"
    assert again.secret is None
    issued = [d for kind, d in queued(engine, programme.id) if kind == DIFT_ISSUED]
    assert len(issued) == 1
    event = issued[0]
    assert (event["channel"], event["redeem_url"], event["value"]) == (
        "api",
        first.redeem_url,
        2000,
    )
    assert event["recipient"] == {"email": "ada@example.org", "name": "Ada", "locale": "en"}
    assert [entry["campaign_slug"] for entry in event["shortlist"]] == shortlist
    assert (
        event["brand_name"] == "Acme" and "<strong>for this year</strong>" in event["message_html"]
    )


def test_the_database_keeps_only_the_digest_of_a_link(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine)
    issued = issue(engine, programme.id, recipient=Recipient("ada@example.org"))
    assert issued.secret is not None and len(issued.secret) >= 22  # >= 128 random bits
    with engine.connect() as conn:
        dumped = " ".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM difts"))
    assert issued.secret not in dumped and codes.code_digest(issued.secret) in dumped


def test_no_dift_is_issued_beyond_the_funded_budget(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine, budget=5_000)
    issue(engine, programme.id)
    issue(engine, programme.id)
    with pytest.raises(ProgrammeRuleBroken) as refused:
        issue(engine, programme.id)
    assert refused.value.field == "budget"
    assert types(engine, programme.id).count(DIFT_ISSUED) == 2


def test_printed_codes_are_returned_once_and_carry_no_recipient_and_no_link(
    engine: Engine,
) -> None:
    programme, _token, _ = funded_open_programme(engine)
    with DonationsUnitOfWork(engine) as uow:
        issued = difts.create_codes(difts.CreateCodes(programme.id, 3, PUBLIC), uow)
    assert len({i.secret for i in issued}) == 3
    assert all(codes.read_printed_code(i.secret or "") == i.secret for i in issued)
    events = [d for kind, d in queued(engine, programme.id) if kind == DIFT_ISSUED]
    assert [(e["channel"], e["recipient"], e["redeem_url"]) for e in events] == [
        ("code", None, None)
    ] * 3
    with pytest.raises(ProgrammeRuleBroken) as refused, DonationsUnitOfWork(engine) as uow:
        difts.create_codes(difts.CreateCodes(programme.id, 3, PUBLIC), uow)  # 60 > 40 left
    assert refused.value.field == "count"


CSV = (
    "\ufeffemail;nom;langue;valeur;reference\n"
    "ada@example.org;Ada;en;20;crm-1\n"
    "bob@example.org;Bob;fr;30,50;crm-2\n"
    "chloe@example.org;Chloé;fr;15;\n"
).encode()


def test_a_recipient_file_is_issued_in_chunks_with_progress(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine, dift_value=None)
    upload = difts.accept_recipients(
        difts.AcceptRecipients(programme.id, CSV), DonationsUnitOfWork(engine)
    )
    assert (upload.status, upload.total, upload.issued) == (UploadStatus.ISSUING, 3, 0)
    with DonationsUnitOfWork(engine) as uow:
        assert difts.issue_upload_chunk(upload.id, uow, PUBLIC, chunk=2) == 2
    with DonationsUnitOfWork(engine) as uow:
        halfway = uow.uploads.get(upload.id)
        assert halfway is not None and (halfway.issued, halfway.status) == (2, UploadStatus.ISSUING)
        assert difts.issue_upload_chunk(upload.id, uow, PUBLIC, chunk=2) == 1
    with DonationsUnitOfWork(engine) as uow:
        done = uow.uploads.get(upload.id)
        assert done is not None and (done.issued, done.status) == (3, UploadStatus.DONE)
        assert difts.issue_upload_chunk(upload.id, uow, PUBLIC) == 0
    events = [d for kind, d in queued(engine, programme.id) if kind == DIFT_ISSUED]
    assert [(e["recipient"]["email"], e["value"], e["channel"]) for e in events] == [
        ("ada@example.org", 2000, "email"),
        ("bob@example.org", 3050, "email"),
        ("chloe@example.org", 1500, "email"),
    ]
    assert all(e["redeem_url"].startswith(f"{PUBLIC}/difts/") for e in events)


def test_a_recipient_file_with_a_bad_row_or_beyond_the_budget_stores_nothing(
    engine: Engine,
) -> None:
    programme, _token, _ = funded_open_programme(engine, budget=5_000, dift_value=None)
    bad = b"email,value\nada@example.org,20\nnot-an-email,20\nbob@example.org,\n"
    with pytest.raises(RecipientFileRejected) as rejected:
        difts.accept_recipients(
            difts.AcceptRecipients(programme.id, bad), DonationsUnitOfWork(engine)
        )
    assert {(p.line, p.column) for p in rejected.value.problems} >= {(3, "email")}
    too_much = b"email,value\nada@example.org,30\nbob@example.org,30\n"
    with pytest.raises(RecipientFileRejected) as over:
        difts.accept_recipients(
            difts.AcceptRecipients(programme.id, too_much), DonationsUnitOfWork(engine)
        )
    assert over.value.problems[0].column == "value"
    with DonationsUnitOfWork(engine) as uow:
        assert uow.uploads.issuing() == []
    assert DIFT_ISSUED not in types(engine, programme.id)


# --- opening and directing ------------------------------------------------------------------------


def test_a_dift_is_opened_once_and_directed_once_with_a_split(engine: Engine) -> None:
    programme, _token, shortlist = funded_open_programme(engine)
    issued = issue(engine, programme.id, recipient=Recipient("ada@example.org", "Ada", "en"))
    assert issued.secret is not None
    with DonationsUnitOfWork(engine) as uow:
        view = difts.open_dift(issued.secret, uow)
    assert view.dift.state is DiftState.OPENED and view.brand_name == "Acme"
    assert [c.slug for c in view.shortlist] == shortlist
    with DonationsUnitOfWork(engine) as uow:
        assert difts.open_dift(issued.secret, uow).dift.opened_at == view.dift.opened_at
    network, _bagnolet, bruz = programme.shortlist
    command = difts.DirectDift(
        issued.secret, allocations=[(bruz, euros(5)), (network, euros(15))], updates_opt_in=True
    )
    with DonationsUnitOfWork(engine) as uow:
        directed = difts.direct_dift(command, uow)
    assert directed.state is DiftState.DIRECTED
    with pytest.raises(DiftAlreadyDirected), DonationsUnitOfWork(engine) as uow:
        difts.direct_dift(difts.DirectDift(issued.secret, one_campaign_id=bruz), uow)
    with pytest.raises(DiftAlreadyDirected), DonationsUnitOfWork(engine) as uow:
        difts.open_dift(issued.secret, uow)
    events = [d for kind, d in queued(engine, programme.id) if kind == DIFT_DIRECTED]
    assert len(events) == 1
    assert [(a["campaign_id"], a["amount"]) for a in events[0]["allocations"]] == [
        (network, 1500),
        (bruz, 500),
    ]
    assert events[0]["updates_opt_in"] and events[0]["recipient"]["email"] == "ada@example.org"


def test_a_printed_code_is_read_as_typed_and_a_cut_or_forged_one_is_unknown(
    engine: Engine,
) -> None:
    programme, _token, _ = funded_open_programme(engine)
    with DonationsUnitOfWork(engine) as uow:
        [code] = difts.create_codes(difts.CreateCodes(programme.id, 1, PUBLIC), uow)
    assert code.secret is not None
    typed = code.secret.replace("-", " ").lower()
    with DonationsUnitOfWork(engine) as uow:
        assert difts.open_dift(typed, uow).dift.id == code.dift.id
    for wrong in (code.secret[:-2], "ZZZZ-ZZZZ-ZZZ", "", "x" * 500):
        with pytest.raises(difts.UnknownDift), DonationsUnitOfWork(engine) as uow:
            difts.open_dift(wrong, uow)


def test_a_split_that_does_not_sum_to_the_value_changes_nothing(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine)
    issued = issue(engine, programme.id)
    assert issued.secret is not None
    bad = difts.DirectDift(issued.secret, allocations=[(programme.shortlist[0], euros(19))])
    with pytest.raises(DiftRuleBroken) as refused, DonationsUnitOfWork(engine) as uow:
        difts.direct_dift(bad, uow)
    assert refused.value.field == "allocations"
    with DonationsUnitOfWork(engine) as uow:
        assert uow.difts.get(issued.dift.id).state is DiftState.ISSUED  # type: ignore[union-attr]


def test_wrong_codes_are_rate_limited_per_client(engine: Engine) -> None:
    now = datetime.now(UTC)
    for _ in range(difts.WRONG_CODES_ALLOWED):
        with DonationsUnitOfWork(engine) as uow:
            assert difts.redemption_allowed("10.0.0.7", uow, now)
            difts.record_wrong_code("10.0.0.7", uow, now)
    with DonationsUnitOfWork(engine) as uow:
        assert not difts.redemption_allowed("10.0.0.7", uow, now)
        assert difts.redemption_allowed("10.0.0.8", uow, now)
        assert difts.redemption_allowed("10.0.0.7", uow, now + difts.WRONG_CODES_WINDOW)


def test_two_concurrent_submits_give_one_redemption(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine)
    issued = issue(engine, programme.id)
    assert issued.secret is not None
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def submit(campaign_id: str) -> None:
        start.wait()
        try:
            with DonationsUnitOfWork(engine) as uow:
                difts.direct_dift(
                    difts.DirectDift(issued.secret or "", one_campaign_id=campaign_id), uow
                )
            outcomes.append("directed")
        except DiftAlreadyDirected:
            outcomes.append("already")

    threads = [threading.Thread(target=submit, args=(c,)) for c in programme.shortlist[:2]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already", "directed"]
    assert types(engine, programme.id).count(DIFT_DIRECTED) == 1
    with DonationsUnitOfWork(engine) as uow:
        assert len(uow.difts.get(issued.dift.id).allocations) == 1  # type: ignore[union-attr]


# --- expiry and closing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (FallbackRule.SPLIT_EVENLY, [[667, 667, 666]]),
        (FallbackRule.ONE_CAMPAIGN, [[2000]]),
        (FallbackRule.CREDIT_BACK, [[]]),
    ],
)
def test_at_expiry_undirected_difts_go_by_the_fallback_and_the_balance_ends_at_zero(
    engine: Engine, rule: FallbackRule, expected: list[list[int]]
) -> None:
    programme, _token, _ = funded_open_programme(engine, budget=10_000, fallback_rule=rule)
    kept = issue(engine, programme.id)
    left = issue(engine, programme.id)
    assert kept.secret is not None
    with DonationsUnitOfWork(engine) as uow:
        difts.direct_dift(
            difts.DirectDift(kept.secret, one_campaign_id=programme.shortlist[0]), uow
        )
    later = programme.expires_at + timedelta(seconds=1)
    with DonationsUnitOfWork(engine) as uow:
        assert difts.expire_programme(programme.id, uow, later, chunk=10) == (1, True)
    with DonationsUnitOfWork(engine) as uow:
        closed = uow.programmes.get(programme.id)
        gone = uow.difts.get(left.dift.id)
        assert difts.expire_programme(programme.id, uow, later) == (0, False)
    assert closed is not None and closed.status is ProgrammeStatus.CLOSED
    assert gone is not None and gone.state is DiftState.EXPIRED
    events = queued(engine, programme.id)
    expired = [d for kind, d in events if kind == DIFT_EXPIRED]
    assert [[a["amount"] for a in d["allocations"]] for d in expired] == expected
    assert expired[0]["rule"] == rule.value
    credited = [d for kind, d in events if kind == PROGRAMME_CREDITED_BACK]
    expected_credits = [("closing", 6000)]
    if rule is FallbackRule.CREDIT_BACK:
        expected_credits = [("expired_difts", 2000), ("closing", 6000)]
    assert [(d["reason"], d["amount"]) for d in credited] == expected_credits
    # The ledger's balance: funded - directed - expired given - credited back.
    given = sum(a["amount"] for d in expired for a in d["allocations"])
    directed = sum(
        a["amount"] for kind, d in events if kind == DIFT_DIRECTED for a in d["allocations"]
    )
    assert 10_000 - directed - given - sum(d["amount"] for d in credited) == 0
    with pytest.raises(DiftExpired), DonationsUnitOfWork(engine) as uow:
        difts.open_dift(left.secret or "", uow)


def test_a_programme_expires_in_chunks_and_closes_after_its_last_dift(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine)
    for _ in range(3):
        issue(engine, programme.id)
    later = programme.expires_at
    with DonationsUnitOfWork(engine) as uow:
        assert difts.expire_programme(programme.id, uow, later, chunk=2) == (2, False)
    with DonationsUnitOfWork(engine) as uow:
        assert difts.expire_programme(programme.id, uow, later, chunk=2) == (1, True)


def test_a_programme_ended_early_expires_now_and_its_difts_go_to_the_fallback(
    engine: Engine,
) -> None:
    programme, _token, _ = funded_open_programme(engine)
    left = issue(engine, programme.id)
    now = datetime.now(UTC)
    with DonationsUnitOfWork(engine) as uow:
        programmes.end_programme_now(programme.id, uow, now)
    with engine.connect() as conn:
        assert store.Programmes(conn).past_expiry(now) == [programme.id]
    with DonationsUnitOfWork(engine) as uow:
        assert difts.expire_programme(programme.id, uow, now) == (1, True)
        gone = uow.difts.get(left.dift.id)
    assert gone is not None and gone.state is DiftState.EXPIRED


def test_a_dift_cannot_be_directed_after_its_programmes_expiry(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine)
    issued = issue(engine, programme.id)
    command = difts.DirectDift(issued.secret or "", one_campaign_id=programme.shortlist[0])
    with pytest.raises(DiftExpired), DonationsUnitOfWork(engine) as uow:
        difts.direct_dift(command, uow, programme.expires_at)


# --- what notifications and the ledger report -----------------------------------------------------


def test_an_invitation_sent_marks_the_dift_sent_and_a_bounce_is_recorded(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine)
    sent = issue(engine, programme.id, recipient=Recipient("ada@example.org"))
    bounced = issue(engine, programme.id, recipient=Recipient("bob@example.org"))
    at = datetime.now(UTC).isoformat()
    for dift_id, status in ((sent.dift.id, "sent"), (bounced.dift.id, "bounced")):
        data = {
            "dift_id": dift_id,
            "programme_id": programme.id,
            "kind": "invitation",
            "status": status,
            "at": at,
        }
        with DonationsUnitOfWork(engine) as uow:
            # As the consumer hands it: the data loaded by its schema (moments as datetimes).
            loaded = load_data(DIFT_INVITATION_SENT, data)
            difts.record_invitation_sent(new_event(DIFT_INVITATION_SENT, "t", loaded), uow)
    with DonationsUnitOfWork(engine) as uow:
        now_sent = uow.difts.get(sent.dift.id)
        now_bounced = uow.difts.get(bounced.dift.id)
    assert now_sent is not None and now_sent.state is DiftState.SENT
    assert now_bounced is not None and now_bounced.state is DiftState.ISSUED
    assert now_bounced.bounced_at is not None


def test_a_dift_booking_keeps_the_meals_of_each_allocation(engine: Engine) -> None:
    programme, _token, _ = funded_open_programme(engine)
    data = {
        "dift_id": "d-1",
        "programme_id": programme.id,
        "kind": "directed",
        "value": 2700,
        "currency": "EUR",
        "allocations": [
            {
                "campaign_id": programme.shortlist[0],
                "amount": 2700,
                "meal_price": 1350,
                "meals": 2,
                "meals_funded": 2,
                "remainder": 0,
            }
        ],
        "programme_balance": 0,
        "booked_at": datetime.now(UTC).isoformat(),
    }
    for _ in range(2):
        with DonationsUnitOfWork(engine) as uow:
            loaded = load_data(DIFT_BOOKED, data)
            difts.record_dift_booked(new_event(DIFT_BOOKED, "t", loaded), uow)
    with engine.connect() as conn:
        report = programme_views.programme_report(conn, programme.id)
    assert report is not None
    assert [cause["meals"] for cause in report["causes"]] == [2, 0, 0]


def test_the_report_counts_difts_and_money_per_cause_and_the_campaign_its_difts(
    engine: Engine,
) -> None:
    programme, _token, _ = funded_open_programme(engine)
    network, bagnolet, bruz = programme.shortlist
    directed = issue(engine, programme.id, recipient=Recipient("ada@example.org"))
    issue(engine, programme.id, recipient=Recipient("bob@example.org"))
    with DonationsUnitOfWork(engine) as uow:
        difts.open_dift(directed.secret or "", uow)
    with DonationsUnitOfWork(engine) as uow:
        command = difts.DirectDift(
            directed.secret or "", allocations=[(network, euros(15)), (bruz, euros(5))]
        )
        difts.direct_dift(command, uow)
    with DonationsUnitOfWork(engine) as uow:
        difts.expire_programme(programme.id, uow, programme.expires_at)
    with engine.connect() as conn:
        report = programme_views.programme_report(conn, programme.id)
        received = [views.difts_received(conn, cid) for cid in (network, bagnolet, bruz)]
    assert report is not None
    assert report["counts"] == {
        "issued": 2,
        "sent": 0,
        "opened": 1,
        "directed": 1,
        "expired": 1,
        "bounced": 0,
    }
    assert [(c["directed_amount"], c["expired_amount"]) for c in report["causes"]] == [
        (1500, 667),
        (0, 667),
        (500, 666),
    ]
    assert [count for _day, count in report["directions_per_day"]] == [1]
    assert received == [2, 1, 2]
    assert report["programme"]["budget"]["available"] == 0


def test_the_demo_seeds_a_funded_open_programme_with_five_invitations_once(
    engine: Engine,
) -> None:
    seed_demo_campaign(engine, PUBLIC)
    programme_id, token = seed_demo_difts(engine, PUBLIC)
    assert seed_demo_difts(engine, PUBLIC) == (programme_id, None) and token is not None
    with DonationsUnitOfWork(engine) as uow:
        programme = uow.programmes.get(programme_id)
        sponsor = uow.sponsors.get(programme.sponsor_id)  # type: ignore[union-attr]
        shortlist = [uow.campaigns.get(cid) for cid in programme.shortlist]  # type: ignore[union-attr]
    assert programme is not None and programme.status is ProgrammeStatus.OPEN
    assert sponsor is not None and "demo" in sponsor.legal_name.lower()
    assert [c.slug for c in shortlist if c] == [
        "petites-cantines",
        "petites-cantines-bagnolet",
        "petites-cantines-bruz",
    ]
    issued = [d for kind, d in queued(engine, programme_id) if kind == DIFT_ISSUED]
    assert len(issued) == 5 and {d["channel"] for d in issued} == {"email"}
    assert {d["recipient"]["locale"] for d in issued} == {"fr", "en"}
    assert types(engine, programme_id).count(PROGRAMME_FUNDED) == 1


def test_the_workers_round_opens_issues_uploads_and_expires_then_closes(engine: Engine) -> None:
    shortlist = seed_causes(engine)
    sponsor_id, _token = register_sponsor(engine)
    draft = draft_programme(engine, sponsor_id, shortlist)
    fund_by_transfer(engine, draft.id, 10_000)
    url = engine.url.render_as_string(hide_password=False)
    settings = donations_settings(url, "http://stripe.invalid", upload_chunk=1)
    assert programmes_round(settings, engine) == 1  # opened
    difts.accept_recipients(
        difts.AcceptRecipients(draft.id, b"email\nada@example.org\nbob@example.org\n"),
        DonationsUnitOfWork(engine),
    )
    assert programmes_round(settings, engine) == 1  # one chunk of one row
    assert programmes_round(settings, engine) == 1
    assert programmes_round(settings, engine) == 0
    assert types(engine, draft.id).count(DIFT_ISSUED) == 2
    later = draft.expires_at + timedelta(seconds=1)
    assert programmes_round(settings, engine, later) == 3  # two expired, then closed
    with DonationsUnitOfWork(engine) as uow:
        closed = uow.programmes.get(draft.id)
    assert closed is not None and closed.status is ProgrammeStatus.CLOSED
    assert programmes_round(settings, engine, later) == 0
