"""Each service does what its OpenAPI document says, by every check schemathesis has.

Schemathesis reads each app's /openapi.json and sends the requests it derives from it (its
examples, the coverage phase's boundary and missing-parameter cases, and fuzzed valid and
invalid ones) through the Flask test client, on PostgreSQL (text a document allows must be
text the database can hold) with stripe-mock behind Stripe. Every response is validated with
all of schemathesis's checks: no 5xx, documented status codes, content types, headers and
bodies, valid requests accepted and invalid ones refused, unsupported methods 405, and the
bearer token enforced where the document declares it (schemathesis replays a request without
the token and with a wrong one). Protected operations get a token with the role they name in
x-required-role; each also answers its documented 401 without a token and 403 with a token
of another role.

A valid request may still be refused for the state it meets (a campaign's currency, the
configured gift limits): those 422 answers are listed per operation below, as the document's
422 descriptions list them, and accepted only when the error names one of those fields.

25 derandomized examples per operation keep the run short; for a deeper one, run with
CONFORMANCE_EXAMPLES=300 CONFORMANCE_RANDOM=1 (fresh random cases each time).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure

from services.donations.app import create_app as donations_app_for
from services.donations.demo import seed_demo_campaign
from services.donations.handlers.difts import AcceptRecipients, accept_recipients
from services.donations.unit_of_work import DonationsUnitOfWork
from services.ledger.__main__ import MIGRATIONS as LEDGER_MIGRATIONS
from services.ledger.app import create_app as ledger_app_for
from services.ledger.config import Settings as LedgerSettings
from services.ledger.consumer import build_consumer
from services.notifications.__main__ import MIGRATIONS as NOTIFICATIONS_MIGRATIONS
from services.notifications.app import create_app as notifications_app_for
from services.notifications.config import Settings as NotificationsSettings
from services.notifications.consumer import build_consumer as build_notifications_consumer
from services.shared.auth import BEARER_AUTH
from services.shared.db import make_engine, upgrade
from services.shared.envelope import new_event
from services.shared.events import DONATION_SUCCEEDED, UPDATE_PUBLISHED
from services.shared.money import Money
from tests.support import donations as donation_handlers
from tests.support import infra
from tests.support import programmes as programme_handlers
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings
from tests.unit.ledger.conftest import (
    CAMPAIGN,
    PROGRAMME,
    allocation,
    directed,
    funded,
    gift,
    published,
    refund,
)

pytestmark = pytest.mark.integration

TOKENS = "conformance-admin:admin,conformance-finance:finance"
BEARER = {"admin": "Bearer conformance-admin", "finance": "Bearer conformance-finance"}
# A sponsor's operations take an admin token or the sponsor's own: another role's is refused.
OTHER_ROLE = {"admin": "finance", "finance": "admin", "sponsor": "finance"}

FUZZ = settings(
    max_examples=int(os.environ.get("CONFORMANCE_EXAMPLES", "25")),
    derandomize=os.environ.get("CONFORMANCE_RANDOM") is None,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

# The valid requests an operation refuses because of the state they meet: operation -> the
# fields a 422 may name (the document's 422 description says the same).
REFUSED_BY_STATE = {
    # A live campaign keeps its currency and changes its meal price only from a date.
    "PATCH /api/v1/campaigns/{slug}": frozenset({"currency", "meal_price"}),
    # The campaign's currency; "not in the past" depends on the clock.
    "POST /api/v1/campaigns/{slug}/meal-price": frozenset({"currency", "effective_from"}),
    # The campaign's currency, DONATION_MIN_AMOUNT..MAX_AMOUNT, meals times the meal price.
    "POST /api/v1/campaigns/{slug}/donations": frozenset(
        {"amount", "meals", "currency", "cover_fee", "public_message"}
    ),
    # A SIREN's Luhn key, which no pattern can say.
    "POST /api/v1/admin/sponsors": frozenset({"siren"}),
    # The shortlisted campaigns must exist, be published and take the programme's currency.
    "POST /api/v1/admin/sponsors/{sponsor_id}/programmes": frozenset(
        {"shortlist", "currency", "fallback_campaign", "fallback_campaign_id", "expires_at", "name"}
    ),
    "PATCH /api/v1/admin/programmes/{programme_id}": frozenset(
        {"shortlist", "currency", "fallback_campaign", "fallback_campaign_id", "expires_at", "name"}
    ),
    # The budget left, and what the books store.
    "POST /api/v1/admin/programmes/{programme_id}/credits": frozenset({"amount"}),
    "POST /api/v1/finance/programmes/{programme_id}/bank-transfers": frozenset(
        {"amount", "reference"}
    ),
    # The programme's value (fixed or per recipient) and its budget left.
    "POST /api/v1/sponsor/programmes/{programme_id}/difts": frozenset({"value", "budget"}),
    "POST /api/v1/sponsor/programmes/{programme_id}/codes": frozenset({"value", "count"}),
    # More than 400 buckets of the interval, or an until before the campaign's first entry.
    "GET /api/v1/finance/campaigns/{slug}/history": frozenset({"interval", "until"}),
    # A payout, or since and until (the document says it in words: no schema can).
    "POST /api/v1/finance/resync": frozenset({"payout", "since", "until"}),
    # A CSV file's rows, which the document describes as text.
    "POST /api/v1/sponsor/programmes/{programme_id}/recipients": frozenset({"file", "value"}),
}

LIVE = "petites-cantines"
POST = "post-1"
# Campaigns for the operations that change one, so each finds the state it is meant for.
CAMPAIGN_FOR = {
    ("PATCH", "/api/v1/campaigns/{slug}"): "conformance-edit",
    ("POST", "/api/v1/campaigns/{slug}/publish"): "conformance-draft",
    ("POST", "/api/v1/campaigns/{slug}/close"): "conformance-close",
    ("POST", "/api/v1/campaigns/{slug}/meal-price"): "conformance-price",
    ("POST", "/api/v1/campaigns/{slug}/news"): "conformance-news",
}


# What each operation answered during the run: each must have done its work at least once.
ANSWERS: defaultdict[str, Counter[int]] = defaultdict(Counter)


def _pinned(method: str, path: str, **values: str) -> dict[str, Any]:
    """Config pinning an operation's path parameters to things that exist."""
    # One include filter: two (method, path) would match operations having either.
    return {
        "include-name": f"{method} {path}",
        "parameters": {f"path.{name}": value for name, value in values.items()},
    }


