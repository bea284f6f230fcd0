"""Pages in a real browser: Debian's headless Chromium driven by Playwright, axe-core's audit
and screenshots under test-output/. Every browser test uses these, so "no critical or serious
accessibility violation" means the same thing on every page.

    with chromium() as browser:            # or the `browser` fixture of tests/conftest.py
        page = new_page(browser)
        page.goto(url)
        assert_accessible(page)            # axe-core 4.x, fails on critical or serious
        screenshot(page, "backoffice", "sign-in")
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "test-output"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BLOCKING = ("critical", "serious")


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless (infra/chromium.sh installs it; make test runs it)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run `bash infra/chromium.sh` (make test does)")
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, locale: str = "fr-FR", **options: Any) -> Any:
    """A page in a fresh context (its own cookies). The audit script is injected by the test,
    not by the site, so the context bypasses the site's content security policy for it only;
    `csp_errors(page)` still sees what the site itself would break."""
    context = browser.new_context(locale=locale, bypass_csp=True, **options)
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.difts_console = messages
    return page


def csp_errors(page: Any) -> list[str]:
    """The console's content-security-policy complaints since the page was opened."""
    return [text for text in page.difts_console if "Content Security Policy" in text]


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's critical and serious violations on the page as it is now."""
    if not AXE.exists():
        pytest.fail(f"no {AXE}: run `bash infra/axe.sh` (make test does)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in BLOCKING]


def assert_accessible(page: Any) -> None:
    """No critical or serious axe-core violation; the message names each rule and element."""
    violations = axe_violations(page)
    if violations:
        lines = [
            f"{v['impact']}: {v['id']} ({v['help']}) at "
            + ", ".join(json.dumps(node["target"]) for node in v["nodes"][:5])
            for v in violations
        ]
        pytest.fail(f"axe-core on {page.url}:\n" + "\n".join(lines))


def screenshot(page: Any, folder: str, name: str) -> Path:
    """A full-page screenshot saved as test-output/<folder>/<name>.png."""
    path = SHOTS / folder / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    # A viewport as tall as the page rather than full_page=True: Chromium's full-page capture
    # leaves sandboxed frames (the news editor's email preview) blank.
    size = page.viewport_size or {"width": 1280, "height": 720}
    height = int(page.evaluate("() => document.documentElement.scrollHeight"))
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def focused(page: Any) -> str:
    """What has the keyboard focus: the element's tag, name or id, and its text."""
    return str(
        page.evaluate(
            "() => { const e = document.activeElement; return e ? "
            "[e.tagName.toLowerCase(), e.getAttribute('name') || e.id || '', "
            "(e.innerText || e.value || '').trim()].join(' ') : '' }"
        )
    )


def tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until `selector` has the focus (fails after `limit` presses): proves the
    element can be reached by the keyboard alone."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
    pytest.fail(f"{selector} cannot be reached with Tab on {page.url} (focus: {focused(page)})")
