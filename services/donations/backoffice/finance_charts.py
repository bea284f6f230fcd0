"""The finance dashboard's charts: a campaign's money and meals over time, drawn on the server
as SVG by pygal from the ledger's history buckets, each figure exactly the ledger's.

Like the impact report's chart (charts.py), a chart is a picture, never a program: pygal's
scripts and event attributes are taken out, and the page shows the SVG as a data: URL image
(the content security policy allows no inline script or style, and pygal's stylesheet
inside an image styles only the image). Each chart has a table of the same figures beside
it on the page, for screen readers; the image's alt text says where it is."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import pygal
from pygal.style import Style

# The back office's green and its companions, on the pages' background (donor.css).
STYLE = Style(
    background="#fbfaf7",
    plot_background="#fbfaf7",
    foreground="#222222",
    foreground_strong="#222222",
    foreground_subtle="#cccccc",
    colors=("#1f5f4a", "#3b8dbd", "#c25e00", "#6b4c9a"),
    font_family="system-ui, sans-serif",
)
# More buckets than this and only some are labelled, so the labels stay legible.
LABELLED_BUCKETS = 12


@dataclass(frozen=True)
class Series:
    """One line or set of bars: its name, and a whole number per bucket (minor units or
    meals)."""

    name: str
    values: Sequence[int]


def _without_scripts(svg: str) -> str:
    """`svg` with no script element and no on* attribute left."""
    ElementTree.register_namespace("", "http://www.w3.org/2000/svg")
    ElementTree.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ElementTree.fromstring(svg)  # noqa: S314 (pygal's own output, not user input)
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
        for attribute in [name for name in parent.attrib if name.lower().startswith("on")]:
            del parent.attrib[attribute]
    return ElementTree.tostring(root, encoding="unicode")


def _chart(
    kind: type[Any],
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    formatted: Callable[[int], str],
    whole_steps: bool = False,
) -> str:
    many = len(labels) > LABELLED_BUCKETS
    chart = kind(
        style=STYLE,
        title=title,
        js=[],
        width=760,
        height=340,
        legend_at_bottom=True,
        truncate_label=-1,
        x_label_rotation=30 if many else 0,
        show_minor_x_labels=not many,
        x_labels_major_every=max(1, len(labels) // LABELLED_BUCKETS) if many else None,
        # The axis and tooltips in the page's own formats (Babel), from whole numbers.
        value_formatter=lambda value: formatted(round(value)) if value is not None else "",
        disable_xml_declaration=True,
    )
    chart.x_labels = list(labels)
    if whole_steps:
        # Whole meals on the axis from zero (pygal would put fractions between counts).
        top = max((value for one in series for value in one.values), default=0)
        step = max(1, -(-top // 6))
        chart.y_labels = list(range(0, max(top, 1) + step, step))
    for one in series:
        chart.add(one.name, list(one.values))
    return _without_scripts(chart.render(is_unicode=True))


def money_chart_svg(
    title: str, labels: Sequence[str], series: Sequence[Series], money: Callable[[int], str]
) -> str:
    """Bars of money per bucket (minor units), the axis written by `money`."""
    return _chart(pygal.Bar, title, labels, series, money)


def meals_chart_svg(
    title: str, labels: Sequence[str], series: Sequence[Series], number: Callable[[int], str]
) -> str:
    """A line of meals (the counter at each bucket's end), the axis written by `number`."""
    return _chart(pygal.Line, title, labels, series, number, whole_steps=True)


def svg_data_url(svg: str) -> str:
    """`svg` as a data: URL, for an <img> the content security policy allows."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
