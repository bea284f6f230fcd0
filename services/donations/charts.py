"""The impact report's chart of difts directed over time, drawn on the server as SVG by pygal.

The chart is a picture, never a program: pygal puts a configuration script (and links its
tooltip scripts) in every SVG, so they are taken out of the tree before it is written, along
with any event-handler attribute. The donor pages' content security policy allows no inline
script anyway; the page shows the SVG as an image (a data: URL, which `img-src` allows), so
pygal's own stylesheet inside the SVG styles only the picture.
"""

from __future__ import annotations

import base64
from datetime import date, timedelta
from xml.etree import ElementTree

import pygal
from pygal.style import Style

from services.shared.i18n import catalog, format_day_pattern, format_number

from .i18n import TRANSLATIONS_DIR

# The donor pages' green (donor.css), on the pages' background.
STYLE = Style(
    background="#fbfaf7",
    plot_background="#fbfaf7",
    foreground="#222222",
    foreground_strong="#222222",
    foreground_subtle="#cccccc",
    colors=("#1f5f4a",),
    font_family="system-ui, sans-serif",
)
# More days than this and only every n-th day is labelled, so the labels stay legible.
LABELLED_DAYS = 14


def _every_day(points: list[tuple[date, int]]) -> list[tuple[date, int]]:
    """The points with the days between them that had no direction, as zeros, in order."""
    counts: dict[date, int] = {}
    for day, count in points:
        counts[day] = counts.get(day, 0) + count
    if not counts:
        return []
    first, last = min(counts), max(counts)
    return [
        (first + timedelta(days=n), counts.get(first + timedelta(days=n), 0))
        for n in range((last - first).days + 1)
    ]


def _day_label(day: date, locale: str) -> str:
    """An axis label: the day and month in CLDR's pattern of `locale` ("01/12", "Dec 1")."""
    return format_day_pattern(day, "dd/MM" if locale == "fr" else "MMM d", locale)


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


def directions_chart_svg(points: list[tuple[date, int]], locale: str) -> str:
    """A bar chart of how many difts were directed each day (days without any as zeros),
    titled in `locale` (fr or en), as SVG text without any script."""
    texts = catalog(TRANSLATIONS_DIR, locale)
    title = texts.gettext("Difts directed per day")
    days = _every_day(points)
    chart = pygal.Bar(
        style=STYLE,
        title=title,
        no_data_text=texts.gettext("No dift directed yet"),
        show_legend=False,
        js=[],
        width=720,
        height=320,
        x_label_rotation=0 if len(days) <= LABELLED_DAYS else 30,
        show_minor_x_labels=len(days) <= LABELLED_DAYS,
        x_labels_major_every=max(1, len(days) // LABELLED_DAYS) if days else None,
        print_values=len(days) <= LABELLED_DAYS,
        value_formatter=lambda value: "" if value is None else format_number(int(value), locale),
        disable_xml_declaration=True,
    )
    chart.x_labels = [_day_label(day, locale) for day, _count in days]
    # Whole numbers of difts on the axis (pygal would put fractions between 0 and 1).
    top = max((count for _day, count in days), default=0)
    step = max(1, -(-top // 5))
    chart.y_labels = list(range(0, max(top, 1) + step, step))
    chart.add(title, [count for _day, count in days])
    return _without_scripts(chart.render(is_unicode=True))


def svg_data_url(svg: str) -> str:
    """`svg` as a data: URL, for an <img> the page's content security policy allows."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