def _config(role: str, operations: list[dict[str, Any]]) -> SchemathesisConfig:
    """Every request carries a token of `role` (schemathesis drops or spoils it itself where it
    tests the document's security), some operations' path parameters pinned."""
    return SchemathesisConfig.from_dict(
        {"headers": {"Authorization": BEARER[role]}, "operations": operations}
    )


def _fields_at_fault(response: Any) -> set[str]:
    try:
        errors = response.json().get("errors") or {}
    except ValueError:
        return set()
    return set(errors.get("json") or {}) | set(errors.get("query") or {})


def conform(case: Any) -> None:
    """Send the case and validate the answer with every check, a valid request being allowed a
    422 only for the state-dependent fields of its operation."""
    response = case.call()
    ANSWERS[case.operation.label][response.status_code] += 1
    state_fields = REFUSED_BY_STATE.get(case.operation.label, frozenset())

    def positive_data_acceptance_but_state(ctx: Any, answer: Any, sent: Any) -> bool | None:
        try:
            return positive_data_acceptance(ctx, answer, sent)
        except Failure:
            named = _fields_at_fault(answer)
            if answer.status_code == 422 and named and named <= state_fields:
                return None
            raise

    if case.operation.label in SIGNED:
        # No generated request carries a valid signature: every answer must be a declared
        # refusal (a 4xx the document or HTTP allows), and none a 5xx.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
        if case.method == "POST":
            assert 400 <= response.status_code < 500, (case.headers, response.status_code)
        return
    case.validate_response(
        response,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[positive_data_acceptance_but_state],
    )


# Operations whose valid requests need a secret no generator has (Stripe's signature); signed
# webhooks are driven by test_webhook_shapes.py and the end-to-end tests.
SIGNED = frozenset({"POST /webhooks/stripe"})


