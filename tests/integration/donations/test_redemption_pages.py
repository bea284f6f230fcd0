"""The redemption pages and the impact report through the Flask test client, on SQLite and
PostgreSQL: a recipient directs a dift all to one cause or split, a wrong split comes back with
the error next to the field and changes nothing, a dift directed twice, an expired one, a
forged or cut link or code get a clear page, wrong codes are rate-limited; the company's
report shows aggregates only, through a signed link, its sponsor's token or an admin's, and
its mécénat receipt as PDF."""

from __future__ import annotations

import html
import io
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import Engine, func, select

from services.donations import store
from services.donations.app import create_app
from services.donations.domain.programmes import DiftState, Programme, Recipient
from services.donations.handlers import difts
from services.donations.impact_report import report_link_token
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.db import make_engine, upgrade
from services.shared.envelope import new_event
from services.shared.events import DIFT_BOOKED, DIFT_DIRECTED, load_data
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings
from tests.support.programmes import funded_open_programme, queued, register_sponsor

pytestmark = pytest.mark.integration

PUBLIC = "http://donations.test"
SECRET_KEY = "redemption-pages-secret"
ADMIN = {"Authorization": "Bearer pages-admin"}
FR = {"Accept-Language": "fr-FR,fr;q=0.9"}
RECIPIENT = Recipient("ada.lovelace@example.org", "Ada Lovelace", "fr")


@dataclass
class Site:
    """The donations app on one database, with an open programme of 20 EUR difts."""

    client: FlaskClient
    engine: Engine
    programme: Programme
    sponsor_token: str
    shortlist: list[str]

    def issue(self, recipient: Recipient | None = RECIPIENT) -> difts.IssuedDift:
        with DonationsUnitOfWork(self.engine) as uow:
            return difts.issue_dift(
                difts.IssueDift(self.programme.id, PUBLIC, recipient=recipient), uow
            )

    def link(self) -> tuple[str, str]:
        """A fresh dift's link path and id."""
        issued = self.issue()
        assert issued.redeem_url is not None
        return issued.redeem_url.removeprefix(PUBLIC), issued.dift.id

    def code(self) -> tuple[str, str]:
        """A fresh printed code and its dift's id."""
        with DonationsUnitOfWork(self.engine) as uow:
            [issued] = difts.create_codes(difts.CreateCodes(self.programme.id, 1, PUBLIC), uow)
        assert issued.secret is not None
        return issued.secret, issued.dift.id

    def dift(self, dift_id: str) -> Any:
        with DonationsUnitOfWork(self.engine) as uow:
            return uow.difts.get(dift_id)

    def directed_events(self) -> list[dict[str, Any]]:
        return [
            data for kind, data in queued(self.engine, self.programme.id) if kind == DIFT_DIRECTED
        ]


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    url = (
        f"sqlite:///{tmp_path / 'pages.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("database_url")
    )
    upgrade(url, DONATIONS_MIGRATIONS)
    engine = make_engine(url)
    programme, token, shortlist = funded_open_programme(engine, budget=100_000)
    settings = donations_settings(
        url,
        "http://127.0.0.1:9",
        secret_key=SECRET_KEY,
        api_tokens="pages-admin:admin",
        public_url=PUBLIC,
    )
    app = create_app(settings)
    yield Site(app.test_client(), engine, programme, token, shortlist)
    engine.dispose()


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


def campaign_ids(site: Site) -> list[str]:
    return list(site.programme.shortlist)


def choose(site: Site, path: str, **fields: str) -> Any:
    """Open the dift's page, then post the choice to its confirmation step."""
    page = site.client.get(path, headers=FR)
    assert page.status_code == 200, page.text
    return site.client.post(
        f"{path}/confirm", data={"csrf_token": csrf_token(page.text), **fields}, headers=FR
    )


