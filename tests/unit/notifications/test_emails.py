"""Every email in French and in English, from one template each and the service's catalog: no
English text (a msgid) is left in a French email nor a French one in an English email, and
amounts, numbers and days are written the way each language writes them (CLDR)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from babel.messages.pofile import read_po

from services.notifications.domain import Dift, ReceiptFacts, Recipient, ShortlistedCause
from services.notifications.emails import (
    TRANSLATIONS,
    DiftAllocation,
    DiftConfirmation,
    Milestone,
    NewsPost,
    Refund,
    RenderedEmail,
    UnsubscribeLinks,
    render_dift_confirmation,
    render_impact,
    render_invitation,
    render_news,
    render_receipt,
    render_refund,
    render_reminder,
)
from services.notifications.messages import Letterhead
from services.shared.money import Money

LETTERHEAD = Letterhead.from_settings(
    "difts <thanks@difts.localhost>", "http://127.0.0.1:8001/", "Europe/Paris"
)
LINKS = UnsubscribeLinks(
    "http://127.0.0.1:8003/unsubscribe/a", "http://127.0.0.1:8003/unsubscribe/b"
)
NBSP, NNBSP = "\u00a0", "\u202f"
GIVEN = datetime(2025, 3, 14, 10, 30, tzinfo=UTC)
PRICE = Money(1350, "EUR")


def receipt(lang: str) -> RenderedEmail:
    return render_receipt(
        ReceiptFacts(
            "don_1", "camp_1", "Bagnolet", "bagnolet", "Les Petites Cantines", Money(3000, "EUR"),
            PRICE, 2, Money(300, "EUR"), "zoe@example.org", "Zoé", lang, GIVEN,
        ),
        LETTERHEAD,
    )  # fmt: skip


def refund(lang: str) -> RenderedEmail:
    return render_refund(
        Refund(
            "don_1", "Bagnolet", "bagnolet", "Les Petites Cantines", Money(1350, "EUR"),
            Money(1350, "EUR"), False, "Zoé", lang, GIVEN,
        ),
        LETTERHEAD,
    )  # fmt: skip


def news(lang: str) -> RenderedEmail:
    post = NewsPost(
        "Bagnolet", "bagnolet", "Les Petites Cantines", "Ouverture", "On ouvre **lundi**.",
        "<p>On ouvre <strong>lundi</strong>.</p>", "https://difts.example/news/1",
    )  # fmt: skip
    return render_news(post, lang, LETTERHEAD, LINKS)


def impact(lang: str) -> RenderedEmail:
    milestone = Milestone(
        "Bagnolet", "bagnolet", "Les Petites Cantines", 1012, 4000, 1000, "quarter"
    )
    return render_impact(milestone, lang, LETTERHEAD, LINKS)


def a_dift(lang: str) -> Dift:
    return Dift(
        "dift_1", "prog_1", "Acme", Money(2000, "EUR"), GIVEN,
        (
            ShortlistedCause("camp_1", "bagnolet", "Bagnolet", "", PRICE),
            ShortlistedCause("camp_2", "bruz", "Bruz", "", Money(2700, "EUR")),
        ),
        Recipient("lea@example.org", "Léa", lang), "https://difts.example/difts/redeem/tok",
    )  # fmt: skip


def invitation(lang: str) -> RenderedEmail:
    return render_invitation(a_dift(lang), LETTERHEAD, "Merci !", "<p>Merci !</p>")


def reminder(lang: str) -> RenderedEmail:
    return render_reminder(a_dift(lang), LETTERHEAD)


def confirmation(lang: str) -> RenderedEmail:
    parts = (
        DiftAllocation("Bagnolet", "bagnolet", Money(1350, "EUR"), PRICE),
        DiftAllocation("Bruz", "bruz", Money(650, "EUR"), Money(2700, "EUR")),
    )
    facts = DiftConfirmation("Acme", Money(2000, "EUR"), parts, "Léa", lang, True, GIVEN)
    return render_dift_confirmation(facts, LETTERHEAD)


EMAILS: dict[str, Callable[[str], RenderedEmail]] = {
    "receipt": receipt,
    "refund": refund,
    "news": news,
    "impact": impact,
    "dift_invitation": invitation,
    "dift_reminder": reminder,
    "dift_confirmation": confirmation,
}

# What each email writes in French and in English: an amount, a count or a day.
FORMATS = {
    "receipt": (
        [f"13,50{NBSP}€", f"30,00{NBSP}€", "14 mars 2025"],
        ["€13.50", "€30.00", "March 14, 2025"],
    ),
    "refund": ([f"13,50{NBSP}€", "14 mars 2025"], ["€13.50", "March 14, 2025"]),
    "news": (["Chers difteurs,"], ["Dear difteurs,"]),
    "impact": (
        [f"1{NNBSP}000 repas", f"1{NNBSP}012 repas", f"4{NNBSP}000 repas"],
        ["1,000 meals", "1,012 meals", "4,000 meals"],
    ),
    "dift_invitation": (
        [f"20{NBSP}€", f"74{NBSP}%", "14 mars 2025"],
        ["€20", "74%", "March 14, 2025"],
    ),
    "dift_reminder": (
        [f"20{NBSP}€", f"1{NBSP}repas", "14 mars 2025"],
        ["€20", "1 meal", "March 14, 2025"],
    ),
    "dift_confirmation": (
        [f"13,50{NBSP}€", f"6,50{NBSP}€", "Bagnolet et Bruz"],
        ["€13.50", "€6.50", "Bagnolet and Bruz"],
    ),
}

PLACEHOLDER_OR_TAG = re.compile(r"%\(\w+\)s|<[^>]+>")


def _fragments(text: str) -> set[str]:
    """The words of a catalog text between its placeholders and tags, long enough to be
    unmistakable ("Dear difteurs,", "is on its way back to you")."""
    return {part.strip() for part in PLACEHOLDER_OR_TAG.split(text) if len(part.strip()) >= 10}


def _catalog_texts() -> tuple[set[str], set[str]]:
    """Every English text of the catalog and its French, where the two differ."""
    with (TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale="fr")
    english: set[str] = set()
    french: set[str] = set()
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in ids:
            english |= _fragments(text)
        for text in strings:
            french |= _fragments(text)
    return english - french, french - english


ENGLISH, FRENCH = _catalog_texts()


def everything(rendered: RenderedEmail) -> str:
    return "\n".join((rendered.subject, rendered.text, rendered.html))


def test_the_leak_check_knows_the_texts_it_looks_for() -> None:
    """The check below can fail: the catalog's English and French texts are there to find."""
    assert "Dear difteurs," in ENGLISH and "Chers difteurs," in FRENCH
    assert any(fragment in everything(news("en")) for fragment in ENGLISH)


