"""Money as the services exchange it: integer minor units plus an ISO 4217 currency.

This is the published language of amounts (every event and API carries money this way);
the arithmetic lives here so nothing else does money maths with floats.
"""

from __future__ import annotations

from dataclasses import dataclass

# Minor-unit exponent of each currency the platform accepts (ISO 4217).
CURRENCY_EXPONENTS: dict[str, int] = {
    "EUR": 2,
    "USD": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "SEK": 2,
    "DKK": 2,
    "NOK": 2,
    "PLN": 2,
    "JPY": 0,
}


class CurrencyMismatch(ValueError):
    """Raised when money of two currencies is combined."""


def normalise_currency(code: str) -> str:
    """Return the ISO 4217 code in upper case, or raise ValueError if we do not accept it."""
    upper = code.strip().upper()
    if upper not in CURRENCY_EXPONENTS:
        raise ValueError(f"unsupported currency {code!r}")
    return upper


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (cents for EUR) of one currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount must be an int of minor units")
        if self.currency not in CURRENCY_EXPONENTS:
            raise ValueError(f"unsupported currency {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        """No money, in the given currency."""
        return cls(0, currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, times: int) -> Money:
        if isinstance(times, bool) or not isinstance(times, int):
            raise TypeError("money can only be multiplied by an int")
        return Money(self.amount * times, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def divmod(self, price: Money) -> tuple[int, Money]:
        """How many whole `price`s fit in this amount, and what is left over (never negative
        for a non-negative amount)."""
        self._same_currency(price)
        if price.amount <= 0:
            raise ValueError("price must be positive")
        whole, rest = divmod(self.amount, price.amount)
        return whole, Money(rest, self.currency)

    def is_positive(self) -> bool:
        """True for strictly more than nothing."""
        return self.amount > 0

    def format(self, locale: str = "en") -> str:
        """Human text for emails and pages, by CLDR: "27,00 €" in French, "€27.00" in English."""
        from .i18n import format_money  # i18n builds on Money

        return format_money(self, locale)


def split_evenly(total: Money, parts: int) -> list[Money]:
    """`total` in `parts` shares as equal as cents allow, in the order the shares are listed:
    each share is total // parts and the first total % parts shares get one minor unit more,
    so the shares always sum to `total` exactly (a programme's shortlist order decides who
    gets the remainder cents of an even split)."""
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError("a split needs at least one share")
    if total.amount < 0:
        raise ValueError("only a non-negative amount splits")
    share, remainder = divmod(total.amount, parts)
    return [Money(share + (1 if i < remainder else 0), total.currency) for i in range(parts)]


def major_units(money: Money) -> int:
    """How many whole major units (euros) fit in `money`; the cents are left out."""
    return money.amount // 10 ** CURRENCY_EXPONENTS[money.currency]


def from_major_units(units: int, currency: str) -> Money:
    """`units` whole major units (euros) of `currency` as money."""
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError("whole units are an int")
    return Money(units * 10 ** CURRENCY_EXPONENTS[currency], currency)
