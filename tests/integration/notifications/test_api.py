"""The notifications service's pages and admin API on PostgreSQL, with events applied through
its idempotent consumer: the unsubscribe links and the one-click POST work and cannot be
forged; operators search, count, resend and erase, with the admin role only."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from services.notifications import store
from services.notifications.app import create_app
from services.notifications.cli import MIGRATIONS
from services.notifications.config import Settings
from services.notifications.consent import ConsentKeys
from services.notifications.consumer import stationery
from services.notifications.handlers import event_handlers
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.shared.consumer import IdempotentConsumer
from services.shared.db import as_utc, make_engine, upgrade
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import UPDATE_PUBLISHED
from tests.unit.notifications.conftest import booked, gift, news, refund

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer dev-admin-token"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    upgrade(database_url, MIGRATIONS)
    return replace(Settings.from_env(), database_url=database_url, admin_token="s3cret")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


class Apply:
    """Events through the service's idempotent consumer, as the worker applies them."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.consumer = IdempotentConsumer(
            lambda: NotificationsUnitOfWork(engine),
            "notifications-api-test",
            ("t",),
            event_handlers(stationery(settings)),
            "unused:9092",
            None,  # type: ignore[arg-type]
        )

    def __call__(self, *events: CloudEvent) -> None:
        for event in events:
            assert self.consumer.apply(event.to_json().encode()).status == "applied"


@pytest.fixture
def apply(settings: Settings, engine: Engine) -> Apply:
    return Apply(settings, engine)


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def rows(engine: Engine, kind: str | None = None) -> list[Any]:
    query = select(store.deliveries).order_by(store.deliveries.c.created_at)
    if kind:
        query = query.where(store.deliveries.c.kind == kind)
    with engine.connect() as conn:
        return list(conn.execute(query))


