"""Signed webhook bodies of every shape, on SQLite and PostgreSQL: each is answered without a
5xx; what cannot be read is answered 200 with outcome "unreadable" and the problem named,
kept with its body for a person, and changes nothing else (no donation moves, no event is
published). Random events of every handled type are thrown at the endpoint too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from services.donations import store
from services.donations.app import create_app
from services.donations.demo import seed_demo_campaign
from services.donations.schemas import StripeEventReceiptSchema
from services.donations.stripe_events import HANDLED_TYPES, body_to_keep
from services.shared.db import make_engine, upgrade
from tests.integration.donations.conftest import fuzzing, post_signed, rows_in
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings

pytestmark = pytest.mark.integration

SECRET = "whsec_shapes"


def deep(levels: int) -> bytes:
    """An object nested `levels` deep inside a checkout event's data."""
    return (
        b'{"id":"evt_deep","type":"checkout.session.completed","data":'
        + (b'{"a":' * levels + b"1" + b"}" * levels)
        + b"}"
    )


def event(event_type: str, obj: Any, event_id: str = "evt_shape") -> bytes:
    return json.dumps({"id": event_id, "type": event_type, "data": {"object": obj}}).encode()


def dispute(**fields: Any) -> dict[str, Any]:
    return {"id": "dp_1", "amount": 2700, "currency": "eur", "charge": "ch_1", **fields}


# (name, body): each is signed with the endpoint secret and must be kept as unreadable.
UNREADABLE: list[tuple[str, bytes]] = [
    ("a JSON array", b'[{"id": "evt_1"}]'),
    ("null", b"null"),
    ("a JSON string", b'"checkout.session.completed"'),
    ("a number", b"12"),
    ("not JSON", b"{not json"),
    ("not UTF-8", b'{"id": "evt_\xff\xfe", "type": "payout.paid"}'),
    ("an empty body", b""),
    ("a byte-order mark", b'\xef\xbb\xbf{"id": "evt_bom", "type": "payout.paid"}'),
    ("no id", b'{"type": "payout.paid", "data": {"object": {}}}'),
    ("a numeric id", b'{"id": 42, "type": "payout.paid", "data": {"object": {}}}'),
    ("an id of 300 characters", event("payout.paid", {}, "evt_" + "x" * 296)),
    ("an id with a NUL", event("payout.paid", {}, "evt_\u0000x")),
    ("data as a string", b'{"id": "evt_ds", "type": "charge.refunded", "data": "refund"}'),
    ("data.object as a list", b'{"id": "evt_dl", "type": "payout.paid", "data": {"object": []}}'),
    ("20,000 levels deep", deep(20_000)),
    ("40 levels deep", deep(40)),
    (
        "a dispute fee as a string",
        event(
            "charge.dispute.created", dispute(balance_transactions=[{"id": "txn_1", "fee": "1500"}])
        ),
    ),
    (
        "balance transactions as an object",
        event("charge.dispute.closed", dispute(status="lost", balance_transactions={"fee": 1500})),
    ),
    (
        "a payout arriving out of range",
        event(
            "payout.paid", {"id": "po_1", "amount": 1000, "currency": "eur", "arrival_date": 10**20}
        ),
    ),
    (
        "a payout arriving before 1970",
        event(
            "payout.paid",
            {"id": "po_2", "amount": 1000, "currency": "eur", "arrival_date": -(10**12)},
        ),
    ),
    (
        "a payout amount as a float",
        event("payout.paid", {"id": "po_3", "amount": 10.5, "currency": "eur"}),
    ),
    (
        "an amount past 64 bits",
        event(
            "refund.created",
            {"id": "re_1", "amount": 2**70, "currency": "eur", "payment_intent": "pi_1"},
        ),
    ),
    (
        "a refund amount as a string",
        event("refund.created", {"id": "re_2", "amount": "2700", "payment_intent": "pi_1"}),
    ),
    ("a refund without an id", event("refund.created", {"amount": 2700})),
    ("refunds as a list", event("charge.refunded", {"id": "ch_1", "refunds": [{"id": "re_3"}]})),
    (
        "a refund entry that is a string",
        event("charge.refunded", {"id": "ch_1", "refunds": {"data": ["re_4"]}}),
    ),
    (
        "metadata as a list",
        event(
            "checkout.session.completed",
            {"id": "cs_1", "payment_status": "paid", "metadata": ["donation_id"]},
        ),
    ),
    (
        "a donation id of 5,000 characters",
        event(
            "checkout.session.completed",
            {"id": "cs_2", "payment_status": "paid", "client_reference_id": "d" * 5000},
        ),
    ),
    (
        "a donation id with a NUL",
        event(
            "checkout.session.expired", {"id": "cs_3", "metadata": {"donation_id": "abc\u0000def"}}
        ),
    ),
    (
        "a currency of 40 letters",
        event(
            "checkout.session.completed",
            {"id": "cs_4", "payment_status": "paid", "amount_total": 2700, "currency": "e" * 40},
        ),
    ),
    (
        "a payment status as a number",
        event("checkout.session.completed", {"id": "cs_5", "payment_status": 1}),
    ),
    (
        "a payment intent as a number",
        event(
            "checkout.session.completed",
            {"id": "cs_6", "payment_status": "paid", "payment_intent": 7},
        ),
    ),
    (
        "an unsupported currency",
        event("payout.paid", {"id": "po_4", "amount": 1000, "currency": "xyz"}),
    ),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def donations_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated donations database with the demo campaign, on each kind of database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('shapes') / 'donations.db'}"
    else:
        url = request.getfixturevalue("database_url")
    upgrade(url, DONATIONS_MIGRATIONS)
    seed_demo_campaign(make_engine(url))
    yield url


