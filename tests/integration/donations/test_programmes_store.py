"""One contract for the company difts repositories (store/programmes.py), run against SQLite
and PostgreSQL: the same calls give the same answers on both. PostgreSQL also proves the two
guarantees concurrency needs: mécénat receipt numbers taken by threads at once have no gap and
no duplicate, and two concurrent moves of one dift give one winner."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services.donations.domain.campaigns import Campaign, CampaignStatus
from services.donations.domain.programmes import (
    Allocation,
    Channel,
    CreditBack,
    CreditReason,
    Dift,
    DiftState,
    Funding,
    FundingMethod,
    Programme,
    Recipient,
    RecipientUpload,
    Sponsor,
    UploadRow,
    UploadStatus,
)
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.db import make_engine, upgrade
from services.shared.money import Money
from tests.support.donations import DONATIONS_MIGRATIONS
from tests.support.stores import OpenUnitOfWork, units_of_work

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EUR = "EUR"


@pytest.fixture(params=["sqlite", "postgresql"])
def open_uow(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenUnitOfWork]:
    """Opens a unit of work on one database."""
    yield from units_of_work(
        request, tmp_path, DONATIONS_MIGRATIONS, DonationsUnitOfWork, lambda: None
    )


def campaign(slug: str) -> Campaign:
    return Campaign(
        id=f"c-{slug}",
        slug=slug,
        title=slug.title(),
        cause="Les Petites Cantines",
        meal_price=Money(1350, EUR),
        goal_meals=None,
        status=CampaignStatus.LIVE,
        created_at=NOW,
        published_at=NOW,
    )


SHORTLIST = [campaign("network"), campaign("bagnolet"), campaign("bruz")]


def sponsor() -> Sponsor:
    return Sponsor.register(
        "s-1",
        legal_name="Acme SAS",
        legal_form="SAS",
        siren="732829320",
        postal_address="1 rue de la Paix\n75002 Paris",
        contact_email="csr@acme.test",
        brand_name="Acme",
        now=NOW,
    )


def programme(**changes: object) -> Programme:
    draft = Programme.draft(
        "p-1",
        sponsor(),
        SHORTLIST,
        name="Year-end difts",
        currency=EUR,
        dift_value=2000,
        opens_at=NOW,
        expires_at=NOW + timedelta(days=30),
        message_markdown="Merci **à vous**",
        now=NOW,
    )
    return replace(draft, **changes)


def seeded(open_uow: OpenUnitOfWork) -> Programme:
    with open_uow() as uow:
        for listed in SHORTLIST:
            uow.campaigns.add(listed)
        uow.sponsors.add(sponsor())
        uow.programmes.add(programme())
    return programme()


def dift(dift_id: str = "d-1", **changes: object) -> Dift:
    values: dict[str, object] = {
        "id": dift_id,
        "programme_id": "p-1",
        "channel": Channel.EMAIL,
        "value": Money(2000, EUR),
        "state": DiftState.ISSUED,
        "issued_at": NOW,
        "recipient": Recipient("ada@example.org", "Ada", "en"),
        "sponsor_reference": f"ref-{dift_id}",
        **changes,
    }
    return Dift(**values)  # type: ignore[arg-type]


# --- sponsors and programmes --------------------------------------------------------------------


def test_a_sponsor_is_kept_and_found_by_the_digest_of_its_token(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.sponsors.add(sponsor(), seed_key="demo")
        uow.sponsors.add_token("a" * 64, "s-1", NOW)
    with open_uow() as uow:
        assert uow.sponsors.get("s-1") == sponsor()
        assert uow.sponsors.by_seed_key("demo") == sponsor()
        assert uow.sponsors.of_token("a" * 64) == "s-1"
        assert uow.sponsors.of_token("b" * 64) is None and uow.sponsors.get("s-2") is None


def test_a_programme_is_kept_with_its_shortlist_in_order(open_uow: OpenUnitOfWork) -> None:
    seeded(open_uow)
    with open_uow() as uow:
        assert uow.programmes.get("p-1") == programme()
        assert uow.programmes.of_sponsor("s-1") == [programme()]


def test_a_drafts_shortlist_and_texts_change_and_a_funded_programmes_do_not(
    open_uow: OpenUnitOfWork,
) -> None:
    seeded(open_uow)
    reordered = programme(shortlist=("c-bruz", "c-network"), name="New")
    with open_uow() as uow:
        uow.programmes.save(reordered)
    with open_uow() as uow:
        assert uow.programmes.get("p-1") == reordered
    funded, _ = reordered.funded_with(Money(10_000, EUR), NOW)
    with open_uow() as uow:
        uow.programmes.save(replace(funded, name="Ignored once funded"))
    with open_uow() as uow:
        stored = uow.programmes.get("p-1")
        assert stored is not None and stored.name == "New" and stored.funded == Money(10_000, EUR)


def test_programmes_due_to_open_and_past_expiry_are_found(open_uow: OpenUnitOfWork) -> None:
    draft = seeded(open_uow)
    funded, _ = draft.funded_with(Money(10_000, EUR), NOW)
    with open_uow() as uow:
        assert uow.programmes.due_to_open(NOW) == []
        uow.programmes.save(funded)
    with open_uow() as uow:
        assert uow.programmes.due_to_open(NOW - timedelta(seconds=1)) == []
        assert uow.programmes.due_to_open(NOW) == ["p-1"]
        uow.programmes.save(funded.opened(NOW))
    with open_uow() as uow:
        assert uow.programmes.past_expiry(NOW) == []
        assert uow.programmes.past_expiry(NOW + timedelta(days=30)) == ["p-1"]


def test_a_funding_is_kept_once_per_source(open_uow: OpenUnitOfWork) -> None:
    seeded(open_uow)
    funding = Funding(
        "f-1",
        "p-1",
        "bank:VIR-42",
        FundingMethod.BANK_TRANSFER,
        Money(10_000, EUR),
        NOW,
        bank_reference="VIR-42",
        received_on=date(2026, 11, 30),
    )
    with open_uow() as uow:
        assert uow.fundings.add(funding)
        assert not uow.fundings.add(replace(funding, id="f-2"))
    with open_uow() as uow:
        assert uow.fundings.by_source("bank:VIR-42") == funding
        assert uow.fundings.of_programme("p-1") == [funding]


def test_credits_back_are_kept(open_uow: OpenUnitOfWork) -> None:
    seeded(open_uow)
    credit = CreditBack("cr-1", "p-1", Money(500, EUR), CreditReason.CLOSING, "", NOW)
    with open_uow() as uow:
        uow.credits.add(credit)
    with open_uow() as uow:
        assert uow.credits.of_programme("p-1") == [credit]


# --- difts --------------------------------------------------------------------------------------


def test_a_dift_is_found_by_id_secret_digest_and_sponsor_reference(
    open_uow: OpenUnitOfWork,
) -> None:
    seeded(open_uow)
    with open_uow() as uow:
        uow.difts.add(dift(), "f" * 64)
        uow.difts.add(
            dift("d-2", channel=Channel.CODE, recipient=None, sponsor_reference=None), "e" * 64
        )
    with open_uow() as uow:
        assert uow.difts.get("d-1") == dift()
        assert uow.difts.by_secret("f" * 64) == dift()
        assert uow.difts.by_reference("p-1", "ref-d-1") == dift()
        code = uow.difts.by_secret("e" * 64)
        assert code is not None and code.recipient is None and code.channel is Channel.CODE
        assert uow.difts.by_secret("0" * 64) is None


def test_a_sponsor_reference_names_one_dift_per_programme(open_uow: OpenUnitOfWork) -> None:
    seeded(open_uow)
    with open_uow() as uow:
        uow.difts.add(dift(), "f" * 64)
    with pytest.raises(Exception, match="(?i)unique|duplicate"), open_uow() as uow:
        uow.difts.add(dift("d-2", sponsor_reference="ref-d-1"), "e" * 64)


def test_a_move_writes_only_from_the_state_read_with_its_allocations(
    open_uow: OpenUnitOfWork,
) -> None:
    seeded(open_uow)
    with open_uow() as uow:
        uow.difts.add(dift(), "f" * 64)
    issued = dift()
    allocations = (
        Allocation("c-network", Money(1500, EUR)),
        Allocation("c-bruz", Money(500, EUR)),
    )
    directed, _ = issued.directed(allocations, True, NOW)
    with open_uow() as uow:
        assert uow.difts.move(issued, directed, "directed")
        assert not uow.difts.move(issued, directed, "directed")
    with open_uow() as uow:
        assert uow.difts.get("d-1") == directed
        assert uow.difts.undirected("p-1") == [] and uow.difts.count_undirected("p-1") == 0


def test_undirected_difts_are_listed_oldest_first(open_uow: OpenUnitOfWork) -> None:
    seeded(open_uow)
    with open_uow() as uow:
        uow.difts.add(dift("d-2", issued_at=NOW + timedelta(seconds=1)), "e" * 64)
        uow.difts.add(dift("d-1"), "f" * 64)
        uow.difts.add(dift("d-3", state=DiftState.DIRECTED), "d" * 64)
    with open_uow() as uow:
        assert [d.id for d in uow.difts.undirected("p-1")] == ["d-1", "d-2"]
        assert uow.difts.count_undirected("p-1") == 2


def test_an_upload_keeps_its_rows_and_progress(open_uow: OpenUnitOfWork) -> None:
    seeded(open_uow)
    upload = RecipientUpload("u-1", "p-1", UploadStatus.ISSUING, 2, 0, NOW)
    rows = [
        UploadRow("u-1", 2, "ada@example.org", "Ada", "fr", None, None),
        UploadRow("u-1", 3, "bob@example.org", "", "en", 2500, "ref-b"),
    ]
    with open_uow() as uow:
        uow.uploads.add(upload, rows)
    with open_uow() as uow:
        assert uow.uploads.issuing() == ["u-1"]
        assert uow.uploads.next_rows("u-1", 10) == rows
        uow.uploads.row_issued("u-1", 2, "d-1")
        uow.uploads.save(replace(upload, issued=1))
    with open_uow() as uow:
        assert uow.uploads.next_rows("u-1", 10) == rows[1:]
        assert uow.uploads.get("u-1") == replace(upload, issued=1)


def test_wrong_redemption_attempts_are_counted_per_client_in_a_window(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        for minutes in (0, 5, 20):
            uow.redemptions.record_wrong("10.0.0.1", NOW - timedelta(minutes=minutes))
        uow.redemptions.record_wrong("10.0.0.2", NOW)
    with open_uow() as uow:
        assert uow.redemptions.wrong_since("10.0.0.1", NOW - timedelta(minutes=10)) == 2
        uow.redemptions.forget_before(NOW - timedelta(minutes=10))
    with open_uow() as uow:
        assert uow.redemptions.wrong_since("10.0.0.1", NOW - timedelta(days=1)) == 2


def test_receipt_numbers_follow_each_other_per_organisation_and_year(
    open_uow: OpenUnitOfWork,
) -> None:
    with open_uow() as uow:
        assert [uow.receipts.next_sequence("difts", 2026) for _ in range(3)] == [1, 2, 3]
        assert uow.receipts.next_sequence("difts", 2027) == 1
        assert uow.receipts.next_sequence("other", 2026) == 1
    with open_uow() as uow:
        assert uow.receipts.next_sequence("difts", 2026) == 4


def test_a_receipt_is_issued_for_a_funding_with_its_number(open_uow: OpenUnitOfWork) -> None:
    seeded(open_uow)
    funding = Funding("f-1", "p-1", "bank:X", FundingMethod.BANK_TRANSFER, Money(10_000, EUR), NOW)
    with open_uow() as uow:
        uow.fundings.add(funding)
        receipt = uow.receipts.issue(
            "r-1", "difts", funding, "s-1", "virement", date(2026, 11, 30), date(2026, 12, 1)
        )
    assert receipt.number == "2026-000001"
    with open_uow() as uow:
        assert uow.receipts.of_programme("p-1") == [receipt] and uow.receipts.get("r-1") == receipt


def test_a_dift_booking_is_kept_once(open_uow: OpenUnitOfWork) -> None:
    with open_uow() as uow:
        uow.dift_bookings.record("d-1", "p-1", "directed", [("c-bruz", 2000, 1)], NOW)
        uow.dift_bookings.record("d-1", "p-1", "directed", [("c-bruz", 2000, 1)], NOW)


# --- PostgreSQL under concurrency ---------------------------------------------------------------


@pytest.fixture
def postgres_engine(database_url: str) -> Iterator[object]:
    upgrade(database_url, DONATIONS_MIGRATIONS)
    engine = make_engine(database_url, pool_size=12)
    yield engine
    engine.dispose()


def test_receipt_numbers_taken_by_concurrent_transactions_have_no_gap_and_no_duplicate(
    postgres_engine: object,
) -> None:
    taken: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(8)
    lock = threading.Lock()

    def take(rounds: int) -> None:
        start.wait()
        for index in range(rounds):
            try:
                with DonationsUnitOfWork(postgres_engine) as uow:  # type: ignore[arg-type]
                    number = uow.receipts.next_sequence("difts", 2026)
                    if index % 5 == 4:
                        raise RuntimeError("rolled back: its number is given back")
                with lock:
                    taken.append(number)
            except RuntimeError:
                continue
            except BaseException as error:  # noqa: BLE001 - reported below
                failures.append(error)

    threads = [threading.Thread(target=take, args=(10,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert sorted(taken) == list(range(1, 8 * 8 + 1))


def test_two_concurrent_moves_of_one_dift_give_one_winner(postgres_engine: object) -> None:
    engine = postgres_engine
    with DonationsUnitOfWork(engine) as uow:  # type: ignore[arg-type]
        for listed in SHORTLIST:
            uow.campaigns.add(listed)
        uow.sponsors.add(sponsor())
        uow.programmes.add(programme())
        uow.difts.add(dift(), uuid.uuid4().hex * 2)
    issued = dift()
    wins: list[bool] = []
    start = threading.Barrier(2)

    def submit(campaign_id: str) -> None:
        directed, _ = issued.directed((Allocation(campaign_id, issued.value),), False, NOW)
        with DonationsUnitOfWork(engine) as uow:  # type: ignore[arg-type]
            start.wait()
            wins.append(uow.difts.move(issued, directed, "directed"))

    threads = [threading.Thread(target=submit, args=(c,)) for c in ("c-bruz", "c-network")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False, True]
    with DonationsUnitOfWork(engine) as uow:  # type: ignore[arg-type]
        stored = uow.difts.get("d-1")
        assert stored is not None and len(stored.allocations) == 1