def confirm(site: Site, path: str, confirmation: Any) -> Any:
    """Post the confirmation page's own form (its hidden fields) to the direct step."""
    form = confirmation.text.split('id="direct-form"', 1)[1].split("</form>", 1)[0]
    fields = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form))
    action = confirmation.text.split('<form method="post" action="', 1)[1].split('"', 1)[0]
    assert action.startswith(path)
    return site.client.post(action, data=fields, headers=FR)


# --- the offer ------------------------------------------------------------------------------------


def test_the_dift_page_shows_the_brand_message_value_and_each_cause_with_its_unit(
    site: Site,
) -> None:
    path, dift_id = site.link()
    page = site.client.get(path, headers=FR)
    assert page.status_code == 200
    text = page.text
    assert "Acme vous offre un dift" in text
    assert "Thank you <strong>for this year</strong>." in text
    assert "Votre dift\u00a0: 20,00\u00a0€" in text
    assert text.count("Neighbours cook together.") == 3
    assert text.count("20,00\u00a0€ = 1 repas à Les Petites Cantines") == 3
    assert "<legend>Comment donnez-vous votre dift\u00a0?</legend>" in text
    assert 'name="csrf_token"' in text
    assert site.dift(dift_id).state is DiftState.OPENED
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    english = site.client.get(path, headers={"Accept-Language": "en-GB"})
    assert "Acme offers you a dift" in english.text
    assert "€20.00 = 1 meal at Les Petites Cantines" in english.text


# --- directing ------------------------------------------------------------------------------------


def test_a_recipient_gives_all_of_a_dift_to_one_cause_and_sees_what_it_funds(site: Site) -> None:
    path, dift_id = site.link()
    network, bagnolet, _bruz = campaign_ids(site)
    confirmation = choose(site, path, choice="one", campaign=bagnolet)
    assert confirmation.status_code == 200
    assert "Vérifiez votre choix" in confirmation.text
    assert 'data-amount="2000"' in confirmation.text
    assert site.dift(dift_id).state is DiftState.OPENED  # confirming is not directing
    done = confirm(site, path, confirmation)
    assert done.status_code == 303 and done.location.endswith(f"{path}/thanks")
    thanks = site.client.get(done.location, headers=FR)
    assert thanks.status_code == 200
    assert "Merci\u00a0!" in thanks.text
    assert "20,00\u00a0€ pour Petites Cantines" in thanks.text and "1 repas" in thanks.text
    dift = site.dift(dift_id)
    assert dift.state is DiftState.DIRECTED
    assert [(a.campaign_id, a.amount.amount) for a in dift.allocations] == [(bagnolet, 2000)]
    assert not dift.updates_opt_in
    [event] = site.directed_events()
    assert event["dift_id"] == dift_id


def test_a_recipient_splits_a_dift_in_whole_euros_and_asks_for_the_causes_news(
    site: Site,
) -> None:
    path, dift_id = site.link()
    network, bagnolet, bruz = campaign_ids(site)
    confirmation = choose(
        site,
        path,
        choice="split",
        **{f"share_{network}": "10", f"share_{bagnolet}": "", f"share_{bruz}": " 10 "},
        updates_opt_in="on",
    )
    assert confirmation.status_code == 200, confirmation.text
    assert "Vous recevrez par e-mail les nouvelles de ces causes." in confirmation.text
    done = confirm(site, path, confirmation)
    assert done.status_code == 303
    thanks = site.client.get(done.location, headers=FR)
    assert "vous enverront leurs nouvelles" in thanks.text
    dift = site.dift(dift_id)
    assert [(a.campaign_id, a.amount.amount) for a in dift.allocations] == [
        (network, 1000),
        (bruz, 1000),
    ]
    assert dift.updates_opt_in


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        (("10", "5", "4"), "pour un total de 20,00\u00a0€\u00a0; ceux-ci font 19,00\u00a0€"),
        (("10", "5,50", "4"), "Indiquez seulement des euros entiers"),
        (("0", "0", "0"), "ceux-ci font 0,00\u00a0€"),
        (("-5", "20", "5"), "Indiquez seulement des euros entiers"),
    ],
)
def test_a_wrong_split_comes_back_with_the_error_next_to_the_field_and_changes_nothing(
    site: Site, shares: tuple[str, str, str], message: str
) -> None:
    path, dift_id = site.link()
    ids = campaign_ids(site)
    fields = {f"share_{cid}": typed for cid, typed in zip(ids, shares, strict=True)}
    reply = choose(site, path, choice="split", **fields)
    assert reply.status_code == 422
    assert 'id="shares-error"' in reply.text and message in reply.text
    assert reply.text.count('aria-describedby="shares-error"') == 4  # the fieldset, 3 inputs
    for cid, typed in fields.items():
        assert f'name="{cid}" inputmode="numeric"' in reply.text
        assert f'value="{typed}"' in reply.text  # what was typed is kept
    # The direct step checks again: a forged post of the same split changes nothing either.
    again = site.client.post(
        f"{path}/direct", data={"csrf_token": csrf_token(reply.text), "choice": "split", **fields}
    )
    assert again.status_code == 422
    assert site.dift(dift_id).state is DiftState.OPENED
    assert site.directed_events() == []


