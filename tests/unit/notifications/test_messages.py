"""Receipts as donors read them: words, amounts, meals, languages, and messages that nothing in
an event can tamper with."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from services.notifications.domain import Dift, ReceiptFacts, Recipient, ShortlistedCause
from services.notifications.emails import render_invitation, render_receipt, what_it_funds
from services.notifications.messages import (
    Letterhead,
    UnsendableAddress,
    build_message,
    language,
    mask_email,
    redact,
    serialize,
)
from services.shared.i18n import format_money_whole
from services.shared.money import Money

LETTERHEAD = Letterhead.from_settings(
    "difts <thanks@difts.localhost>", "http://127.0.0.1:8001/", "Europe/Paris"
)
NBSP = "\u00a0"
NOW = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)


def a_receipt(**overrides: object) -> ReceiptFacts:
    """A receipt's facts; unless told, the meals and the carry are what the ledger counts
    for the first gift of a campaign (the gift's own whole meals, and the rest)."""
    facts: dict[str, object] = {
        "donation_id": "don_123",
        "campaign_id": "camp_1",
        "campaign_title": "Neighbourhood canteens",
        "campaign_slug": "petites-cantines",
        "cause": "Les Petites Cantines",
        "amount": Money(2700, "EUR"),
        "meal_price": Money(1350, "EUR"),
        "donor_email": "zoe@example.org",
        "donor_name": "Zoé Martin",
        "locale": "en",
        "given_at": datetime(2025, 3, 14, 10, 30, tzinfo=UTC),
    }
    facts.update(overrides)
    amount, price = facts["amount"], facts["meal_price"]
    assert isinstance(amount, Money) and isinstance(price, Money)
    meals, carried = amount.divmod(price)
    facts.setdefault("meals", meals)
    facts.setdefault("carried", carried)
    return ReceiptFacts(**facts)  # type: ignore[arg-type]


def on_the_wire(
    receipt: ReceiptFacts, name: str = "Zoé Martin", to: str = "zoe@example.org"
) -> EmailMessage:
    """Render, build and serialize, then parse back as a mail client would."""
    message = build_message(
        render_receipt(receipt, LETTERHEAD),
        name,
        to,
        LETTERHEAD,
        datetime(2025, 3, 14, 10, 31, tzinfo=UTC),
    )
    parsed = email.message_from_string(serialize(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


def test_english_receipt_names_campaign_amount_meals_reference_date_and_link() -> None:
    rendered = render_receipt(a_receipt(), LETTERHEAD)

    assert rendered.subject == "Thank you for your gift to Les Petites Cantines"
    assert "Dear Zoé Martin," in rendered.text
    assert (
        "Thank you for your gift of €27.00 to Les Petites Cantines: Neighbourhood canteens."
        in rendered.text
    )
    assert "It funds 2 meals (a meal costs €13.50)." in rendered.text
    assert "don_123" in rendered.text
    assert "March 14, 2025" in rendered.text
    assert "http://127.0.0.1:8001/campaigns/petites-cantines" in rendered.text
    assert "<strong>2 meals</strong>" in rendered.html
    assert 'href="http://127.0.0.1:8001/campaigns/petites-cantines"' in rendered.html


def test_french_receipt_is_in_french_with_french_amounts() -> None:
    rendered = render_receipt(a_receipt(locale="fr-FR"), LETTERHEAD)

    assert rendered.subject == "Merci pour votre don à Les Petites Cantines"
    assert (
        f"Merci pour votre don de 27,00{NBSP}€ à Les Petites Cantines (Neighbourhood canteens)."
        in rendered.text
    )
    assert f"Il finance 2 repas (un repas coûte 13,50{NBSP}€)." in rendered.text
    assert "14 mars 2025" in rendered.text
    assert "<strong>2 repas</strong>" in rendered.html


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("fr", "fr"),
        ("fr-BE", "fr"),
        ("FR_ca", "fr"),
        ("en", "en"),
        ("de", "en"),
        ("", "en"),
    ],
)
def test_french_is_chosen_for_every_french_locale_and_english_otherwise(
    locale: str, expected: str
) -> None:
    assert language(locale) == expected


def test_one_meal_is_said_in_the_singular() -> None:
    rendered = render_receipt(a_receipt(amount=Money(1350, "EUR")), LETTERHEAD)

    assert "It funds 1 meal (a meal costs €13.50)." in rendered.text


def test_a_gift_below_a_meal_adds_to_the_next_meal() -> None:
    english = render_receipt(a_receipt(amount=Money(500, "EUR")), LETTERHEAD)
    french = render_receipt(a_receipt(amount=Money(500, "EUR"), locale="fr"), LETTERHEAD)

    assert "It adds to the next meal" in english.text
    assert "0 meals" not in english.text
    assert "Il s'ajoute au prochain repas" in french.text


def test_what_is_left_beyond_whole_meals_goes_towards_the_next_one() -> None:
    rendered = render_receipt(a_receipt(amount=Money(3000, "EUR")), LETTERHEAD)

    assert "It funds 2 meals" in rendered.text
    assert "The remaining €3.00 goes towards the next meal." in rendered.text


def test_receipt_is_dated_in_the_causes_time_zone() -> None:
    late_evening_in_paris = datetime(2025, 3, 14, 23, 30, tzinfo=UTC)

    rendered = render_receipt(a_receipt(given_at=late_evening_in_paris), LETTERHEAD)

    assert "March 15, 2025" in rendered.text


def test_hostile_campaign_title_and_donor_name_are_escaped_in_html() -> None:
    hostile = a_receipt(
        campaign_title="<script>alert(1)</script> & co", donor_name='<img src=x onerror="steal()">'
    )

    rendered = render_receipt(hostile, LETTERHEAD)

    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in rendered.html
    assert "<img" not in rendered.html
    assert "&lt;img src=x onerror=&#34;steal()&#34;&gt;" in rendered.html
    # Plain text is not HTML: it shows the words as they are.
    assert "<script>alert(1)</script> & co" in rendered.text


def test_campaign_slug_cannot_break_out_of_the_link() -> None:
    rendered = render_receipt(a_receipt(campaign_slug='x" onclick="evil/../?a=b'), LETTERHEAD)

    assert 'href="http://127.0.0.1:8001/campaigns/x%22%20onclick%3D%22evil%2F..%2F%3Fa%3Db"' in (
        rendered.html
    )


def test_message_has_text_and_html_parts_addressed_to_the_donor() -> None:
    message = on_the_wire(a_receipt())

    assert message["From"] == "difts <thanks@difts.localhost>"
    assert message["To"] == "Zoé Martin <zoe@example.org>"
    assert message["Subject"] == "Thank you for your gift to Les Petites Cantines"
    assert message["Message-ID"].endswith("@difts.localhost>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert "It funds 2 meals" in text_of(message, "plain")
    assert "<strong>2 meals</strong>" in text_of(message, "html")


def test_donor_name_cannot_add_a_header() -> None:
    message = on_the_wire(
        a_receipt(donor_name="Eve\r\nBcc: spy@evil.example"), name="Eve\r\nBcc: spy@evil.example"
    )

    assert message["Bcc"] is None
    assert message.get_all("To") == ['"Eve Bcc: spy@evil.example" <zoe@example.org>']
    assert [address.addr_spec for address in message["To"].addresses] == ["zoe@example.org"]


def test_cause_name_cannot_add_a_header() -> None:
    message = on_the_wire(a_receipt(cause="Cantines\nBcc: spy@evil.example\n\nbody"))

    assert message["Bcc"] is None
    assert message["Subject"] == ("Thank you for your gift to Cantines Bcc: spy@evil.example body")


def test_an_address_that_cannot_be_written_in_ascii_is_unsendable() -> None:
    rendered = render_receipt(a_receipt(), LETTERHEAD)

    with pytest.raises(UnsendableAddress):
        serialize(build_message(rendered, "Zoé", "zoé@example.org", LETTERHEAD, datetime.now(UTC)))


def test_whole_message_is_ascii_so_any_relay_takes_it() -> None:
    message = build_message(
        render_receipt(a_receipt(locale="fr"), LETTERHEAD),
        "Zoé",
        "zoe@example.org",
        LETTERHEAD,
        datetime.now(UTC),
    )

    assert serialize(message).isascii()


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("jane.doe@example.org", "j***@example.org"),
        ("j@example.org", "j***@example.org"),
        ("not-an-address", "***"),
        ("@example.org", "***"),
    ],
)
def test_email_addresses_are_masked_for_logs(address: str, masked: str) -> None:
    assert mask_email(address) == masked


