"""POST /api/v1/previews/news: the back office's news editor sees the email donors would get,
in their language, from the same templates and catalogs; admins only; bad input is a 422 with
the field's error; nothing is sent or saved."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.notifications.app import create_app
from services.notifications.config import Settings

ADMIN = {"Authorization": "Bearer dev-admin-token"}
FINANCE = {"Authorization": "Bearer dev-finance-token"}
NBSP = "\u00a0"


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    settings = replace(
        Settings.from_env(),
        database_url=f"sqlite:///{tmp_path / 'notifications.db'}",
        api_tokens="dev-admin-token:admin,dev-finance-token:finance",
        admin_token="",
        public_url="http://notifications.test",
        donations_public_url="http://donations.test",
    )
    return create_app(settings).test_client()


def a_post(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "campaign_title": "Bagnolet",
        "campaign_slug": "petites-cantines-bagnolet",
        "cause_name": "Les Petites Cantines",
        "title": "Opening of Petites Cantines Bagnolet",
        "body_markdown": "We open on **Monday**. <script>alert(1)</script>",
        "locale": "en",
    }
    body.update(overrides)
    return body


def test_the_english_preview_is_the_news_email_a_donor_gets(client: FlaskClient) -> None:
    answer = client.post("/api/v1/previews/news", json=a_post(), headers=ADMIN)

    assert answer.status_code == 200, answer.get_json()
    preview = answer.get_json()
    assert preview["subject"] == "Les Petites Cantines: Opening of Petites Cantines Bagnolet"
    assert preview["text"].startswith("Dear difteurs,\n\nOpening of Petites Cantines Bagnolet\n")
    assert "We open on **Monday**." in preview["text"]
    assert (
        "The campaign: http://donations.test/campaigns/petites-cantines-bagnolet"
        in (preview["text"])
    )
    assert (
        "Stop the news of this campaign: http://notifications.test/unsubscribe/preview"
        in (preview["text"])
    )
    assert "<strong>Monday</strong>" in preview["html"]
    assert "<script>" not in preview["html"]
    assert '<html lang="en">' in preview["html"]


def test_the_french_preview_is_in_french(client: FlaskClient) -> None:
    answer = client.post("/api/v1/previews/news", json=a_post(locale="fr"), headers=ADMIN)

    assert answer.status_code == 200
    preview = answer.get_json()
    assert preview["subject"] == "Les Petites Cantines : Opening of Petites Cantines Bagnolet"
    assert preview["text"].startswith("Chers difteurs,")
    assert "Dear difteurs" not in preview["text"] + preview["html"]
    assert f"La campagne{NBSP}: http://donations.test/campaigns/" in preview["text"]
    assert '<html lang="fr">' in preview["html"]
    assert "Ne plus recevoir les nouvelles de cette campagne</a>" in preview["html"]


def test_the_html_the_back_office_rendered_is_used_when_it_sends_it(client: FlaskClient) -> None:
    body = a_post(body_html='<p>Rendered <em>there</em><img src=x onerror="steal()"></p>')

    preview = client.post("/api/v1/previews/news", json=body, headers=ADMIN).get_json()

    assert "<p>Rendered <em>there</em>" in preview["html"]
    assert "onerror" not in preview["html"]


def test_without_a_cause_the_campaign_title_names_it(client: FlaskClient) -> None:
    body = a_post()
    del body["cause_name"]

    preview = client.post("/api/v1/previews/news", json=body, headers=ADMIN).get_json()

    assert preview["subject"] == "Bagnolet: Opening of Petites Cantines Bagnolet"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ""),
        ("title", "   "),
        ("title", "x" * 301),
        ("body_markdown", ""),
        ("body_markdown", "x" * 50_001),
        ("campaign_title", ""),
        ("locale", "de"),
        ("locale", 3),
        ("title", "nul\x00byte"),
        ("surprise", "field"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: FlaskClient, field: str, value: object
) -> None:
    answer = client.post("/api/v1/previews/news", json=a_post(**{field: value}), headers=ADMIN)

    assert answer.status_code == 422
    assert field in answer.get_json()["errors"]["json"]


def test_a_missing_field_is_a_422_naming_it(client: FlaskClient) -> None:
    body = a_post()
    del body["campaign_slug"]

    answer = client.post("/api/v1/previews/news", json=body, headers=ADMIN)

    assert answer.status_code == 422
    assert "campaign_slug" in answer.get_json()["errors"]["json"]


def test_the_preview_wants_a_token_with_the_admin_role(client: FlaskClient) -> None:
    assert client.post("/api/v1/previews/news", json=a_post()).status_code == 401
    answer = client.post("/api/v1/previews/news", json=a_post(), headers=FINANCE)
    assert answer.status_code == 403
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/v1/previews/news", json=a_post(), headers=wrong).status_code == 401


def test_the_openapi_document_describes_the_preview(client: FlaskClient) -> None:
    document = client.get("/openapi.json")
    assert document.status_code == 200
    spec = document.get_json()
    operation = spec["paths"]["/api/v1/previews/news"]["post"]
    assert operation["x-required-role"] == "admin"
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
    schemas = spec["components"]["schemas"]
    request = schemas["NewsPreviewRequest"]
    assert set(request["required"]) == {"campaign_title", "campaign_slug", "title", "body_markdown"}
    assert request["properties"]["locale"]["enum"] == ["fr", "en"]
    assert set(schemas["NewsPreview"]["properties"]) == {"subject", "text", "html"}
