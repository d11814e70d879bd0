"""A word-level diff of two plain texts, as escaped HTML with <ins> and <del>.

Pure: text in, `Markup` out. Every piece of the input is escaped before it is wrapped, so the texts can hold
anything. Changes are readable without colour: each <ins>/<del> starts with a visually hidden "inserted:" or
"deleted:" label for screen readers, and the stylesheet underlines insertions and strikes deletions through.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from difflib import SequenceMatcher

from markupsafe import Markup, escape

# A word (letters, digits, underscore in any script) or a single punctuation mark, each with the whitespace
# that follows it. Whitespace is kept for display but not compared, so re-wrapping a line is not a change.
_TOKEN = re.compile(r"(\w+|[^\w\s])(\s*)")
_LEADING = re.compile(r"^\s*")


def _tokens(text: str) -> tuple[str, list[tuple[str, str]]]:
    lead = _LEADING.match(text)
    start = lead.end() if lead else 0
    return text[:start], [(m.group(1), m.group(2)) for m in _TOKEN.finditer(text, start)]


def _run(tag: str, label: str, tokens: list[tuple[str, str]]) -> Iterator[str]:
    """One <ins> or <del> around a run of words; the run's last whitespace stays outside the tag."""
    inner = "".join(word + space for word, space in tokens[:-1]) + tokens[-1][0]
    yield f'<{tag}><span class="visually-hidden">{label}: </span>{escape(inner)}</{tag}>'
    yield str(escape(tokens[-1][1]))


def word_diff(old: str, new: str) -> Markup:
    """Mark what `new` deletes from and inserts into `old`, word by word."""
    _old_lead, a = _tokens(old or "")
    new_lead, b = _tokens(new or "")
    matcher = SequenceMatcher(None, [w for w, _ in a], [w for w, _ in b], autojunk=False)
    out = [str(escape(new_lead))]
    opcodes = matcher.get_opcodes()
    for n, (op, i1, i2, j1, j2) in enumerate(opcodes):
        if op == "equal":
            out.extend(str(escape(word + space)) for word, space in b[j1:j2 - 1])
            # Words deleted next are shown where they stood in the old text, so the gap before them is the
            # old text's gap ("Hello<del>,</del> world", "old <del>end</del>").
            deleting_next = n + 1 < len(opcodes) and opcodes[n + 1][2] > opcodes[n + 1][1]
            word, space = b[j2 - 1]
            out.append(str(escape(word + (a[i2 - 1][1] if deleting_next else space))))
            continue
        if i2 > i1:
            out.extend(_run("del", "deleted", a[i1:i2]))
            if j2 > j1 and not a[i2 - 1][1]:
                out.append(" ")  # keep "<del>old</del> <ins>new</ins>" apart when the old run ended the text
        if j2 > j1:
            out.extend(_run("ins", "inserted", b[j1:j2]))
    return Markup("".join(out))  # noqa: S704 - every piece above is escaped


def has_changes(old: str, new: str) -> bool:
    """Whether the words differ (whitespace alone does not count)."""
    return [w for w, _ in _tokens(old or "")[1]] != [w for w, _ in _tokens(new or "")[1]]