def assert_each_succeeded(schema: Any) -> None:
    """Each operation fuzzed above answered 2xx at least once: the token, the pinned ids and
    the seeded data let valid requests through, so the checks judged real work."""
    labels = [result.ok().label for result in schema.get_all_operations()]
    fuzzed = [label for label in labels if label in ANSWERS and label not in SIGNED]
    if not fuzzed:
        pytest.skip("the fuzzing test of this service did not run")
    idle = [label for label in fuzzed if not any(200 <= s < 300 for s in ANSWERS[label])]
    assert not idle, {label: dict(ANSWERS[label]) for label in idle}


def _required_role(operation: Any) -> str | None:
    """The role a protected operation names; None for a public one or an optional token."""
    security = operation.definition.raw.get("security", [])
    if {BEARER_AUTH: []} in security and {} not in security:
        return str(operation.definition.raw["x-required-role"])
    return None


def check_tokens_are_enforced(schema: Any, path_values: dict[str, str]) -> int:
    """Every operation that declares bearerAuth answers its documented 401 (WWW-Authenticate,
    error body) without a token and its 403 with a token of another role; returns how many."""
    protected = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        role = _required_role(operation)
        if role is None:
            continue
        protected += 1
        assert {"401", "403"} <= set(operation.definition.raw["responses"]), operation.label
        names = re.findall(r"\{(\w+)\}", operation.path)
        case = operation.Case(path_parameters={name: path_values[name] for name in names})
        documented = [
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ]
        anonymous = case.call()
        assert anonymous.status_code == 401, (operation.label, anonymous.text)
        assert anonymous.headers["www-authenticate"][0].startswith("Bearer")
        case.validate_response(anonymous, checks=documented)
        wrong = {"Authorization": BEARER[OTHER_ROLE[role]]}
        forbidden = case.call(headers=wrong)
        assert forbidden.status_code == 403, (operation.label, forbidden.text)
        assert role in forbidden.json()["message"]
        case.validate_response(forbidden, checks=documented, headers=wrong)
    return protected


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's from_fixture reads and writes Node._nodeid, which pytest 9 no longer
    has: give it the node's id to start from."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def module_database(postgres_admin_url: str) -> Iterator[Callable[[str], str]]:
    """A factory of fresh PostgreSQL databases that live as long as this module."""
    with contextlib.ExitStack() as databases:
        yield lambda prefix: databases.enter_context(
            infra.fresh_database(postgres_admin_url, prefix=prefix)
        )


# --- donations ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def donations_app(module_database: Callable[[str], str], stripe_mock_url: str) -> Any:
    """The donations app on PostgreSQL: the live demo campaign, one campaign for each
    operation that changes one, and a donation to read."""
    url = module_database("conf_donations")
    upgrade(url, DONATIONS_MIGRATIONS)
    engine = make_engine(url)
    seed_demo_campaign(engine)
    price = Money(1350, "EUR")
    for slug in set(CAMPAIGN_FOR.values()) - {"conformance-draft"}:
        donation_handlers.publish_campaign(
            engine,
            slug=slug,
            title=slug,
            cause="Cause",
            summary="",
            meal_price=price,
            goal_meals=100,
        )
    donation_handlers.create_campaign(
        engine, slug="conformance-draft", meal_price=price, values={"title": "D", "cause": "C"}
    )
    PROGRAMMES.update(_seed_programmes(engine))
    engine.dispose()
    return donations_app_for(donations_settings(url, stripe_mock_url, api_tokens=TOKENS))


# The company difts each operation is pinned to (set by donations_app).
PROGRAMMES: dict[str, str] = {}


def _seed_programmes(engine: Any) -> dict[str, str]:
    """A sponsor, a draft programme to edit, and an open one with a large budget (a recipient
    upload and a receipt of its own) for the sponsor's operations."""
    sponsor_id, _token = programme_handlers.register_sponsor(engine)
    draft = programme_handlers.draft_programme(engine, sponsor_id, [LIVE])
    open_one = programme_handlers.draft_programme(engine, sponsor_id, [LIVE])
    _funding, receipt, _ = programme_handlers.fund_by_transfer(engine, open_one.id, 1_500_000_000)
    programme_handlers.open_programme(engine, open_one.id)
    upload = accept_recipients(
        AcceptRecipients(open_one.id, b"email\nada@example.org\n"), DonationsUnitOfWork(engine)
    )
    return {
        "sponsor_id": sponsor_id,
        "draft": draft.id,
        "open": open_one.id,
        "upload_id": upload.id,
        "receipt_id": receipt.id,
    }