@pytest.fixture
def client(donations_database: str, stripe_mock_url: str) -> Any:
    app = create_app(
        donations_settings(donations_database, stripe_mock_url, stripe_webhook_secret=SECRET)
    )
    return app.test_client()


@pytest.fixture
def engine(donations_database: str) -> Iterator[Engine]:
    engine = make_engine(donations_database)
    yield engine
    engine.dispose()


def post(client: Any, body: bytes) -> Any:
    return post_signed(client, body, SECRET)


def counts(engine: Engine) -> dict[str, int]:
    """What a webhook could have changed besides its own record."""
    tables = (store.donations, store.outbox, store.refunds, store.disputes, store.payouts)
    return {table.name: rows_in(engine, table) for table in tables}


@pytest.mark.parametrize(("shape", "body"), UNREADABLE, ids=[name for name, _ in UNREADABLE])
def test_a_signed_body_of_an_unexpected_shape_is_kept_as_unreadable(
    client: Any, engine: Engine, shape: str, body: bytes
) -> None:
    before = counts(engine)
    reply = post(client, body)
    assert reply.status_code == 200, (shape, reply.text)
    answer = reply.get_json()
    assert answer["outcome"] == "unreadable", (shape, answer)
    assert answer["problem"], shape
    assert counts(engine) == before, shape
    with engine.connect() as conn:
        kept = conn.execute(
            select(store.stripe_events).where(store.stripe_events.c.id == answer["event"])
        ).one()
    assert kept.outcome == "unreadable" and kept.problem
    # The body is kept as it came (as text), or as the event it parsed into.
    assert kept.payload == body_to_keep(body) or json.loads(kept.payload) == json.loads(body)
    # Stripe sends it again: it is the same kept event, and still nothing changes.
    again = post(client, body)
    assert again.status_code == 200
    assert again.get_json()["outcome"] in ("duplicate", "unreadable")
    assert counts(engine) == before


def test_a_body_over_the_limit_is_refused_before_it_is_read(client: Any) -> None:
    body = event("payout.paid", {"id": "po_big", "padding": "x" * (600 * 1024)})
    reply = post(client, body)
    assert reply.status_code == 413
    assert reply.get_json()["code"] == 413


def test_an_unsigned_hostile_body_is_refused_and_not_kept(client: Any, engine: Engine) -> None:
    reply = client.post("/webhooks/stripe", data=deep(20_000))
    assert reply.status_code == 400
    assert "Stripe-Signature" in reply.get_json()["errors"]["headers"]
    assert rows_in(engine, store.stripe_events) == 0


def test_an_unhandled_type_is_ignored_whatever_its_data(client: Any) -> None:
    body = b'{"id": "evt_cust", "type": "customer.created", "data": "anything"}'
    assert post(client, body).get_json()["outcome"] == "ignored"


STRIPE_FIELDS = [
    "id",
    "amount",
    "amount_total",
    "currency",
    "payment_intent",
    "payment_status",
    "charge",
    "status",
    "metadata",
    "client_reference_id",
    "refunds",
    "balance_transactions",
    "arrival_date",
    "reason",
    "fee",
    "data",
]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["eur", "zz", "paid", "unpaid", "won", "lost", "succeeded", "\u0000"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(STRIPE_FIELDS) | st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
STRIPE_EVENTS = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=30) | JSON,
        "type": st.sampled_from([*sorted(HANDLED_TYPES), "customer.created"]),
        "data": st.fixed_dictionaries(
            {"object": st.dictionaries(st.sampled_from(STRIPE_FIELDS), JSON, max_size=8)}
        )
        | JSON,
    }
)


def test_no_signed_stripe_event_gets_a_server_error(client: Any) -> None:
    """Random events of every handled type, correctly signed: always answered, never a 5xx."""

    @given(event=STRIPE_EVENTS)
    @fuzzing(200)
    def no_server_error(event: dict[str, Any]) -> None:
        reply = post(client, json.dumps(event).encode())
        assert reply.status_code < 500, (event, reply.text)

    no_server_error()


def test_the_webhook_document_names_its_signature_header_and_its_answer(client: Any) -> None:
    operation = client.get("/openapi.json").get_json()["paths"]["/webhooks/stripe"]["post"]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert (header["name"], header["required"]) == ("Stripe-Signature", True)
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/StripeEventReceipt"}
    for status in ("400", "413", "500"):
        assert status in operation["responses"]
    # What it answers is what it documents.
    reply = post(client, event("customer.created", {"id": "cus_doc"}))
    assert reply.status_code == 200
    assert StripeEventReceiptSchema().validate(reply.answered) == {}
    assert reply.answered["outcome"] == "received"
    unreadable = post(client, b"[]")
    assert StripeEventReceiptSchema().validate(unreadable.get_json()) == {}