def parsed(row: Any) -> email.message.EmailMessage:
    message = email.message_from_string(row.message, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def unsubscribe_path(row: Any) -> str:
    header = str(parsed(row)["List-Unsubscribe"])
    match = re.fullmatch(r"<http://127\.0\.0\.1:8003(/unsubscribe/[^>]+)>", header)
    assert match, header
    return match.group(1)


def all_campaigns_path(row: Any) -> str:
    text = parsed(row).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(r"every campaign: http://127\.0\.0\.1:8003(/unsubscribe/\S+)", text)
    assert match, text
    return match.group(1)


def wants_news(engine: Engine, campaign_id: str, address: str) -> bool:
    with NotificationsUnitOfWork(engine) as uow:
        donor = uow.donors.get(campaign_id, address)
    return donor is not None and donor.wants_news


# --- unsubscribing --------------------------------------------------------------------------


def test_the_one_click_post_unsubscribes_and_the_next_post_is_skipped(
    apply: Apply, engine: Engine, client: FlaskClient
) -> None:
    apply(gift("ada@example.org", opt_in=True), gift("bob@example.org", opt_in=True))
    apply(news(post_id="post_1"))
    first = {row.recipient: row for row in rows(engine, "news")}

    answer = client.post(
        unsubscribe_path(first["ada@example.org"]), data={"List-Unsubscribe": "One-Click"}
    )
    assert answer.status_code == 200
    apply(news(post_id="post_2"))

    second = {row.recipient: row for row in rows(engine, "news") if row.post_id == "post_2"}
    assert second["ada@example.org"].status == "skipped"
    assert second["ada@example.org"].last_error == "unsubscribed"
    assert second["bob@example.org"].status == "pending"
    # The first post, still pending for Ada when she unsubscribed, is not sent either.
    assert {
        row.recipient: row.status for row in rows(engine, "news") if row.post_id == "post_1"
    } == {"ada@example.org": "skipped", "bob@example.org": "pending"}


def test_opening_the_link_only_asks_for_confirmation(
    apply: Apply, engine: Engine, client: FlaskClient
) -> None:
    apply(gift("ada@example.org", opt_in=True), news())
    [row] = rows(engine, "news")

    answer = client.get(unsubscribe_path(row))

    assert answer.status_code == 200
    assert b'<form method="post"' in answer.data
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Ne plus recevoir les nouvelles de" in answer.text  # French unless asked
    english = client.get(unsubscribe_path(row) + "?lang=en")
    assert "Stop receiving news from" in english.text and 'lang="en"' in english.text
    assert wants_news(engine, "camp_1", "ada@example.org")


def test_a_tampered_or_malformed_link_gets_a_clear_page_and_changes_nothing(
    apply: Apply, engine: Engine, client: FlaskClient, settings: Settings
) -> None:
    apply(gift("ada@example.org", opt_in=True), news())
    [row] = rows(engine, "news")
    path = unsubscribe_path(row)
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    forged = ConsentKeys("not-our-secret").unsubscribe_token(
        ConsentKeys(settings.signing_secret).email_ref("ada@example.org"), None
    )

    for bad in (tampered, "/unsubscribe/not-a-token", f"/unsubscribe/{forged}"):
        for method in (client.get, client.post):
            answer = method(bad, headers={"Accept-Language": "en"})
            assert answer.status_code == 400
            assert b"not valid" in answer.data
            french = method(bad, headers={"Accept-Language": "fr-FR,fr;q=0.9"})
            assert french.status_code == 400
            assert "n’est pas valide" in french.text and 'lang="fr"' in french.text

    assert wants_news(engine, "camp_1", "ada@example.org")


def test_unsubscribing_from_every_campaign_covers_campaigns_given_to_later_without_consent(
    apply: Apply, engine: Engine, client: FlaskClient
) -> None:
    apply(gift("ada@example.org", opt_in=True, campaign="camp_1"))
    apply(gift("ada@example.org", opt_in=True, campaign="camp_2"))
    apply(news(campaign="camp_1"))
    [row] = rows(engine, "news")

    assert client.post(all_campaigns_path(row)).status_code == 200

    assert not wants_news(engine, "camp_1", "ada@example.org")
    assert not wants_news(engine, "camp_2", "ada@example.org")


def test_a_new_gift_with_consent_subscribes_again(
    apply: Apply, engine: Engine, client: FlaskClient
) -> None:
    apply(gift("ada@example.org", opt_in=True, at=datetime.now(UTC) - timedelta(days=1)))
    apply(news(post_id="post_1"))
    [row] = rows(engine, "news")
    client.post(all_campaigns_path(row))
    # A gift without consent does not subscribe her again ...
    apply(gift("ada@example.org", opt_in=False, at=datetime.now(UTC)))
    assert not wants_news(engine, "camp_1", "ada@example.org")

    # ... a gift with consent, given after she unsubscribed, does.
    apply(gift("ada@example.org", opt_in=True, at=datetime.now(UTC) + timedelta(seconds=1)))

    assert wants_news(engine, "camp_1", "ada@example.org")
    with engine.connect() as conn:
        [donor] = conn.execute(select(store.donors)).all()
    assert donor.unsubscribed_at is None
    assert donor.consent_source == "checkout"


def test_a_donor_recorded_before_pseudonyms_can_still_unsubscribe(
    apply: Apply, engine: Engine, client: FlaskClient
) -> None:
    apply(gift("ada@example.org", opt_in=True))
    with engine.begin() as conn:  # as 0001 left it: no pseudonym
        conn.execute(store.donors.update().values(email_ref=None))
    apply(news())
    [row] = rows(engine, "news")

    assert client.post(unsubscribe_path(row)).status_code == 200

    assert not wants_news(engine, "camp_1", "ada@example.org")


def test_consent_to_updates_once_given_is_kept_by_later_gifts(apply: Apply, engine: Engine) -> None:
    now = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    apply(gift("Zoe@Example.org", opt_in=True, at=now))
    apply(gift("zoe@example.org", opt_in=False, at=now + timedelta(days=1)))

    with engine.connect() as conn:
        [donor] = conn.execute(select(store.donors)).all()
    assert (donor.email, donor.locale, donor.updates_opt_in) == ("zoe@example.org", "en", True)
    assert as_utc(donor.consent_at) == now


# --- operators ------------------------------------------------------------------------------


def test_operators_search_by_donor_campaign_post_and_status_and_count_a_post(
    apply: Apply, engine: Engine, client: FlaskClient
) -> None:
    apply(gift("ada@example.org", opt_in=True), gift("bob@example.org", opt_in=True))
    apply(booked("don_a", "ada@example.org"), booked("don_b", "bob@example.org"))
    apply(news(post_id="post_1"))
    ada_news = next(row for row in rows(engine, "news") if row.recipient == "ada@example.org")
    client.post(unsubscribe_path(ada_news))

    by_donor = client.get("/api/v1/deliveries?donor=ADA@example.org", headers=ADMIN).get_json()
    assert sorted(d["kind"] for d in by_donor) == ["news", "receipt"]
    assert {d["recipient"] for d in by_donor} == {"a***@example.org"}

    by_post = client.get(
        "/api/v1/deliveries?post_id=post_1&status=pending&campaign_id=camp_1", headers=ADMIN
    ).get_json()
    assert [d["recipient"] for d in by_post] == ["b***@example.org"]

    counts = client.get("/api/v1/posts/post_1/counts", headers=ADMIN).get_json()
    assert counts == {"post_id": "post_1", "sent": 0, "failed": 0, "skipped": 1, "pending": 1}


def test_deliveries_are_listed_by_donation_with_masked_addresses(
    apply: Apply, client: FlaskClient
) -> None:
    apply(booked("don_1", "zoe@example.org"), booked("don_2", "max@example.org"))

    answer = client.get(
        "/api/v1/deliveries?donation_id=don_1", headers={"Authorization": "Bearer s3cret"}
    )

    assert answer.status_code == 200
    [delivery] = answer.get_json()
    assert delivery["kind"] == "receipt"
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 0
    assert delivery["recipient"] == "z***@example.org"
    assert delivery["created_at"].endswith("+00:00")
    assert delivery["sent_at"] is None


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "s3cret", "Basic s3cret"])
def test_deliveries_need_the_admin_token(client: FlaskClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    answer = client.get("/api/v1/deliveries?donation_id=don_1", headers=headers)

    assert answer.status_code == 401
    assert answer.get_json()["code"] == 401


def test_the_admin_api_wants_the_admin_role(client: FlaskClient) -> None:
    assert client.get("/api/v1/deliveries").status_code == 401
    finance = {"Authorization": "Bearer dev-finance-token"}
    assert client.get("/api/v1/deliveries", headers=finance).status_code == 403
    assert (
        client.post("/api/v1/erasures", json={"email": "a@b.org"}, headers=finance).status_code
        == 403
    )


def test_an_operator_resends_a_failed_delivery(
    apply: Apply, engine: Engine, client: FlaskClient
) -> None:
    apply(booked("don_1", "ada@example.org"))
    [receipt] = rows(engine, "receipt")
    with NotificationsUnitOfWork(engine) as uow:
        uow.deliveries.mark_failed(receipt.id, "550 no such user")

    answer = client.post(f"/api/v1/deliveries/{receipt.id}/resend", headers=ADMIN)

    assert answer.status_code == 202
    assert answer.get_json()["status"] == "pending"
    assert client.post("/api/v1/deliveries/nope/resend", headers=ADMIN).status_code == 404


def test_erasure_removes_the_donor_and_leaves_a_pseudonym_in_the_log(
    apply: Apply, engine: Engine, client: FlaskClient, settings: Settings
) -> None:
    apply(gift("ada@example.org", opt_in=True), gift("bob@example.org", opt_in=True))
    apply(booked("don_a", "ada@example.org"), booked("don_b", "bob@example.org"), news())

    answer = client.post("/api/v1/erasures", json={"email": "Ada@example.org"}, headers=ADMIN)

    assert answer.status_code == 200
    outcome = answer.get_json()
    ref = ConsentKeys(settings.signing_secret).email_ref("ada@example.org")
    assert outcome == {
        "email_ref": ref,
        "donors_removed": 1,
        "deliveries_pseudonymised": 2,
        "pending_cancelled": 2,
        "difts_forgotten": 0,
    }
    with engine.connect() as conn:
        assert [d.email for d in conn.execute(select(store.donors))] == ["bob@example.org"]
    for row in rows(engine):
        if row.recipient_ref == ref:
            assert row.recipient.startswith("erased:")
            assert row.message is None
            assert row.status == "skipped"
        else:
            assert row.recipient == "bob@example.org"
    # Operators still find what was sent to her, by the address she gives them.
    found = client.get("/api/v1/deliveries?donor=ada@example.org", headers=ADMIN).get_json()
    assert len(found) == 2
    assert {d["recipient"] for d in found} == {"(erased)"}
    # A second request changes nothing more.
    again = client.post("/api/v1/erasures", json={"email": "ada@example.org"}, headers=ADMIN)
    assert again.get_json()["donors_removed"] == 0


def test_an_event_missing_what_its_type_requires_goes_to_dead_letters(
    apply: Apply,
) -> None:
    broken = new_event(UPDATE_PUBLISHED, "difts/donations", {"campaign_id": "c"})
    assert apply.consumer.apply(broken.to_json().encode()).status == "dead_lettered"
    nobody = refund("don_unknown", "re_1", 700, 700)
    outcome = apply.consumer.apply(nobody.to_json().encode())
    assert outcome.status == "dead_lettered"
    assert "no donor" in (outcome.reason or "")
