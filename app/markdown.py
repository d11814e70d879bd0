"""Members' and admins' Markdown, turned into HTML that is safe to put in a page.

Two layers, so a mistake in one is caught by the other: markdown-it-py (CommonMark, raw HTML off) makes the
HTML, then nh3 keeps only an allow-list of tags, attributes and URL schemes. The result is the only thing in
the templates that is not escaped, which is why it comes back as `Markup`.
"""

from __future__ import annotations

import functools
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

TAGS = {
    "p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a", "h2", "h3", "h4", "hr",
    "table", "thead", "tbody", "tr", "th", "td",
}
ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "nofollow noopener"
# The page's own <h1> is the proposal's title, so a "# Heading" in the text starts one level below it.
HEADING = {"h1": "h2", "h2": "h3", "h3": "h4", "h4": "h4", "h5": "h4", "h6": "h4"}


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    # Images would load from any server a writer names (a tracking pixel in every reader's browser);
    # with the image rule off, ![text](url) reads as "!" and a plain link the reader can choose to follow.
    md.disable("image")
    return md


_md = _parser()


def _shift_headings(tokens: list[Token]) -> None:
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = HEADING.get(token.tag, token.tag)


@functools.lru_cache(maxsize=512)
def render_markdown(text: str) -> Markup:
    """CommonMark to sanitized HTML. Raw HTML in the source is shown as text, never interpreted.

    Pure and deterministic, so a text shown again and again (a proposal's body on every visit) is rendered once;
    the result is an immutable string."""
    if not text or not text.strip():
        return Markup("")
    env: dict[str, Any] = {}
    tokens = _md.parse(text, env)
    _shift_headings(tokens)
    return Markup(sanitize(_md.renderer.render(tokens, _md.options, env)))  # noqa: S704 - sanitized


def sanitize(html: str) -> str:
    """Keep only allow-listed tags, attributes and URL schemes; links get rel="nofollow noopener"."""
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
        strip_comments=True,
        clean_content_tags={"script", "style"},
    )
