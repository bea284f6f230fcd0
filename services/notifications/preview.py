"""A news post's email before it is published: what the back office's news editor shows as
its live preview, rendered by the same templates and catalogs as the email donors get."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

from .emails import NewsPost, RenderedEmail, UnsubscribeLinks, render_news
from .messages import Letterhead

# As the donations service publishes a post: CommonMark, raw HTML in the source escaped.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
# Where a preview's unsubscribe links point: a token no donor has (its page says "invalid").
SAMPLE_TOKEN = "preview"  # noqa: S105 - not a secret: no link it makes is valid


def news_email(
    letterhead: Letterhead,
    campaign_title: str,
    campaign_slug: str,
    title: str,
    body_markdown: str,
    locale: str,
    cause_name: str = "",
    body_html: str = "",
) -> RenderedEmail:
    """The email a donor writing `locale` would get for this post (render_news), with sample
    unsubscribe links and, unless the caller sends its HTML, the Markdown rendered here."""
    sample = letterhead.unsubscribe_url(SAMPLE_TOKEN)
    post = NewsPost(
        campaign_title=campaign_title,
        campaign_slug=campaign_slug,
        cause=cause_name,
        title=title,
        body_markdown=body_markdown,
        body_html=body_html or nh3.clean(_MARKDOWN.render(body_markdown)),
        url="",
    )
    return render_news(post, locale, letterhead, UnsubscribeLinks(sample, sample))
