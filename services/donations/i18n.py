"""The pages' language and formats: flask-babel with the service's catalogs, and the CLDR
formats of services/shared/i18n.py as template functions (`money`, `money_whole`, `percent`,
`number`, `day`), so no page writes a number, an amount or a date by hand."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel, get_locale

from services.shared import i18n
from services.shared.money import Money

TRANSLATIONS_DIR = Path(__file__).resolve().parent / i18n.TRANSLATIONS


LANGUAGE_KEY = "lang"


def page_locale() -> str:
    """The reader's language: ?lang= if given (then remembered in the session, so the next
    page and a form's answer keep it), else the one chosen before, else the browser's
    preference, else French."""
    chosen = request.args.get("lang")
    if chosen in i18n.LOCALES:
        if session.get(LANGUAGE_KEY) != chosen and not request.path.startswith("/webhooks/"):
            session[LANGUAGE_KEY] = chosen
        return str(chosen)
    remembered = session.get(LANGUAGE_KEY)
    if remembered in i18n.LOCALES:
        return str(remembered)
    return request.accept_languages.best_match(i18n.LOCALES) or i18n.DEFAULT_LOCALE


def current_locale() -> str:
    """The language of the page being rendered (flask-babel's choice, from page_locale)."""
    return str(get_locale() or i18n.DEFAULT_LOCALE)


def money(amount: int, currency: str) -> str:
    """An amount in minor units, written for the page's language ("27,00 €", "€27.00")."""
    return i18n.format_money(Money(amount, currency), current_locale())


def money_whole(amount: int, currency: str) -> str:
    """An amount without ",00" when it has no cents ("20 €")."""
    return i18n.format_money_whole(Money(amount, currency), current_locale())


def percent(basis_points: int) -> str:
    """A rate in basis points (150) for the page's language ("1,5 %", "1.5%")."""
    return i18n.format_basis_points(basis_points, current_locale())


def share(value: Decimal, digits: int = 0) -> str:
    """A share (0.74) as a percentage for the page's language ("74 %")."""
    return i18n.format_fraction(value, current_locale(), digits)


def number(value: int | Decimal) -> str:
    """A count with the page's grouping ("1 234", "1,234")."""
    return i18n.format_number(value, current_locale())


def day(moment: date | datetime, width: str = "long") -> str:
    """A day for the page's language ("1 janvier 2027", "01/01/2027" short)."""
    return i18n.format_day(moment, current_locale(), width)


def install_babel(app: Flask) -> None:
    """flask-babel on `app` with the service's catalogs, and the format functions in every
    template."""
    Babel(
        app,
        locale_selector=page_locale,
        default_translation_directories=str(TRANSLATIONS_DIR),
    )
    app.jinja_env.globals.update(
        money=money,
        money_whole=money_whole,
        percent=percent,
        share=share,
        number=number,
        day=day,
    )
