"""The impact report's chart: difts directed per day as SVG drawn on the server, a picture
without any script."""

from __future__ import annotations

import base64
import re
from datetime import date
from xml.etree import ElementTree

from services.donations.charts import directions_chart_svg, svg_data_url

SVG = "{http://www.w3.org/2000/svg}"
POINTS = [(date(2026, 12, 1), 3), (date(2026, 12, 4), 5), (date(2026, 12, 2), 1)]


def _scriptless(svg: str) -> None:
    assert "<script" not in svg.lower()
    root = ElementTree.fromstring(svg)  # noqa: S314
    for element in root.iter():
        assert not element.tag.endswith("script")
        assert not [name for name in element.attrib if name.lower().startswith("on")]
        for name, value in element.attrib.items():
            assert "javascript:" not in value.lower(), name


def _bar_values(svg: str) -> list[str]:
    root = ElementTree.fromstring(svg)  # noqa: S314
    return [
        text.text or ""
        for text in root.iter(f"{SVG}text")
        if "value" in (text.get("class") or "").split()
    ]


def test_the_chart_is_svg_without_any_script_or_event_handler() -> None:
    svg = directions_chart_svg(POINTS, "fr")
    assert svg.startswith("<svg")
    _scriptless(svg)


def test_every_day_from_the_first_to_the_last_direction_has_a_bar_zero_included() -> None:
    svg = directions_chart_svg(POINTS, "en")
    for label in ("Dec 1", "Dec 2", "Dec 3", "Dec 4"):
        assert f">{label}<" in svg
    assert _bar_values(svg) == ["3", "1", "0", "5"]


def test_the_chart_speaks_the_report_language() -> None:
    french = directions_chart_svg(POINTS, "fr")
    assert "Difts dirigés par jour" in french
    assert ">01/12<" in french and ">04/12<" in french
    assert "Difts directed per day" in directions_chart_svg(POINTS, "en")


def test_a_programme_without_any_direction_yet_says_so() -> None:
    svg = directions_chart_svg([], "fr")
    assert "Aucun dift dirigé pour l’instant" in svg
    _scriptless(svg)


def test_a_long_programme_labels_only_some_days() -> None:
    points = [(date(2026, 10, 1 + n), n % 4) for n in range(30)] + [
        (date(2026, 11, 1 + n), 1) for n in range(30)
    ]
    svg = directions_chart_svg(points, "fr")
    _scriptless(svg)
    labels = re.findall(r"<text[^>]*>(\d\d/\d\d)</text>", svg)
    assert "01/10" in labels
    assert len(set(labels)) < 60


def test_the_data_url_carries_the_svg_for_an_img_element() -> None:
    svg = directions_chart_svg(POINTS, "fr")
    url = svg_data_url(svg)
    prefix = "data:image/svg+xml;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :]).decode() == svg
