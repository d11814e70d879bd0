"""The templates' own `escape` (app.templating): the same result as MarkupSafe's for every value, and the one the
compiled templates call for `{{ value }}`."""

from __future__ import annotations

import markupsafe
from hypothesis import given
from hypothesis import strategies as st

from app.templating import escape, templates


class Html:
    def __init__(self, text: str) -> None:
        self.text = text

    def __html__(self) -> str:
        return self.text


class Plain:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


values = st.one_of(
    st.text(),
    st.text().map(markupsafe.Markup),
    st.text().map(Html),
    st.text().map(Plain),
    st.integers(),
    st.floats(allow_nan=False),
    st.none(),
    st.booleans(),
)


@given(values)
def test_escape_gives_what_markupsafe_gives(value: object) -> None:
    ours, theirs = escape(value), markupsafe.escape(value)
    assert type(ours) is markupsafe.Markup
    assert str(ours) == str(theirs)


def test_every_special_character_is_escaped() -> None:
    assert escape("<a href=\"x\" title='y'>&</a>") == "&lt;a href=&#34;x&#34; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
    assert escape(markupsafe.Markup("<b>kept</b>")) == "<b>kept</b>"


def test_templates_call_it_and_still_escape() -> None:
    template = templates.env.get_template("comments/_blocks.html")
    assert template.root_render_func.__globals__["escape"] is escape
    rendered = templates.env.from_string("{{ x }}|{{ y }}|{{ z }}").render(
        x="<script>alert(1)</script>", y=markupsafe.Markup("<em>ok</em>"), z=3)
    assert rendered == "&lt;script&gt;alert(1)&lt;/script&gt;|<em>ok</em>|3"