def test_no_choice_or_a_cause_off_the_shortlist_is_refused_next_to_its_field(site: Site) -> None:
    path, dift_id = site.link()
    nothing = choose(site, path)
    assert nothing.status_code == 422 and 'id="choice-error"' in nothing.text
    elsewhere = choose(site, path, choice="one", campaign="not-a-shortlisted-campaign")
    assert elsewhere.status_code == 422 and 'id="campaign-error"' in elsewhere.text
    assert 'aria-describedby="campaign-error"' in elsewhere.text
    assert site.dift(dift_id).state is DiftState.OPENED


def test_the_forms_need_their_csrf_token(site: Site) -> None:
    path, dift_id = site.link()
    refused = site.client.post(
        f"{path}/direct", data={"choice": "one", "campaign": campaign_ids(site)[0]}
    )
    assert refused.status_code == 400
    assert site.dift(dift_id).state is not DiftState.DIRECTED


# --- what cannot be directed ----------------------------------------------------------------------


def test_a_dift_directed_twice_gets_a_clear_page_and_keeps_its_first_choice(site: Site) -> None:
    path, dift_id = site.link()
    first, second, _ = campaign_ids(site)
    confirmation = choose(site, path, choice="one", campaign=first)
    assert confirm(site, path, confirmation).status_code == 303
    reopened = site.client.get(path, headers=FR)
    assert reopened.status_code == 409
    assert "Ce dift a déjà été dirigé" in reopened.text and 'id="see-choice"' in reopened.text
    replayed = site.client.post(
        f"{path}/direct",
        data={"csrf_token": csrf_token(confirmation.text), "choice": "one", "campaign": second},
    )
    assert replayed.status_code == 409
    assert [a.campaign_id for a in site.dift(dift_id).allocations] == [first]
    assert len(site.directed_events()) == 1


