"""Campaign stories and news posts are Markdown, rendered without what could run."""

from __future__ import annotations

from services.donations.markdown_text import render_markdown


def test_stories_are_rendered_without_scripts_or_dangerous_links() -> None:
    html = render_markdown("**Hi** <script>alert(1)</script> [x](javascript:alert(1))")
    assert "<strong>Hi</strong>" in html
    assert "<script>" not in html
    assert 'href="javascript' not in html