def test_smtp_replies_are_redacted_before_they_reach_logs() -> None:
    reply = "550 5.1.1 <jane.doe@example.org>: Recipient address rejected"

    assert redact(reply) == "550 5.1.1 <j***@example.org>: Recipient address rejected"


# --- company difts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "price", "lang", "said"),
    [
        (2000, 1350, "fr", f"20{NBSP}€ = 1{NBSP}repas à Les Petites Cantines Bagnolet"),
        (2700, 1350, "fr", f"27{NBSP}€ = 2{NBSP}repas à Les Petites Cantines Bagnolet"),
        (2000, 2700, "fr", f"20{NBSP}€ = 74{NBSP}% d'un repas à Les Petites Cantines Bagnolet"),
        (2050, 2700, "fr", f"20,50{NBSP}€ = 75{NBSP}% d'un repas à Les Petites Cantines Bagnolet"),
        (
            10,
            1350,
            "fr",
            f"0,10{NBSP}€ = moins de 1{NBSP}% d'un repas à Les Petites Cantines Bagnolet",
        ),
        (2000, 1350, "en", "€20 = 1 meal at Les Petites Cantines Bagnolet"),
        (2700, 1350, "en", "€27 = 2 meals at Les Petites Cantines Bagnolet"),
        (2000, 2700, "en", "€20 = 74% of a meal at Les Petites Cantines Bagnolet"),
        (10, 1350, "en", "€0.10 = less than 1% of a meal at Les Petites Cantines Bagnolet"),
    ],
)
def test_what_a_dift_funds_is_said_in_the_causes_unit_meals_or_the_share_of_one(
    amount: int, price: int, lang: str, said: str
) -> None:
    assert (
        what_it_funds(
            Money(amount, "EUR"), Money(price, "EUR"), "Les Petites Cantines Bagnolet", lang
        )
        == said
    )