@pytest.fixture(scope="module")
def donation_id(donations_app: Any) -> str:
    """A donation that exists, to read back."""
    reply = donations_app.test_client().post(
        f"/api/v1/campaigns/{LIVE}/donations",
        json={"meals": 2, "donor": {"email": "ada@example.org"}},
    )
    assert reply.status_code == 201, reply.text
    return str(reply.get_json()["id"])


@pytest.fixture(scope="module")
def donations_schema(donations_app: Any, donation_id: str) -> Any:
    """The donations document, each operation's slug pinned to the campaign it is meant for."""
    operations = [_pinned(method, path, slug=slug) for (method, path), slug in CAMPAIGN_FOR.items()]
    operations += [
        _pinned("GET", "/api/v1/campaigns/{slug}", slug=LIVE),
        _pinned("GET", "/api/v1/campaigns/{slug}/news", slug=LIVE),
        _pinned("POST", "/api/v1/campaigns/{slug}/donations", slug=LIVE),
        _pinned("GET", "/api/v1/donations/{donation_id}", donation_id=donation_id),
        _pinned("GET", "/api/v1/admin/sponsors/{sponsor_id}", sponsor_id=PROGRAMMES["sponsor_id"]),
        _pinned(
            "POST",
            "/api/v1/admin/sponsors/{sponsor_id}/programmes",
            sponsor_id=PROGRAMMES["sponsor_id"],
        ),
        _pinned(
            "PATCH", "/api/v1/admin/programmes/{programme_id}", programme_id=PROGRAMMES["draft"]
        ),
    ]
    operations += [
        _pinned(method, path, programme_id=PROGRAMMES["open"])
        for method, path in PROGRAMME_OPERATIONS
    ]
    operations += [
        _pinned(
            "GET",
            "/api/v1/sponsor/programmes/{programme_id}/uploads/{upload_id}",
            programme_id=PROGRAMMES["open"],
            upload_id=PROGRAMMES["upload_id"],
        ),
        _pinned(
            "GET",
            "/api/v1/sponsor/programmes/{programme_id}/receipts/{receipt_id}",
            programme_id=PROGRAMMES["open"],
            receipt_id=PROGRAMMES["receipt_id"],
        ),
    ]
    return schemathesis.openapi.from_wsgi(
        "/openapi.json", donations_app, config=_config("admin", operations)
    ).exclude(path_regex="^/api/v1/finance/")


# The operations on the open programme (pinned to it).
PROGRAMME_OPERATIONS = (
    ("POST", "/api/v1/admin/programmes/{programme_id}/checkout"),
    ("POST", "/api/v1/admin/programmes/{programme_id}/credits"),
    ("GET", "/api/v1/sponsor/programmes/{programme_id}"),
    ("POST", "/api/v1/sponsor/programmes/{programme_id}/recipients"),
    ("POST", "/api/v1/sponsor/programmes/{programme_id}/difts"),
    ("POST", "/api/v1/sponsor/programmes/{programme_id}/codes"),
)


@pytest.fixture(scope="module")
def donations_finance_schema(donations_app: Any, donations_schema: Any) -> Any:
    """The donations document's finance operations (a bank transfer received), with a
    finance token, pinned to the open programme."""
    path = "/api/v1/finance/programmes/{programme_id}/bank-transfers"
    operations = [_pinned("POST", path, programme_id=PROGRAMMES["open"])]
    return schemathesis.openapi.from_wsgi(
        "/openapi.json", donations_app, config=_config("finance", operations)
    ).exclude(path_regex="^(?!/api/v1/finance/)")


# The Stripe webhook too: fuzzed requests carry no valid signature, so what is checked is that
# every answer is a refusal the document declares (see SIGNED).
donations = schemathesis.pytest.from_fixture("donations_schema")


@donations.parametrize()
@FUZZ
def test_the_donations_api_does_what_its_document_says(case: Any) -> None:
    conform(case)


