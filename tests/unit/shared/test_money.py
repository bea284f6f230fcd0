"""Money: integer minor units plus a currency, and the only place money maths happens."""

import pytest

from services.shared.money import CurrencyMismatch, Money, normalise_currency


def test_a_27_euro_gift_is_two_meals_at_13_50_with_nothing_left() -> None:
    assert Money(2700, "EUR").divmod(Money(1350, "EUR")) == (2, Money(0, "EUR"))


def test_the_remainder_is_carried_never_rounded() -> None:
    assert Money(2000, "EUR").divmod(Money(1350, "EUR")) == (1, Money(650, "EUR"))


def test_adding_money_of_two_currencies_is_refused() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(100, "EUR") + Money(100, "USD")


@pytest.mark.parametrize("amount", [13.5, "1350", True, None])
def test_money_is_integer_minor_units_only(amount: object) -> None:
    with pytest.raises(TypeError):
        Money(amount, "EUR")  # type: ignore[arg-type]


def test_a_meal_price_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Money(100, "EUR").divmod(Money(0, "EUR"))


def test_multiplying_by_a_count_of_meals() -> None:
    assert Money(1350, "EUR") * 2 == Money(2700, "EUR")
    with pytest.raises(TypeError):
        Money(1350, "EUR") * 1.5  # type: ignore[operator]


def test_amounts_read_as_people_write_them() -> None:
    assert Money(2700, "EUR").format("fr") == "27,00\u00a0€"
    assert Money(2700, "EUR").format("en") == "€27.00"
    assert Money(123456789, "EUR").format("en") == "€1,234,567.89"
    assert Money(-5, "EUR").format("en") == "-€0.05"
    assert Money(500, "JPY").format("en") == "¥500"


def test_currency_codes_are_iso_4217_upper_case() -> None:
    assert normalise_currency(" eur ") == "EUR"
    with pytest.raises(ValueError):
        normalise_currency("XYZ")
