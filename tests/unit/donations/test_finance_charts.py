"""The finance dashboard's charts (backoffice/finance_charts.py): pictures without a script
or an event handler, their axes in the page's formats, meals counted in whole steps."""

from __future__ import annotations

import base64
import re

from services.donations.backoffice.finance_charts import (
    Series,
    meals_chart_svg,
    money_chart_svg,
    svg_data_url,
)
from services.shared.i18n import format_money, format_number
from services.shared.money import Money

LABELS = ["janv. 2026", "févr. 2026", "mars 2026"]


def euros(minor: int) -> str:
    return format_money(Money(minor, "EUR"), "fr")


def test_a_money_chart_has_no_script_and_writes_its_axis_as_money() -> None:
    svg = money_chart_svg(
        "Montants",
        LABELS,
        [Series("Dons", [4130, 4050, 3000]), Series("Versé", [0, 2714, 0])],
        euros,
    )
    assert "<script" not in svg and not re.search(r"\son[a-z]+=", svg)
    assert euros(4000) in svg  # an axis label, in the French format
    assert "Dons" in svg and "févr. 2026" in svg


def test_a_meals_chart_counts_whole_meals_from_zero() -> None:
    svg = meals_chart_svg(
        "Repas", LABELS, [Series("Repas", [4, 5, 7])], lambda n: format_number(n, "fr")
    )
    labels = re.findall(r'<text[^>]*class="[^"]*"[^>]*>(\d+)</text>', svg)
    assert "0" in labels and "8" in labels
    assert "<script" not in svg


def test_a_chart_travels_as_a_data_url_image() -> None:
    url = svg_data_url("<svg>é</svg>")
    assert url.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).decode() == "<svg>é</svg>"
