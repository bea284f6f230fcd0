"""Money: integer minor units plus a currency, and the only place money maths happens."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.shared.money import (
    CurrencyMismatch,
    Money,
    from_major_units,
    major_units,
    normalise_currency,
    split_evenly,
)


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


def test_an_even_split_gives_the_remainder_cents_to_the_first_shares() -> None:
    assert split_evenly(Money(1000, "EUR"), 3) == [
        Money(334, "EUR"),
        Money(333, "EUR"),
        Money(333, "EUR"),
    ]
    assert split_evenly(Money(2, "EUR"), 3) == [Money(1, "EUR"), Money(1, "EUR"), Money(0, "EUR")]


def test_a_split_needs_at_least_one_share_of_a_non_negative_amount() -> None:
    with pytest.raises(ValueError):
        split_evenly(Money(100, "EUR"), 0)
    with pytest.raises(ValueError):
        split_evenly(Money(-100, "EUR"), 2)


@given(amount=st.integers(min_value=0, max_value=10**12), parts=st.integers(1, 6))
def test_an_even_split_never_loses_or_invents_a_cent(amount: int, parts: int) -> None:
    shares = split_evenly(Money(amount, "EUR"), parts)
    assert sum(share.amount for share in shares) == amount
    assert len(shares) == parts
    assert max(s.amount for s in shares) - min(s.amount for s in shares) <= 1
    assert [s.amount for s in shares] == sorted((s.amount for s in shares), reverse=True)


def test_whole_euros_and_back() -> None:
    assert major_units(Money(2050, "EUR")) == 20
    assert from_major_units(20, "EUR") == Money(2000, "EUR")
    assert from_major_units(500, "JPY") == Money(500, "JPY")
