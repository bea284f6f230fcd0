"""services/shared/i18n.py: CLDR's formats for French and English, and the language choice."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.shared import i18n
from services.shared.money import Money


def test_money_is_written_as_each_locale_writes_it() -> None:
    assert i18n.format_money(Money(270_000, "EUR"), "fr") == "2\u202f700,00\u00a0€"
    assert i18n.format_money(Money(270_000, "EUR"), "en") == "€2,700.00"
    assert i18n.format_money(Money(-150, "EUR"), "fr") == "-1,50\u00a0€"
    assert i18n.format_money(Money(500, "JPY"), "en") == "¥500"


def test_whole_amounts_drop_their_cents_and_others_keep_them() -> None:
    assert i18n.format_money_whole(Money(2000, "EUR"), "fr") == "20\u00a0€"
    assert i18n.format_money_whole(Money(2000, "EUR"), "en") == "€20"
    assert i18n.format_money_whole(Money(2050, "EUR"), "fr") == "20,50\u00a0€"


def test_rates_and_shares_are_percentages_of_the_locale() -> None:
    assert i18n.format_basis_points(150, "fr") == "1,5\u00a0%"
    assert i18n.format_basis_points(150, "en") == "1.5%"
    assert i18n.format_basis_points(200, "en") == "2%"
    assert i18n.format_fraction(Decimal("0.74"), "fr") == "74\u00a0%"


def test_days_are_long_or_short_and_taken_to_the_timezone() -> None:
    assert i18n.format_day(date(2027, 1, 1), "fr") == "1 janvier 2027"
    assert i18n.format_day(date(2027, 1, 1), "en") == "January 1, 2027"
    assert i18n.format_day(date(2027, 1, 1), "fr", "short") == "01/01/2027"
    late = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert i18n.format_day(late, "fr", timezone=ZoneInfo("Europe/Paris")) == "1 janvier 2027"


def test_numbers_are_grouped_by_the_locale() -> None:
    assert i18n.format_number(1234, "fr") == "1\u202f234"
    assert i18n.format_number(1234, "en") == "1,234"


def test_a_language_difts_does_not_speak_falls_back_to_french() -> None:
    assert i18n.supported("fr-BE") == "fr"
    assert i18n.supported("en_GB") == "en"
    assert i18n.supported("de") == "fr"
    assert i18n.best_match(["de", "en-US", "fr"]) == "en"
    assert i18n.best_match([]) == "fr"
