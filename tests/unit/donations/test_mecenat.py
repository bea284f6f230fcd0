"""The company's mécénat receipt: a PDF that, read back with a PDF text extractor, carries
every mention of CERFA n° 16216 (article 238 bis du CGI)."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import date

import pytest
from pypdf import PdfReader

from services.donations.mecenat import (
    MecenatReceipt,
    ReceiptOrganisation,
    amount_in_figures,
    amount_in_words,
    render_receipt_pdf,
)
from services.shared.money import Money

ORGANISATION = ReceiptOrganisation(
    name="Les Petites Cantines",
    address="12 rue de la Solidarité\n69003 Lyon",
    object="Ouvrir des cantines de quartier participatives à prix libre",
    status="Œuvre ou organisme d'intérêt général",
    signatory_name="Marie Durand",
    signatory_role="trésorière",
    signature_place="Lyon",
    siren="812345678",
)
RECEIPT = MecenatReceipt(
    number="2026-000001",
    organisation=ORGANISATION,
    sponsor_legal_name="Démo Boulangeries Réunies",
    sponsor_legal_form="SAS",
    sponsor_siren="552100554",
    sponsor_address="3 avenue des Fours, 75011 Paris",
    amount=Money(200_000, "EUR"),
    received_on=date(2026, 12, 1),
    form="virement",
    issued_on=date(2026, 12, 2),
)


def _text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def text() -> str:
    pdf = render_receipt_pdf(RECEIPT)
    assert pdf.startswith(b"%PDF-")
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1
    return _text(pdf)


def test_the_receipt_names_the_form_and_article_238_bis(text: str) -> None:
    assert "16216" in text
    assert "article 238 bis du code général des impôts" in text
    assert (
        "Le bénéficiaire certifie sur l'honneur que les dons et versements qu'il reçoit "
        "ouvrent droit à la réduction d'impôt prévue à l'article 238 bis" in text
    )


def test_the_receipt_carries_its_number(text: str) -> None:
    assert "Numéro d'ordre du reçu 2026-000001" in text


def test_the_receipt_names_the_receiving_organisation(text: str) -> None:
    for mention in (
        "Organisme bénéficiaire",
        "Les Petites Cantines",
        "12 rue de la Solidarité 69003 Lyon",
        "Ouvrir des cantines de quartier participatives à prix libre",
        "[X] Œuvre ou organisme d'intérêt général",
        "812 345 678",
    ):
        assert mention in text, mention


def test_the_receipt_names_the_company_with_its_legal_form_siren_and_address(text: str) -> None:
    for mention in (
        "Entreprise donatrice",
        "Dénomination Démo Boulangeries Réunies",
        "Forme juridique SAS",
        "N° SIREN 552 100 554",
        "3 avenue des Fours, 75011 Paris",
    ):
        assert mention in text, mention


def test_the_amount_is_in_figures_framed_by_asterisks_and_in_words(text: str) -> None:
    assert "***2 000,00 €***" in text
    assert "Somme en toutes lettres deux mille euros" in text


def test_the_date_form_nature_and_payment_method_of_the_gift(text: str) -> None:
    assert "Date du versement ou du don 01/12/2026" in text
    assert "[X] Déclaration de don manuel" in text
    assert "[ ] Acte authentique" in text
    assert "[X] Numéraire" in text
    assert "[X] Virement, prélèvement, carte bancaire" in text
    assert "(ici : virement)" in text


def test_the_date_place_and_signatory(text: str) -> None:
    assert "Fait à Lyon, le 02/12/2026" in text
    assert "Marie Durand, trésorière" in text


def test_a_card_payment_ticks_the_same_box_and_says_card() -> None:
    text = _text(render_receipt_pdf(replace(RECEIPT, form="carte bancaire")))
    assert "[X] Virement, prélèvement, carte bancaire (ici : carte bancaire)" in text


def test_an_organisation_without_siren_prints_none() -> None:
    organisation = replace(ORGANISATION, siren=None)
    text = _text(render_receipt_pdf(replace(RECEIPT, organisation=organisation)))
    assert "812 345 678" not in text
    assert text.count("N° SIREN") == 1


@pytest.mark.parametrize(
    ("cents", "words"),
    [
        (100, "un euro"),
        (2_000, "vingt euros"),
        (200_000, "deux mille euros"),
        (2_050, "vingt euros et cinquante centimes"),
        (101, "un euro et un centime"),
        (100_000_000, "un million d'euros"),
        (150_000_000, "un million cinq cent mille euros"),
        (8_099, "quatre-vingts euros et quatre-vingt-dix-neuf centimes"),
    ],
)
def test_amounts_in_words_are_written_in_french(cents: int, words: str) -> None:
    assert amount_in_words(Money(cents, "EUR")) == words


def test_amounts_in_figures_group_thousands() -> None:
    assert amount_in_figures(Money(123_456_789, "EUR")) == "1 234 567,89 €"


def test_a_receipt_is_in_euros_and_for_a_positive_amount() -> None:
    with pytest.raises(ValueError, match="euros"):
        replace(RECEIPT, amount=Money(100, "USD"))
    with pytest.raises(ValueError, match="positive"):
        replace(RECEIPT, amount=Money(0, "EUR"))