@pytest.mark.parametrize(
    ("amount", "lang", "said"),
    [
        (2000, "fr", f"20{NBSP}€"),
        (2050, "fr", f"20,50{NBSP}€"),
        (100000, "fr", f"1\u202f000{NBSP}€"),
        (2000, "en", "€20"),
        (100000, "en", "€1,000"),
        (2005, "en", "€20.05"),
    ],
)
def test_a_difts_amount_is_written_without_cents_when_it_is_whole(
    amount: int, lang: str, said: str
) -> None:
    assert format_money_whole(Money(amount, "EUR"), lang) == said


def a_dift(**overrides: object) -> Dift:
    facts: dict[str, object] = {
        "dift_id": "dift_1",
        "programme_id": "prog_1",
        "brand_name": "Acme\r\nBcc: evil@example.org",
        "value": Money(2000, "EUR"),
        "expires_at": datetime(2026, 1, 31, 23, 30, tzinfo=UTC),
        "shortlist": (
            ShortlistedCause(
                "camp_1", "bagnolet", "Les Petites Cantines Bagnolet", "", Money(1350, "EUR")
            ),
        ),
        "recipient": Recipient("lea@example.org", "Léa", "fr"),
        "redeem_url": "https://difts.example/difts/redeem/tok",
        **overrides,
    }
    return Dift(**facts)  # type: ignore[arg-type]


def test_an_invitation_says_the_expiry_in_the_causes_time_zone_and_keeps_headers_safe() -> None:
    rendered = render_invitation(a_dift(), LETTERHEAD, "Merci !", "<p>Merci !</p>")

    # 23:30 UTC on 31 January is 1 February in Paris.
    assert "valable jusqu'au 1 février 2026" in rendered.text
    assert "\n" not in rendered.subject and "Bcc:" in rendered.subject  # words, not a header
    message = build_message(rendered, "Léa", "lea@example.org", LETTERHEAD, NOW)
    assert message.get_all("Bcc") is None


def test_an_invitation_with_a_link_that_is_not_http_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="http"):
        render_invitation(a_dift(redeem_url="javascript:alert(1)"), LETTERHEAD)
