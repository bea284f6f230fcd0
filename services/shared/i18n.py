"""Languages, catalogs and CLDR formats, the same for every service's pages and emails.

Texts are English msgids in the code and templates (`_("...")`), translated by each service's
gettext catalog under `services/<service>/translations/<locale>/LC_MESSAGES/messages.po`
(`make translations` extracts and updates them; the install step compiles them). Numbers,
money, percentages and dates are written by Babel from CLDR's data, never by hand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date as cldr_date
from babel.numbers import format_currency, format_decimal
from babel.numbers import format_percent as cldr_percent
from babel.support import NullTranslations, Translations

from .money import CURRENCY_EXPONENTS, Money

LOCALES = ("fr", "en")
DEFAULT_LOCALE = "fr"
# Where a service keeps its catalogs, relative to its package.
TRANSLATIONS = "translations"


def supported(locale: str | None, default: str = DEFAULT_LOCALE) -> str:
    """`locale` if difts speaks it (its language part: "fr-BE" is "fr"), else `default`."""
    if locale:
        language = str(locale).replace("_", "-").split("-")[0].lower()
        if language in LOCALES:
            return language
    return default


def best_match(accepted: Iterable[str]) -> str:
    """The first language of `accepted` (in preference order) that difts speaks, else French."""
    for candidate in accepted:
        language = supported(candidate, default="")
        if language:
            return language
    return DEFAULT_LOCALE


def format_money(money: Money, locale: str) -> str:
    """An amount as its locale writes it: "2 700,00 €" in French, "€2,700.00" in English."""
    exponent = CURRENCY_EXPONENTS[money.currency]
    value = Decimal(money.amount).scaleb(-exponent)
    return format_currency(value, money.currency, locale=supported(locale))


def format_money_whole(money: Money, locale: str) -> str:
    """An amount without its cents when it has none ("20 €", "€20"), as subject lines say it."""
    exponent = CURRENCY_EXPONENTS[money.currency]
    if exponent and money.amount % 10**exponent:
        return format_money(money, locale)
    value = Decimal(money.amount).scaleb(-exponent)
    pattern = Locale.parse(supported(locale)).currency_formats["standard"].pattern
    return format_currency(
        value,
        money.currency,
        pattern.replace(".00", ""),
        locale=supported(locale),
        currency_digits=False,
    )


def format_number(value: int | Decimal, locale: str) -> str:
    """A count or a decimal with the locale's grouping and decimal mark ("1 234,5")."""
    return format_decimal(value, locale=supported(locale))


def format_fraction(value: Decimal, locale: str, digits: int = 0) -> str:
    """A share (0.74) as a percentage ("74 %", "74%"), with up to `digits` decimals."""
    standard = Locale.parse(supported(locale)).percent_formats[None].pattern
    pattern = standard.replace("#,##0", "#,##0" + ("." + "#" * digits if digits else ""), 1)
    return cldr_percent(value, pattern, locale=supported(locale))


def format_basis_points(basis_points: int, locale: str) -> str:
    """A rate in basis points (150) as a percentage ("1,5 %", "1.5%")."""
    return format_fraction(Decimal(basis_points).scaleb(-4), locale, digits=2)


def format_day(
    moment: date | datetime, locale: str, width: str = "long", timezone: ZoneInfo | None = None
) -> str:
    """A day as the locale writes it: long "1 janvier 2027" / "January 1, 2027", short
    "01/01/2027" / "1/1/27". A moment is first taken to `timezone` (default: as given)."""
    if isinstance(moment, datetime) and timezone is not None:
        moment = moment.astimezone(timezone)
    day = moment.date() if isinstance(moment, datetime) else moment
    return cldr_date(day, width, locale=supported(locale))


def format_day_pattern(moment: date | datetime, pattern: str, locale: str) -> str:
    """A day in a CLDR skeleton-free pattern ("dd/MM", "MMM d"), for chart axes."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return cldr_date(day, pattern, locale=supported(locale))


@lru_cache(maxsize=32)
def catalog(directory: Path, locale: str) -> NullTranslations:
    """The compiled gettext catalog of one service (`directory` is its translations folder)
    in `locale`; English is the msgids themselves."""
    return Translations.load(str(directory), [supported(locale)], domain="messages")
