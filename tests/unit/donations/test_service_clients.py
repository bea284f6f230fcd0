"""service_clients.py's contract with a service, against a stand-in served over HTTP in a
thread: what it sends (the bearer token, the query, the body) and how each kind of answer
comes back (JSON, a refusal with its fields, a 5xx, no answer in time, a closed port). The
real ledger and notifications apps are in tests/integration/donations/test_service_clients.py."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from services.donations.config import Settings
from services.donations.service_clients import (
    LedgerClient,
    NotificationsClient,
    ServiceRefused,
    ServiceUnavailable,
)

TOKEN = "stand-in-secret-token"  # noqa: S105


def stand_in() -> tuple[Flask, list[dict[str, Any]]]:
    """A service that records each request and answers what its path asks for."""
    app = Flask("stand-in")
    seen: list[dict[str, Any]] = []

    @app.route("/<path:path>", methods=["GET", "POST"])
    def answer(path: str) -> Any:
        seen.append(
            {
                "method": request.method,
                "path": "/" + path,
                "raw": request.environ.get("RAW_URI", ""),
                "args": request.args.to_dict(),
                "json": request.get_json(silent=True),
                "authorization": request.headers.get("Authorization"),
            }
        )
        if path.endswith("/previews/news"):
            body = request.get_json()
            return jsonify(
                subject=f"[{body['campaign_title']}] {body['title']}",
                text=f"Chers difteurs, {body['body_markdown']}",
                html=f"<p>{body['body_markdown']}</p>",
            )
        if "refused" in path:
            errors = {"json": {"title": ["Missing data."]}, "query": {"limit": ["Too big."]}}
            return jsonify(code=422, message="some fields are invalid", errors=errors), 422
        if "broken" in path:
            return jsonify(code=500, message="Internal Server Error"), 500
        if "slow" in path:
            time.sleep(1.0)
        if "not-json" in path:
            return "<html>a proxy's page</html>", 200
        if path.endswith("/journal") and request.args.get("format") == "csv":
            return app.response_class(iter([b"\xef\xbb\xbfentry_id\r\n", b"1\r\n"]), 200)
        return jsonify(path="/" + path, ok=True)

    return app, seen


@pytest.fixture
def service() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    app, seen = stand_in()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    thread.join(timeout=10)


def test_the_ledger_client_sends_its_token_the_filters_and_the_body(
    service: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = service
    ledger = LedgerClient(url + "/", TOKEN)

    ledger.history("petites cantines/x", interval="week", since=datetime(2026, 1, 1, tzinfo=UTC))
    ledger.journal_page(kind="refund", cursor="12.3", limit=20)
    ledger.resync(payout="po_1")

    history, journal, resync = seen
    # A slug typed into a page stays one path segment.
    assert history["raw"].startswith("/api/v1/finance/campaigns/petites%20cantines%2Fx/history?")
    assert history["args"] == {"interval": "week", "since": "2026-01-01T00:00:00+00:00"}
    assert journal["args"] == {"kind": "refund", "cursor": "12.3", "limit": "20"}
    assert (resync["method"], resync["json"]) == ("POST", {"payout": "po_1"})
    assert {request["authorization"] for request in seen} == {f"Bearer {TOKEN}"}


def test_the_journal_csv_streams_the_ledger_s_bytes(
    service: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = service

    chunks = LedgerClient(url, TOKEN).journal_csv(campaign="c-1")

    assert seen[0]["args"] == {"format": "csv", "campaign": "c-1"}  # asked before reading
    assert b"".join(chunks) == b"\xef\xbb\xbfentry_id\r\n1\r\n"


def test_a_refusal_brings_its_status_message_and_every_field_at_fault(
    service: tuple[str, list[dict[str, Any]]],
) -> None:
    url, _seen = service
    client = NotificationsClient(url + "/refused", TOKEN)

    with pytest.raises(ServiceRefused) as refused:
        client.post_counts("p-1")

    assert refused.value.status == 422
    assert refused.value.message == "some fields are invalid"
    assert refused.value.fields == {"title": ["Missing data."], "limit": ["Too big."]}


@pytest.mark.parametrize(
    ("prefix", "detail"),
    [("/broken", "500"), ("/slow", "no answer in time"), ("/not-json", "not JSON")],
)
def test_a_failure_a_timeout_or_a_strange_answer_is_unavailable(
    service: tuple[str, list[dict[str, Any]]], prefix: str, detail: str
) -> None:
    url, _seen = service
    client = LedgerClient(url + prefix, TOKEN, read_timeout=0.2)

    with pytest.raises(ServiceUnavailable) as unavailable:
        client.summary("petites-cantines")

    assert unavailable.value.service == "ledger"
    assert detail in unavailable.value.detail


def test_a_closed_port_is_unavailable_and_the_token_is_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = NotificationsClient(f"http://127.0.0.1:{port}", TOKEN)

    with pytest.raises(ServiceUnavailable) as unavailable:
        client.resend("d-1")

    assert unavailable.value.service == "notifications"
    assert caplog.records
    assert TOKEN not in caplog.text + str(unavailable.value) + repr(client)


def test_the_news_preview_sends_the_post_and_answers_the_email(
    service: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = service

    email = NotificationsClient(url, TOKEN).news_preview(
        campaign_title="Les Petites Cantines",
        campaign_slug="petites-cantines",
        cause_name="Les Petites Cantines",
        title="Ouverture à Bagnolet",
        body_markdown="Une **nouvelle** cantine.",
        locale="fr",
    )

    assert seen[0]["path"] == "/api/v1/previews/news"
    assert seen[0]["json"]["locale"] == "fr"
    assert email == {
        "subject": "[Les Petites Cantines] Ouverture à Bagnolet",
        "text": "Chers difteurs, Une **nouvelle** cantine.",
        "html": "<p>Une **nouvelle** cantine.</p>",
    }


def test_the_clients_are_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DIFTS_LEDGER_URL",
        "DIFTS_LEDGER_TOKEN",
        "DIFTS_NOTIFICATIONS_URL",
        "DIFTS_NOTIFICATIONS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings.from_env()
    assert (defaults.ledger_url, defaults.ledger_token) == (
        "http://127.0.0.1:8002",
        "dev-finance-token",
    )
    assert (defaults.notifications_url, defaults.notifications_token) == (
        "http://127.0.0.1:8003",
        "dev-admin-token",
    )
    monkeypatch.setenv("DIFTS_LEDGER_URL", "http://ledger.internal:9000/")
    monkeypatch.setenv("DIFTS_NOTIFICATIONS_TOKEN", "ops-token")
    settings = Settings.from_env()
    assert LedgerClient.of(settings).base_url == "http://ledger.internal:9000"
    assert NotificationsClient.of(settings)._headers["Authorization"] == "Bearer ops-token"
