"""A sponsor's contact in the back office (PostgreSQL): their company's programmes with the
budget's figures as the sponsor API gives them, and a signed link that opens the impact
report; another company's contact sees none of it, a campaign manager is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from services.donations.app import create_app
from services.shared.db import make_engine, upgrade
from services.shared.i18n import format_money
from services.shared.money import Money
from tests.support.backoffice import add_account, sign_in
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings
from tests.support.programmes import funded_open_programme, register_sponsor

pytestmark = pytest.mark.integration


@pytest.fixture
def office(database_url: str, stripe_mock_url: str) -> Iterator[dict[str, Any]]:
    upgrade(database_url, DONATIONS_MIGRATIONS)
    engine = make_engine(database_url)
    programme, token, _shortlist = funded_open_programme(engine, budget=12_345)
    other_sponsor, _other_token = register_sponsor(engine)
    add_account(engine, "contact@acme.example", "sponsor", sponsor=programme.sponsor_id)
    add_account(engine, "contact@other.example", "sponsor", sponsor=other_sponsor)
    add_account(engine, "manager@example.org", "admin")
    app = create_app(donations_settings(database_url, stripe_mock_url))
    yield {"app": app, "programme": programme, "token": token}
    engine.dispose()


def english(office: dict[str, Any]) -> Any:
    client = office["app"].test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_the_contact_sees_the_programme_as_the_sponsor_api_and_opens_its_report(
    office: dict[str, Any],
) -> None:
    client = english(office)
    assert sign_in(client, "contact@acme.example").status_code == 303
    page = client.get("/backoffice/programmes")
    assert page.status_code == 200
    programme = office["programme"]
    api = client.get(
        f"/api/v1/sponsor/programmes/{programme.id}",
        headers={"Authorization": f"Bearer {office['token']}"},
    ).json
    assert programme.name in page.text
    listed = api["programme"]
    for figure in ("funded", "reserved", "available", "credited_back"):
        shown = format_money(Money(listed["budget"][figure], listed["currency"]), "en")
        assert f"<dd>{shown}</dd>" in page.text, figure
    for count in ("sent", "directed"):
        assert f"<dd>{api['counts'][count]}</dd>" in page.text, count
    assert format_money(Money(12_345, "EUR"), "en") == "€123.45"
    link = re.search(r'href="http://donations.test(/programmes/[^"]+/report\?[^"]+)"', page.text)
    assert link, "no link to the impact report"
    report = client.get(link.group(1).replace("&amp;", "&"))
    assert report.status_code == 200


def test_another_company_sees_none_of_it_and_a_manager_is_refused(office: dict[str, Any]) -> None:
    other = english(office)
    assert sign_in(other, "contact@other.example").status_code == 303
    page = other.get("/backoffice/programmes")
    assert page.status_code == 200
    assert office["programme"].name not in page.text and "No programme yet." in page.text
    manager = english(office)
    assert sign_in(manager, "manager@example.org").status_code == 303
    assert manager.get("/backoffice/programmes").status_code == 403
    assert english(office).get("/backoffice/programmes").status_code == 401