def test_every_donations_operation_did_its_work(donations_schema: Any) -> None:
    assert_each_succeeded(donations_schema)


def test_the_donations_admin_operations_answer_401_and_403_as_documented(
    donations_schema: Any, donation_id: str
) -> None:
    values = {
        "slug": "conformance-edit",
        "donation_id": donation_id,
        "sponsor_id": PROGRAMMES["sponsor_id"],
        "programme_id": PROGRAMMES["open"],
        "upload_id": PROGRAMMES["upload_id"],
        "receipt_id": PROGRAMMES["receipt_id"],
    }
    # 6 on campaigns and news; 6 admin and 6 sponsor operations on company difts.
    assert check_tokens_are_enforced(donations_schema, values) == 19


donations_finance = schemathesis.pytest.from_fixture("donations_finance_schema")


@donations_finance.parametrize()
@FUZZ
def test_the_donations_finance_api_does_what_its_document_says(case: Any) -> None:
    conform(case)


def test_every_donations_finance_operation_did_its_work(donations_finance_schema: Any) -> None:
    assert_each_succeeded(donations_finance_schema)


def test_the_donations_finance_operations_answer_401_and_403_as_documented(
    donations_finance_schema: Any,
) -> None:
    values = {"programme_id": PROGRAMMES["open"]}
    assert check_tokens_are_enforced(donations_finance_schema, values) == 1


# --- ledger ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger_app(module_database: Callable[[str], str], stripe_mock_url: str) -> Any:
    """The ledger app on PostgreSQL, with a campaign's gifts and a refund booked, and a
    programme of difts funded with one dift directed."""
    url = module_database("conf_ledger")
    upgrade(url, LEDGER_MIGRATIONS)
    engine = make_engine(url)
    consumer = build_consumer(engine, "127.0.0.1:9", "ledger", dead_letter_producer=None)  # type: ignore[arg-type]
    for event in [
        published(),
        gift("d-1", 2700, fee=64, when="2026-01-10T10:00:00+00:00"),
        gift("d-2", 1350, fee=40, when="2026-01-11T10:00:00+00:00"),
        gift("d-3", 500, fee=20, when="2026-02-01T10:00:00+00:00"),
        refund("d-2", "re_1", 350, 350),
        funded("f-1", 10_000, fee=145),
        directed("dift-1", 2_700, [allocation(CAMPAIGN, 2_700)]),
    ]:
        assert consumer.apply(event.to_json().encode()).status == "applied"
    engine.dispose()
    settings_ = LedgerSettings(
        url, "127.0.0.1:9", "ledger", api_tokens=TOKENS, stripe_api_base=stripe_mock_url
    )
    return ledger_app_for(settings_)


@pytest.fixture(scope="module")
def ledger_schema(ledger_app: Any) -> Any:
    """The ledger document, campaign slugs pinned to the booked campaign."""
    operations = [
        _pinned("GET", "/api/v1/campaigns/{slug}/summary", slug=LIVE),
        _pinned("GET", "/api/v1/finance/campaigns/{slug}/summary", slug=LIVE),
        _pinned("GET", "/api/v1/finance/campaigns/{slug}/history", slug=LIVE),
        _pinned("PUT", "/api/v1/finance/campaigns/{slug}/fee-policy", slug=LIVE),
        _pinned("GET", "/api/v1/finance/programmes/{programme_id}/balance", programme_id=PROGRAMME),
    ]
    return schemathesis.openapi.from_wsgi(
        "/openapi.json", ledger_app, config=_config("finance", operations)
    )


ledger = schemathesis.pytest.from_fixture("ledger_schema")


@ledger.parametrize()
@FUZZ
def test_the_ledger_api_does_what_its_document_says(case: Any) -> None:
    conform(case)


def test_every_ledger_operation_did_its_work(ledger_schema: Any) -> None:
    assert_each_succeeded(ledger_schema)


def test_every_finance_operation_answers_401_and_403_as_documented(ledger_schema: Any) -> None:
    values = {"slug": LIVE, "month": "2020-01", "payout": "po_123", "programme_id": PROGRAMME}
    assert check_tokens_are_enforced(ledger_schema, values) == 10


