"""Plain text from HTML, and short excerpts: for mail that quotes a comment, and for replies sent as HTML only.

`html_to_text` keeps what a reader sees: paragraphs and line breaks, list items as "- ", quoted blocks as "> "
lines (so the reply parser recognises them as quotes), a link's address after its text; it drops scripts,
styles and the document head. It never raises on broken HTML.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from app.markdown import render_markdown

_BLOCK = frozenset({"p", "div", "section", "article", "header", "footer", "table", "tr", "ul", "ol", "h1", "h2",
                    "h3", "h4", "h5", "h6", "pre", "blockquote", "hr", "dl", "dt", "dd", "figure", "address"})
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")
_SENTENCE_END = re.compile(r"[.!?…](?=\s)")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.quote = 0
        self.skip = 0
        self.pre = 0
        self.links: list[str | None] = []

    def _newline(self) -> None:
        if self.lines[-1].strip(" >"):
            self.lines.append("")

    def _write(self, text: str) -> None:
        if not self.lines[-1]:
            self.lines[-1] = "> " * self.quote
        self.lines[-1] += text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "br":
            self._write("")
            self.lines.append("")
        elif tag == "li":
            self._newline()
            self._write("- ")
        elif tag in _BLOCK:
            self._newline()
            if tag == "blockquote":
                self.quote += 1
            elif tag == "pre":
                self.pre += 1
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br",):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK or tag == "li":
            self._newline()
            if tag == "blockquote":
                self.quote = max(0, self.quote - 1)
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)
            if tag in ("p", "blockquote", "pre", "ul", "ol", "table") or tag.startswith("h"):
                self.lines.append("")
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and href.startswith(("http://", "https://")) and href not in self.lines[-1]:
                self._write(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            for i, part in enumerate(data.split("\n")):
                if i:
                    self.lines.append("")
                self._write(part)
            return
        text = _SPACES.sub(" ", data)
        if not self.lines[-1].strip(" >"):
            text = text.lstrip()
        if text:
            self._write(text)


def html_to_text(html: str) -> str:
    parser = _Text()
    try:
        parser.feed(html or "")
        parser.close()
    except (AssertionError, ValueError):  # HTMLParser gives up on some malformed markup: keep what it read
        pass
    out: list[str] = []
    for line in (line.rstrip() for line in parser.lines):
        if line.strip(" >") or (out and out[-1].strip(" >")):
            out.append(line if line.strip(" >") else line.strip())
    return "\n".join(out).strip()


def excerpt(text: str, limit: int = 240) -> str:
    """Text on one line, at most `limit` characters: whole sentences when they fit, else cut at a word, with "…"."""
    flat = _SPACES.sub(" ", text or "").strip()
    if len(flat) <= limit:
        return flat
    head = flat[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(flat[:limit + 1])]
    if ends and ends[-1] >= limit // 3:
        return flat[:ends[-1]]
    cut = head.rsplit(" ", 1)[0] if " " in head[limit // 2:] else head[:-1]
    return cut.rstrip(" ,;:-") + "…"


def markdown_excerpt(markdown: str, limit: int = 240) -> str:
    """A comment's Markdown as a plain-text excerpt (what a reader would see, without formatting)."""
    return excerpt(html_to_text(str(render_markdown(markdown or ""))), limit)
