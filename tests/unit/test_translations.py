"""Every text the code and templates of a service say is translated in its French catalog:
the catalogs are extracted afresh from the sources (as `make translations` does), so a new
`_("...")` without its translation fails here, and so does a fuzzy or badly formatted one."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("donations", "notifications")
LOCALES = ("fr",)
METHODS = [
    ("**.py", "python"),
    ("**/templates/**.html", "jinja2"),
    ("**/templates/**.txt", "jinja2"),
]
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "_l": None,
    "lazy_gettext": None,
    "pgettext": ((1, "c"), 2),
    "lazy_ngettext": (1, 2),
}


def extracted(service: str) -> Catalog:
    """The texts of a service's code and templates, as pybabel extract finds them."""
    catalog = Catalog()
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(REPO / "services" / service), METHODS, keywords=KEYWORDS
    ):
        catalog.add(message, locations=[(filename, lineno)], context=context)
    return catalog


def translated(service: str, locale: str) -> Catalog:
    path = REPO / "services" / service / "translations" / locale / "LC_MESSAGES" / "messages.po"
    assert path.exists(), f"no {path}: run `make translations`"
    with path.open("rb") as source:
        return read_po(source, locale=locale)


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_text_of_the_service_is_translated(service: str, locale: str) -> None:
    catalog = translated(service, locale)
    missing = []
    for message in extracted(service):
        if not message.id:
            continue
        found = catalog.get(message.id, context=message.context)
        strings = (found.string if found is not None else None) or ""
        texts = strings if isinstance(strings, tuple | list) else (strings,)
        if found is None or found.fuzzy or not all(texts):
            where = ", ".join(f"{name}:{line}" for name, line in message.locations[:2])
            missing.append(f"{message.id!r} ({where})")
    assert not missing, (
        f"{len(missing)} text(s) of {service} lack a {locale} translation; run `make "
        f"translations` and fill them in: " + "; ".join(missing[:20])
    )


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("locale", LOCALES)
def test_translations_keep_their_placeholders(service: str, locale: str) -> None:
    problems = [
        f"{message.id!r}: {'; '.join(str(error) for error in errors)}"
        for message, errors in translated(service, locale).check()
    ]
    assert not problems, problems


def test_a_text_without_translation_is_found_missing(tmp_path: Path) -> None:
    """The check above can fail: an extracted text absent from a catalog is reported."""
    catalog = Catalog(locale="fr")
    catalog.add("Sign in", "Se connecter")
    assert catalog.get("Sign out") is None
    assert catalog.get("Sign in").string == "Se connecter"
