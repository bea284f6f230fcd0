"""The campaign managers' pages on PostgreSQL with the real handlers: the list with meals
funded; a new campaign refused with its error next to the field (what was typed kept, no row,
nothing in the outbox), then saved; an edit with texts in French and English and a preview of
the story; publishing and closing, each after a confirmation page, with their events in the
outbox as the admin API writes them; a meal price from a date, refused in the past, shown in
the history. Finance staff get 403, nobody signed in 401. The donor page reads each
language's texts; the admin API takes them too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from services.donations import store
from services.donations.app import create_app
from services.donations.backoffice.campaign_forms import OFFICE_TIMEZONE
from services.shared.db import make_engine, upgrade
from services.shared.events import CAMPAIGN_CLOSED, CAMPAIGN_PUBLISHED, MEAL_PRICE_CHANGED
from tests.support.backoffice import add_account, csrf_token, post_form, sign_in
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings

pytestmark = pytest.mark.integration

ADMIN_TOKEN = {"Authorization": "Bearer donations-admin"}
NEW = "/backoffice/campaigns/new"
# A campaign as a manager types it: French texts (the campaign's own) and English ones.
TYPED = {
    "slug": "bagnolet",
    "cause": "Les Petites Cantines",
    "cause_certified": "y",
    "action_zone": "Seine-Saint-Denis",
    "meal_price": "13,50",
    "currency": "EUR",
    "goal_meals": "500",
    "title": "Cantine de Bagnolet",
    "summary": "Des repas partagés à prix libre.",
    "story_markdown": "On **cuisine** ensemble.",
    "money_uses": "Ouvrir la cantine\n\nFormer les bénévoles",
    "title_en": "Bagnolet canteen",
    "summary_en": "Shared meals, pay what you can.",
    "story_markdown_en": "We **cook** together.",
    "money_uses_en": "Opening the canteen\nTraining volunteers",
    "action": "save",
}


@pytest.fixture
def office(database_url: str, stripe_mock_url: str) -> Iterator[dict[str, Any]]:
    upgrade(database_url, DONATIONS_MIGRATIONS)
    engine = make_engine(database_url)
    add_account(engine, "manager@example.org", "admin", name="Camille Manager")
    add_account(engine, "books@example.org", "finance", name="Dominique Books")
    settings = donations_settings(database_url, stripe_mock_url, api_tokens="donations-admin:admin")
    yield {"app": create_app(settings), "engine": engine}
    engine.dispose()


def client_of(office: dict[str, Any], email: str | None = "manager@example.org") -> FlaskClient:
    """A browser that prefers English, signed in as `email` (None: nobody)."""
    client = office["app"].test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    if email:
        assert sign_in(client, email).status_code == 303
    return client


def rows(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def outbox_types(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        query = select(store.outbox.c.event_type).order_by(store.outbox.c.seq)
        return list(conn.execute(query).scalars())


def outbox_data(engine: Engine, event_type: str) -> dict[str, Any]:
    """The data of the latest event of this type in the outbox."""
    with engine.connect() as conn:
        payload = conn.execute(
            select(store.outbox.c.payload)
            .where(store.outbox.c.event_type == event_type)
            .order_by(store.outbox.c.seq.desc())
            .limit(1)
        ).scalar_one()
    return dict(json.loads(payload)["data"])


def create(client: FlaskClient, **changes: str) -> Any:
    return post_form(client, NEW, NEW, {**TYPED, **changes})


def test_campaign_pages_refuse_finance_staff_with_403_and_nobody_with_401(
    office: dict[str, Any],
) -> None:
    finance = client_of(office, "books@example.org")
    nobody = client_of(office, None)
    for url in ("/backoffice/campaigns", NEW, "/backoffice/campaigns/x/edit"):
        assert finance.get(url).status_code == 403
        assert nobody.get(url).status_code == 401
    page = client_of(office, "books@example.org").get("/backoffice/")
    # Finance staff's menu does not offer what they may not open.
    assert "/backoffice/campaigns" not in page.text
    assert nobody.post(NEW, data=TYPED).status_code in (400, 401)
    assert rows(office["engine"], store.campaigns) == 0


def test_a_bad_form_shows_its_errors_next_to_the_fields_keeps_what_was_typed_saves_nothing(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    answer = create(client, slug="Not A Slug", meal_price="13,505", title="")
    assert answer.status_code == 422
    assert 'id="slug-error"' in answer.text and 'aria-invalid="true"' in answer.text
    assert 'id="meal_price-error"' in answer.text and 'id="title-error"' in answer.text
    assert "Type a price such as 13.50" in answer.text
    # What was typed is kept, the French and the English texts alike.
    assert 'value="Not A Slug"' in answer.text and 'value="13,505"' in answer.text
    assert "We **cook** together." in answer.text and 'value="Bagnolet canteen"' in answer.text
    assert rows(office["engine"], store.campaigns) == 0
    assert rows(office["engine"], store.campaign_texts) == 0
    assert outbox_types(office["engine"]) == []


def test_a_slug_already_taken_is_refused_next_to_it_and_nothing_else_is_saved(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    assert create(client).status_code == 303
    again = create(client, title="Autre titre")
    assert again.status_code == 422 and 'id="slug-error"' in again.text
    assert "A campaign already has this address." in again.text
    assert 'value="Autre titre"' in again.text
    assert rows(office["engine"], store.campaigns) == 1 and outbox_types(office["engine"]) == []


def test_a_new_campaign_is_a_draft_listed_with_its_texts_in_both_languages(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    answer = create(client)
    assert answer.status_code == 303 and answer.headers["Location"] == "/backoffice/campaigns"
    listed = client.get("/backoffice/campaigns")
    assert "The draft “Cantine de Bagnolet” is saved." in listed.text
    assert 'data-slug="bagnolet"' in listed.text and "draft" in listed.text
    assert "/backoffice/campaigns/bagnolet/publish" in listed.text
    answer = client.get("/api/v1/campaigns/bagnolet", headers=ADMIN_TOKEN).json
    assert (answer["title"], answer["meal_price"], answer["currency"]) == (
        "Cantine de Bagnolet",
        1350,
        "EUR",
    )
    assert answer["money_uses"] == ["Ouvrir la cantine", "Former les bénévoles"]
    assert answer["goal_meals"] == 500 and answer["cause_certified"] is True
    assert answer["translations"] == {
        "en": {
            "title": "Bagnolet canteen",
            "summary": "Shared meals, pay what you can.",
            "story_markdown": "We **cook** together.",
            "money_uses": ["Opening the canteen", "Training volunteers"],
        }
    }
    # A draft is nobody's news yet.
    assert outbox_types(office["engine"]) == []


def test_preview_shows_the_rendered_story_beside_the_form_and_saves_nothing(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    story = "On **cuisine** ensemble.\n\n<script>alert(1)</script>"
    answer = create(client, action="preview", story_markdown=story, story_markdown_en="")
    assert answer.status_code == 200
    assert '<div class="preview" lang="fr" id="preview-fr"><p>On <strong>cuisine</strong>' in (
        answer.text
    )
    assert "<script>alert(1)</script>" not in answer.text  # escaped, never a script
    # The English story left empty: donors reading English see the French one.
    assert 'id="preview-en"><p>On <strong>cuisine</strong>' in answer.text
    assert 'value="Cantine de Bagnolet"' in answer.text
    assert rows(office["engine"], store.campaigns) == 0


def test_an_edit_changes_the_texts_and_a_live_campaigns_edit_is_announced(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    create(client)
    edit = "/backoffice/campaigns/bagnolet/edit"
    form = client.get(edit)
    assert 'value="13.50"' in form.text and 'value="Bagnolet canteen"' in form.text
    changed = {**TYPED, "title_en": "", "summary": "Des repas pour tous.", "meal_price": "14"}
    del changed["slug"]
    assert post_form(client, edit, edit, changed).status_code == 303
    answer = client.get("/api/v1/campaigns/bagnolet", headers=ADMIN_TOKEN).json
    assert answer["summary"] == "Des repas pour tous." and answer["meal_price"] == 1400
    assert answer["translations"]["en"]["title"] == ""
    assert outbox_types(office["engine"]) == []  # still a draft

    publish(client)
    live_form = client.get(edit)
    assert 'name="meal_price"' not in live_form.text  # from a date on, on its own page
    del changed["meal_price"], changed["currency"]
    assert post_form(client, edit, edit, {**changed, "title": "Bagnolet"}).status_code == 303
    assert outbox_types(office["engine"]) == [CAMPAIGN_PUBLISHED, CAMPAIGN_PUBLISHED]
    announced = outbox_data(office["engine"], CAMPAIGN_PUBLISHED)
    assert (announced["title"], announced["summary"]) == ("Bagnolet", "Des repas pour tous.")


def publish(client: FlaskClient) -> Any:
    url = "/backoffice/campaigns/bagnolet/publish"
    asked = client.get(url)
    assert asked.status_code == 200
    assert '<button type="submit">Publish</button>' in asked.text
    return client.post(url, data={"csrf_token": csrf_token(asked.text)})


def test_publishing_and_closing_each_ask_first_then_go_through_the_handlers(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    create(client)
    asked = client.get("/backoffice/campaigns/bagnolet/publish")
    assert "Publish “Cantine de Bagnolet”?" in asked.text
    assert outbox_types(office["engine"]) == []  # asking changes nothing
    published = publish(client)
    assert published.status_code == 303
    assert "is live" in client.get("/backoffice/campaigns").text
    assert outbox_types(office["engine"]) == [CAMPAIGN_PUBLISHED]
    announced = outbox_data(office["engine"], CAMPAIGN_PUBLISHED)
    assert (announced["slug"], announced["status"], announced["meal_price"]) == (
        "bagnolet",
        "live",
        1350,
    )
    # Publishing again (a second tab) changes nothing.
    again = post_form(client, "/backoffice/campaigns", "/backoffice/campaigns/bagnolet/publish", {})
    assert again.status_code == 409 and outbox_types(office["engine"]) == [CAMPAIGN_PUBLISHED]

    url = "/backoffice/campaigns/bagnolet/close"
    asked = client.get(url)
    assert "Close “Cantine de Bagnolet”?" in asked.text
    closed = client.post(url, data={"csrf_token": csrf_token(asked.text)})
    assert closed.status_code == 303
    assert outbox_types(office["engine"]) == [CAMPAIGN_PUBLISHED, CAMPAIGN_CLOSED]
    assert client.get("/api/v1/campaigns/bagnolet").json["status"] == "closed"
    assert client.get("/backoffice/campaigns/bagnolet/edit").status_code == 409


def test_a_meal_price_from_a_date_is_refused_in_the_past_then_kept_with_its_history(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    create(client)
    publish(client)
    url = "/backoffice/campaigns/bagnolet/meal-price"
    past = (datetime.now(OFFICE_TIMEZONE) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    refused = post_form(client, url, url, {"meal_price": "14,00", "effective_from": past})
    assert refused.status_code == 422 and 'id="effective_from-error"' in refused.text
    assert "not in the past" in refused.text and f'value="{past}"' in refused.text
    unreadable = post_form(client, url, url, {"meal_price": "a lot", "effective_from": past})
    assert unreadable.status_code == 422 and 'id="meal_price-error"' in unreadable.text
    assert outbox_types(office["engine"]) == [CAMPAIGN_PUBLISHED]
    assert rows(office["engine"], store.meal_price_changes) == 0

    later = datetime.now(OFFICE_TIMEZONE).replace(second=0, microsecond=0) + timedelta(days=7)
    typed = later.strftime("%Y-%m-%dT%H:%M")
    kept = post_form(client, url, url, {"meal_price": "14,00", "effective_from": typed})
    assert kept.status_code == 303
    page = client.get(url)
    assert "€14.00" in page.text and "€13.50" in page.text  # the new price and the one before
    assert outbox_types(office["engine"]) == [CAMPAIGN_PUBLISHED, MEAL_PRICE_CHANGED]
    announced = outbox_data(office["engine"], MEAL_PRICE_CHANGED)
    assert (announced["meal_price"], announced["previous_meal_price"]) == (1400, 1350)
    assert datetime.fromisoformat(announced["effective_from"]) == later


def test_the_donor_page_reads_the_texts_of_its_language_each_falling_back_to_french(
    office: dict[str, Any],
) -> None:
    client = client_of(office)
    create(client, summary_en="")
    publish(client)
    english = client.get("/campaigns/bagnolet?lang=en")
    assert "<h1>Bagnolet canteen</h1>" in english.text
    assert "We <strong>cook</strong> together." in english.text
    assert "<li>Training volunteers</li>" in english.text
    # No English summary: the French one stands for it.
    assert "Des repas partagés à prix libre." in english.text
    french = client.get("/campaigns/bagnolet?lang=fr")
    assert "<h1>Cantine de Bagnolet</h1>" in french.text
    assert "On <strong>cuisine</strong> ensemble." in french.text
    assert "<li>Former les bénévoles</li>" in french.text and "Bagnolet canteen" not in french.text


def test_the_admin_api_takes_texts_per_language_and_refuses_an_unknown_language(
    office: dict[str, Any],
) -> None:
    client = office["app"].test_client()
    body = {
        "slug": "bruz",
        "title": "Bruz",
        "cause": "Les Petites Cantines",
        "meal_price": 1350,
        "currency": "EUR",
        "translations": {"en": {"title": "Bruz in English", "money_uses": ["Cooking"]}},
    }
    created = client.post("/api/v1/campaigns", headers=ADMIN_TOKEN, json=body)
    assert created.status_code == 201, created.json
    assert created.json["translations"]["en"]["title"] == "Bruz in English"
    wrong = {"translations": {"de": {"title": "Bruz auf Deutsch"}}}
    refused = client.patch("/api/v1/campaigns/bruz", headers=ADMIN_TOKEN, json=wrong)
    assert refused.status_code == 422
    edited = client.patch(
        "/api/v1/campaigns/bruz",
        headers=ADMIN_TOKEN,
        json={"translations": {"fr": {"summary": "Des repas"}, "en": {}}},
    )
    assert edited.status_code == 200
    assert edited.json["translations"] == {
        "fr": {"title": "", "summary": "Des repas", "story_markdown": "", "money_uses": []}
    }