@pytest.mark.parametrize("name", EMAILS)
def test_a_french_email_has_no_english_text_left(name: str) -> None:
    french = everything(EMAILS[name]("fr"))

    leaked = sorted(fragment for fragment in ENGLISH if fragment in french)
    assert not leaked, leaked


@pytest.mark.parametrize("name", EMAILS)
def test_an_english_email_has_no_french_text(name: str) -> None:
    english = everything(EMAILS[name]("en"))

    leaked = sorted(fragment for fragment in FRENCH if fragment in english)
    assert not leaked, leaked


@pytest.mark.parametrize("name", EMAILS)
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_each_email_writes_amounts_counts_and_days_as_its_language_does(
    name: str, lang: str
) -> None:
    rendered = EMAILS[name](lang)
    french, english = FORMATS[name]
    expected, other = (french, english) if lang == "fr" else (english, french)

    for said in expected:
        assert said in rendered.text, (said, rendered.text)
        assert said in rendered.html.replace("&#39;", "'"), said
    for not_said in other:
        assert not_said not in everything(rendered), not_said


@pytest.mark.parametrize("name", EMAILS)
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_each_email_is_one_html_document_in_its_language_titled_by_its_subject(
    name: str, lang: str
) -> None:
    rendered = EMAILS[name](lang)

    assert rendered.subject and "\n" not in rendered.subject
    assert f'<html lang="{lang}">' in rendered.html
    title = rendered.html.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title.replace("&#39;", "'") == rendered.subject.replace("\u00a0", " ")


def test_french_punctuation_keeps_its_no_break_space() -> None:
    text = receipt("fr").text

    assert f"Référence du don{NBSP}: don_1" in text
    assert f"Date{NBSP}: 14 mars 2025" in text


def test_a_single_meal_is_said_in_the_singular_in_both_languages() -> None:
    one = ReceiptFacts(
        "don_1", "camp_1", "Bagnolet", "bagnolet", "Les Petites Cantines", PRICE, PRICE, 1,
        Money(0, "EUR"), "zoe@example.org", "Zoé", "en", GIVEN,
    )  # fmt: skip

    assert "It funds 1 meal (a meal costs €13.50)." in render_receipt(one, LETTERHEAD).text
    french = render_receipt(ReceiptFacts(**{**one.__dict__, "locale": "fr"}), LETTERHEAD)
    assert f"Il finance 1 repas (un repas coûte 13,50{NBSP}€)." in french.text
