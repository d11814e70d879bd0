"""Markdown rendering and sanitizing: what members write can format text, never run code or load anything."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup
from markupsafe import Markup

from app.markdown import TAGS, render_markdown, sanitize

SAFE_SCHEMES = {"http", "https", "mailto"}
SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")


def scheme_ok(href: str) -> bool:
    """What a browser would run: it drops tabs and newlines and leading spaces before reading the scheme.
    No scheme at all (e.g. "jav%09ascript:x", a relative path) is harmless."""
    cleaned = re.sub(r"[\t\n\r]", "", href).strip().lower()
    m = SCHEME.match(cleaned)
    return m is None or m.group(1) in SAFE_SCHEMES

# OWASP XSS filter evasion cheat sheet, and the Markdown tricks that got past the anchors' renderers.
PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/xss.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<img src=`javascript:alert(1)`>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<style>body{background:url(javascript:alert(1))}</style>",
    "<div style=\"width: expression(alert(1))\">x</div>",
    "<body onload=alert(1)>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
    "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
    "<object data=\"javascript:alert(1)\"></object>",
    "<embed src=\"javascript:alert(1)\">",
    "<form action=\"javascript:alert(1)\"><button>x</button></form>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<base href=\"javascript:alert(1)//\">",
    "<!--<img src=x onerror=alert(1)>-->",
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](javascript&#58;alert(1))",
    "[x](jav&#x09;ascript:alert(1))",
    "[x](  javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](file:///etc/passwd)",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x\" onerror=\"alert(1)](https://example.org/a.png)",
    "[x](https://example.org\" onmouseover=\"alert(1))",
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "<http://example.org/\"onmouseover=\"alert(1)>",
    "`<script>alert(1)</script>`",
    "```\n<script>alert(1)</script>\n```",
    "{{7*7}} {% raw %}",
]


def assert_harmless(html: str) -> BeautifulSoup:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(True):
        assert tag.name in TAGS, (tag.name, html)
        for attr, value in tag.attrs.items():
            assert not attr.lower().startswith("on"), html
            assert attr in {"href", "title", "rel", "start"}, (attr, html)
            if attr == "href":
                assert scheme_ok(value), html
    return soup


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_renders_harmless(payload: str) -> None:
    html = str(render_markdown(payload))
    assert_harmless(html)
    assert "<script" not in html.lower()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sanitizer_alone_also_holds(payload: str) -> None:
    """The second layer, given raw HTML as if the Markdown renderer had let it through."""
    assert_harmless(sanitize(payload))


def test_raw_html_is_shown_as_text() -> None:
    html = str(render_markdown("Hello <b>bold</b> <script>alert(1)</script>"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<b>" not in html


def test_formatting_survives() -> None:
    html = str(render_markdown("# Title\n\n**bold** *em* `code`\n\n- a\n- b\n\n> quoted\n\n---\n\n"
                               "| a | b |\n|---|---|\n| 1 | 2 |\n\n[link](https://example.org \"T\")"))
    soup = assert_harmless(html)
    for name in ("h2", "strong", "em", "code", "ul", "li", "blockquote", "hr", "table", "th", "td", "a"):
        assert soup.find(name), name
    link = soup.find("a")
    assert link["href"] == "https://example.org" and link["title"] == "T"
    assert link["rel"] == ["nofollow", "noopener"]


def test_headings_start_below_the_page_title() -> None:
    soup = BeautifulSoup(str(render_markdown("# one\n\n## two\n\n### three\n\n###### six")), "html.parser")
    assert [h.name for h in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"])] == ["h2", "h3", "h4", "h4"]


def test_autolinks_and_mailto_are_links_with_rel() -> None:
    soup = assert_harmless(str(render_markdown("<https://example.org/x> and <mailto:a@example.org>")))
    hrefs = [a["href"] for a in soup.find_all("a")]
    assert hrefs == ["https://example.org/x", "mailto:a@example.org"]
    assert all(a["rel"] == ["nofollow", "noopener"] for a in soup.find_all("a"))


def test_images_become_plain_links_and_load_nothing() -> None:
    html = str(render_markdown("![a cat](https://example.org/cat.png)"))
    soup = assert_harmless(html)
    assert soup.find("img") is None and soup.find("a")["href"] == "https://example.org/cat.png"


def test_returns_markup_and_empty_input() -> None:
    assert isinstance(render_markdown("x"), Markup)
    assert render_markdown("") == "" and render_markdown("   \n") == ""


def test_template_syntax_is_just_text() -> None:
    assert "{{7*7}}" in str(render_markdown("{{7*7}}"))


def test_scheme_check_itself() -> None:
    assert not scheme_ok("java\tscript:alert(1)") and not scheme_ok(" JavaScript:x") and not scheme_ok("data:x")
    assert scheme_ok("https://example.org") and scheme_ok("/p/1") and scheme_ok("jav%09ascript:x")
