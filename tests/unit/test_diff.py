"""The word diff of a policy change: marks insertions and deletions, escapes everything, reads without colour."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup

from app.proposals.diff import has_changes, word_diff


def parts(html: str) -> list[tuple[str, str]]:
    """(tag, text without the hidden label) for every <ins>/<del>."""
    soup = BeautifulSoup(html, "html.parser")
    out = []
    for tag in soup.find_all(["ins", "del"]):
        label = tag.find(class_="visually-hidden")
        assert label is not None and label.text == ("inserted: " if tag.name == "ins" else "deleted: ")
        label.extract()
        out.append((tag.name, tag.text))
    return out


def visible(html: str, keep: str) -> str:
    """The text a sighted reader gets from the new (keep="ins") or old (keep="del") side."""
    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup.find_all(class_="visually-hidden"):
        hidden.extract()
    for tag in soup.find_all("del" if keep == "ins" else "ins"):
        tag.extract()
    return soup.text


def words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


def test_replacement_is_a_deletion_then_an_insertion() -> None:
    html = str(word_diff("Rent is due on the first day.", "Rent is due on the fifth day of each month."))
    assert parts(html) == [("del", "first"), ("ins", "fifth"), ("ins", "of each month")]
    assert html.startswith("Rent is due on the <del>")


def test_pure_insertion_and_deletion() -> None:
    assert parts(str(word_diff("a c", "a b c"))) == [("ins", "b")]
    assert parts(str(word_diff("a b c", "a c"))) == [("del", "b")]
    assert visible(str(word_diff("a b c", "a c")), "del") == "a b c"


def test_whitespace_alone_is_not_a_change() -> None:
    assert parts(str(word_diff("one  two\nthree", "one two three"))) == []
    assert not has_changes("one  two\nthree", "one two three")
    assert has_changes("one two", "one three")


def test_punctuation_is_its_own_token() -> None:
    html = str(word_diff("Hello, world", "Hello world!"))
    assert parts(html) == [("del", ","), ("ins", "!")]
    assert visible(html, "del") == "Hello, world" and visible(html, "ins") == "Hello world!"


def test_everything_is_escaped() -> None:
    html = word_diff("<b>old</b> & <script>", "<i>new</i> & <script>alert(1)</script>")
    assert isinstance(html, Markup)
    soup = BeautifulSoup(str(html), "html.parser")
    assert {t.name for t in soup.find_all(True)} <= {"ins", "del", "span"}
    assert "<script>" not in str(html) and "&lt;script&gt;" in str(html)


def test_empty_sides() -> None:
    assert str(word_diff("", "")) == ""
    assert parts(str(word_diff("", "all new"))) == [("ins", "all new")]
    assert parts(str(word_diff("all gone", ""))) == [("del", "all gone")]


def test_unicode_words() -> None:
    assert parts(str(word_diff("Die Miete ist fällig", "Die Miete wird fällig"))) == [("del", "ist"), ("ins", "wird")]


@given(st.text(max_size=80), st.text(max_size=80))
def test_both_texts_can_be_read_back(old: str, new: str) -> None:
    html = str(word_diff(old, new))
    assert words(visible(html, "ins")) == words(new)
    assert words(visible(html, "del")) == words(old)