def test_the_csv_exports_are_documented_as_text_csv(ledger_app: Any) -> None:
    document = ledger_app.test_client().get("/openapi.json").get_json()
    for path in ("/api/v1/finance/journal", "/api/v1/finance/trial-balance"):
        answer = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert set(answer) == {"application/json", "text/csv"}


# --- notifications -----------------------------------------------------------------------------


def _gift_with_news(donation_id: str, email: str) -> bytes:
    return (
        new_event(
            DONATION_SUCCEEDED,
            "difts/donations",
            {
                "donation_id": donation_id,
                "campaign_id": "c-1",
                "campaign_slug": LIVE,
                "campaign_title": "Les Petites Cantines",
                "amount": 2700,
                "currency": "EUR",
                "meal_price": 1350,
                "donor": {"email": email, "name": "Ada", "locale": "en"},
                "updates_opt_in": True,
                "succeeded_at": datetime.now(UTC).isoformat(),
            },
        )
        .to_json()
        .encode()
    )


def _news_post(post_id: str) -> bytes:
    return (
        new_event(
            UPDATE_PUBLISHED,
            "difts/donations",
            {
                "campaign_id": "c-1",
                "campaign_slug": LIVE,
                "campaign_title": "Les Petites Cantines",
                "cause": "Les Petites Cantines",
                "post_id": post_id,
                "title": "A new canteen",
                "body_markdown": "The doors open on Monday.",
                "body_html": "<p>The doors open on Monday.</p>",
                "url": f"http://donations.test/campaigns/{LIVE}/news/{post_id}",
                "published_at": datetime.now(UTC).isoformat(),
            },
        )
        .to_json()
        .encode()
    )


@pytest.fixture(scope="module")
def notifications_app(module_database: Callable[[str], str], kafka_bootstrap: str) -> Any:
    """The notifications app on PostgreSQL, its delivery log filled the way the service fills
    it: two gifts whose donors want news, then a news post, through the consumer."""
    url = module_database("conf_notifications")
    upgrade(url, NOTIFICATIONS_MIGRATIONS)
    settings_ = replace(
        NotificationsSettings.from_env(),
        database_url=url,
        kafka_bootstrap_servers=kafka_bootstrap,
        api_tokens=TOKENS,
        admin_token="",
    )
    engine = make_engine(url)
    consumer = build_notifications_consumer(settings_, engine)
    for message in [
        _gift_with_news("d-1", "ada@example.org"),
        _gift_with_news("d-2", "grace@example.org"),
        _news_post(POST),
    ]:
        assert consumer.apply(message).status == "applied"
    engine.dispose()
    return notifications_app_for(settings_)


@pytest.fixture(scope="module")
def delivery_id(notifications_app: Any) -> str:
    """A delivery of the log (a news email: it can be sent again)."""
    reply = notifications_app.test_client().get(
        "/api/v1/deliveries",
        query_string={"post_id": POST},
        headers={"Authorization": BEARER["admin"]},
    )
    assert reply.status_code == 200, reply.text
    found = reply.get_json()
    assert found, "the news post made no delivery"
    return str(found[0]["id"])


@pytest.fixture(scope="module")
def notifications_schema(notifications_app: Any, delivery_id: str) -> Any:
    """The notifications document, ids pinned to rows of the delivery log."""
    operations = [
        _pinned("POST", "/api/v1/deliveries/{delivery_id}/resend", delivery_id=delivery_id),
        _pinned("GET", "/api/v1/posts/{post_id}/counts", post_id=POST),
    ]
    return schemathesis.openapi.from_wsgi(
        "/openapi.json", notifications_app, config=_config("admin", operations)
    )


notifications = schemathesis.pytest.from_fixture("notifications_schema")


@notifications.parametrize()
@FUZZ
def test_the_notifications_api_does_what_its_document_says(case: Any) -> None:
    conform(case)


def test_every_notifications_operation_did_its_work(notifications_schema: Any) -> None:
    assert_each_succeeded(notifications_schema)


def test_every_notifications_admin_operation_answers_401_and_403_as_documented(
    notifications_schema: Any, delivery_id: str
) -> None:
    values = {"delivery_id": delivery_id, "post_id": POST}
    assert check_tokens_are_enforced(notifications_schema, values) == 5