def test_two_concurrent_submits_give_one_redemption(site: Site) -> None:
    path, dift_id = site.link()
    first, second, _ = campaign_ids(site)
    page = site.client.get(path)
    token = csrf_token(page.text)
    cookie = site.client.get_cookie("session")
    assert cookie is not None
    answers: list[int] = []
    start = threading.Barrier(2)

    def submit(campaign_id: str) -> None:
        client = site.client.application.test_client()
        client.set_cookie("session", cookie.value)
        start.wait()
        reply = client.post(
            f"{path}/direct", data={"csrf_token": token, "choice": "one", "campaign": campaign_id}
        )
        answers.append(reply.status_code)

    threads = [threading.Thread(target=submit, args=(cid,)) for cid in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [303, 409]
    assert len(site.dift(dift_id).allocations) == 1
    assert len(site.directed_events()) == 1


def test_an_expired_dift_gets_a_clear_page_and_changes_nothing(site: Site) -> None:
    path, dift_id = site.link()
    page = site.client.get(path)
    with DonationsUnitOfWork(site.engine) as uow:
        difts.expire_programme(
            site.programme.id, uow, now=site.programme.expires_at + timedelta(seconds=1)
        )
    gone = site.client.get(path, headers=FR)
    assert gone.status_code == 410 and "Ce dift a expiré" in gone.text
    late = site.client.post(
        f"{path}/direct",
        data={
            "csrf_token": csrf_token(page.text),
            "choice": "one",
            "campaign": campaign_ids(site)[0],
        },
    )
    assert late.status_code == 410
    assert site.dift(dift_id).state is DiftState.EXPIRED
    assert site.directed_events() == []


def test_a_forged_or_cut_link_gets_a_clear_page(site: Site) -> None:
    path, _dift_id = site.link()
    for wrong in (
        f"/difts/{secrets.token_urlsafe(24)}",
        path[:-6],
        path + "x",
        "/difts/abc",
    ):
        page = site.client.get(wrong, headers=FR)
        assert page.status_code == 404, wrong
        assert "Ce dift est introuvable" in page.text


def test_a_printed_code_in_a_url_opens_nothing_it_goes_through_the_rate_limited_form(
    site: Site,
) -> None:
    code, dift_id = site.code()
    assert site.client.get(f"/difts/{code}").status_code == 404
    assert site.client.get(f"/difts/{code.replace('-', '')}").status_code == 404
    assert site.dift(dift_id).state is DiftState.ISSUED


# --- printed codes --------------------------------------------------------------------------------


def test_a_printed_code_typed_loosely_opens_its_dift_and_directs_it(site: Site) -> None:
    code, dift_id = site.code()
    form = site.client.get("/difts/code", headers=FR)
    assert form.status_code == 200 and '<label for="code">' in form.text
    typed = " " + code.replace("-", " ").lower().replace("1", "l").replace("0", "o") + " "
    opened = site.client.post(
        "/difts/code", data={"csrf_token": csrf_token(form.text), "code": typed}
    )
    assert opened.status_code == 303 and opened.location.endswith("/difts/code/choose")
    assert code not in opened.location
    page = site.client.get("/difts/code/choose", headers=FR)
    assert page.status_code == 200 and "Acme vous offre un dift" in page.text
    assert site.dift(dift_id).state is DiftState.OPENED
    confirmation = choose(site, "/difts/code", choice="one", campaign=campaign_ids(site)[2])
    done = confirm(site, "/difts/code", confirmation)
    assert done.status_code == 303 and done.location.endswith("/difts/code/thanks")
    assert "Merci\u00a0!" in site.client.get(done.location, headers=FR).text
    assert site.dift(dift_id).state is DiftState.DIRECTED


def test_a_cut_or_mistyped_code_is_refused_next_to_the_field_and_counts(site: Site) -> None:
    code, dift_id = site.code()
    form = site.client.get("/difts/code")
    token = csrf_token(form.text)
    last = code[-1]
    mistyped = code[:-1] + ("0" if last != "0" else "1")
    for wrong in (code[:-2], mistyped):
        page = site.client.post(
            "/difts/code", data={"csrf_token": token, "code": wrong}, headers=FR
        )
        assert page.status_code == 404
        assert 'id="code-error"' in page.text and "Ce code n’ouvre aucun dift" in html.unescape(
            page.text
        )
        assert 'aria-describedby="code-hint code-error"' in page.text
        assert f'value="{wrong}"' in page.text
    with site.engine.connect() as conn:
        counted = conn.execute(
            select(func.count()).select_from(store.redemption_attempts)
        ).scalar_one()
    assert counted == 2
    assert site.dift(dift_id).state is DiftState.ISSUED


def test_too_many_wrong_codes_answer_429_even_for_a_right_one(site: Site) -> None:
    code, dift_id = site.code()
    token = csrf_token(site.client.get("/difts/code").text)
    for n in range(difts.WRONG_CODES_ALLOWED):
        wrong = site.client.post("/difts/code", data={"csrf_token": token, "code": f"WRONG{n}"})
        assert wrong.status_code == 404
    limited = site.client.post("/difts/code", data={"csrf_token": token, "code": code}, headers=FR)
    assert limited.status_code == 429
    assert "Trop d’essais" in html.unescape(limited.text) and "10 minutes" in limited.text
    assert site.dift(dift_id).state is DiftState.ISSUED


def test_the_code_pages_without_a_code_typed_go_back_to_the_form(site: Site) -> None:
    reply = site.client.get("/difts/code/choose")
    assert reply.status_code == 303 and reply.location.endswith("/difts/code")


# --- the impact report ----------------------------------------------------------------------------


def _direct(site: Site, campaign_index: int) -> str:
    path, dift_id = site.link()
    confirmation = choose(site, path, choice="one", campaign=campaign_ids(site)[campaign_index])
    assert confirm(site, path, confirmation).status_code == 303
    return dift_id


def _booked(site: Site, dift_id: str, campaign_id: str, meals: int) -> None:
    data = {
        "dift_id": dift_id,
        "programme_id": site.programme.id,
        "kind": "directed",
        "value": 2000,
        "currency": "EUR",
        "allocations": [
            {
                "campaign_id": campaign_id,
                "amount": 2000,
                "meal_price": 1350,
                "meals": meals,
                "meals_funded": meals,
                "remainder": 650,
            }
        ],
        "programme_balance": 0,
        "booked_at": datetime.now(UTC).isoformat(),
    }
    with DonationsUnitOfWork(site.engine) as uow:
        # As the consumer hands it: the data loaded by its schema (moments as datetimes).
        loaded = load_data(DIFT_BOOKED, data)
        difts.record_dift_booked(new_event(DIFT_BOOKED, "ledger", loaded), uow)


def _report_site(site: Site) -> None:
    """Three difts directed (two to the first cause, one booked with its meal), one opened,
    one only issued."""
    first = _direct(site, 0)
    _direct(site, 0)
    _direct(site, 2)
    _booked(site, first, campaign_ids(site)[0], 1)
    site.client.get(site.link()[0])
    site.issue(Recipient("bob.secret@example.org", "Bob Secretname"))


def test_the_report_shows_aggregates_only_to_an_admin(site: Site) -> None:
    _report_site(site)
    page = site.client.get(f"/programmes/{site.programme.id}/report", headers={**ADMIN, **FR})
    assert page.status_code == 200, page.text
    text = page.text
    for name, count in (("issued", 5), ("opened", 4), ("directed", 3), ("expired", 0)):
        assert f'id="count-{name}" data-count="{count}"' in text, name
    assert 'data-amount="4000" data-meals="1"' in text  # the first cause: 40 EUR, 1 meal booked
    assert 'id="total-amount" data-amount="6000"' in text
    assert 'id="directions-chart" src="data:image/svg+xml;base64,' in text
    assert "<script" not in text
    for private in ("ada.lovelace", "Ada Lovelace", "bob.secret", "Secretname", "@example.org"):
        assert private not in text
    assert page.headers["Cache-Control"] == "private, no-store"


def test_the_report_csv_has_the_same_figures_and_no_recipient(site: Site) -> None:
    _report_site(site)
    reply = site.client.get(f"/programmes/{site.programme.id}/report.csv", headers=ADMIN)
    assert reply.status_code == 200 and reply.mimetype == "text/csv"
    lines = reply.text.splitlines()
    assert lines[0] == "figure,campaign,cause,day,count,amount,currency,meals"
    assert "difts_issued,,,,5,,," in lines and "difts_directed,,,,3,,," in lines
    first_slug = site.shortlist[0]
    assert f"cause_directed,{first_slug},Les Petites Cantines,,2,4000,EUR," in lines
    assert f"cause_total,{first_slug},Les Petites Cantines,,,4000,EUR,1" in lines
    today = datetime.now(UTC).date().isoformat()
    assert f"directed_on,,,{today},3,,," in lines
    assert "@" not in reply.text and "Ada" not in reply.text


def test_the_report_opens_with_a_signed_link_and_refuses_a_forged_or_expired_one(
    site: Site,
) -> None:
    base = f"/programmes/{site.programme.id}/report"
    made = site.client.get(
        f"{base}-link?days=7", headers={"Authorization": f"Bearer {site.sponsor_token}"}
    )
    assert made.status_code == 200, made.text
    url = made.json["url"].removeprefix(PUBLIC)
    page = site.client.get(url, headers=FR)
    assert page.status_code == 200 and "Rapport d’impact" in html.unescape(page.text)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert site.client.get(made.json["csv_url"].removeprefix(PUBLIC)).status_code == 200
    signed = url.split("access=", 1)[1]
    forged = signed[:-3] + ("aaa" if not signed.endswith("aaa") else "bbb")
    assert site.client.get(f"{base}?access={forged}").status_code == 403
    assert site.client.get(f"{base}?access={signed[:20]}").status_code == 403
    past = report_link_token(
        SECRET_KEY, site.programme.id, datetime.now(UTC) - timedelta(seconds=1)
    )
    expired = site.client.get(f"{base}?access={past}", headers=FR)
    assert expired.status_code == 410 and "a expiré" in expired.text
    other_key = report_link_token(
        "another-key", site.programme.id, datetime.now(UTC) + timedelta(days=1)
    )
    assert site.client.get(f"{base}?access={other_key}").status_code == 403
    other_programme = report_link_token(
        SECRET_KEY, "another-programme", datetime.now(UTC) + timedelta(days=1)
    )
    assert site.client.get(f"{base}?access={other_programme}").status_code == 403
    assert site.client.get(f"{base}.csv?access={past}").status_code == 410


def test_the_report_is_for_its_own_sponsor_or_an_admin(site: Site) -> None:
    base = f"/programmes/{site.programme.id}/report"
    assert site.client.get(base).status_code == 401
    assert site.client.get(base, headers={"Authorization": "Bearer nobody"}).status_code == 401
    own = site.client.get(base, headers={"Authorization": f"Bearer {site.sponsor_token}"})
    assert own.status_code == 200
    _other_id, other_token = register_sponsor(site.engine)
    stranger = site.client.get(base, headers={"Authorization": f"Bearer {other_token}"})
    assert stranger.status_code == 403
    assert site.client.get("/programmes/no-such-programme/report", headers=ADMIN).status_code == 404


def test_the_sponsor_downloads_its_mecenat_receipt_as_pdf(site: Site) -> None:
    with DonationsUnitOfWork(site.engine) as uow:
        [receipt] = uow.receipts.of_programme(site.programme.id)
    base = f"/programmes/{site.programme.id}/receipts/{receipt.id}.pdf"
    assert site.client.get(base).status_code == 401
    reply = site.client.get(base, headers={"Authorization": f"Bearer {site.sponsor_token}"})
    assert reply.status_code == 200 and reply.mimetype == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(reply.data)).pages)
    text = re.sub(r"\s+", " ", text)
    assert receipt.number in text
    assert "Acme SAS" in text and "732 829 320" in text and "1 rue de la Paix, 75002 Paris" in text
    assert "***1 000,00 €***" in text and "mille euros" in text
    assert "238 bis" in text and "(ici : virement)" in text
    report = site.client.get(
        f"/programmes/{site.programme.id}/report",
        headers={"Authorization": f"Bearer {site.sponsor_token}"},
    )
    assert f"/receipts/{receipt.id}.pdf" in report.text
    assert (
        site.client.get(
            f"/programmes/{site.programme.id}/receipts/not-a-receipt.pdf", headers=ADMIN
        ).status_code
        == 404
    )
