"""@mentions: which members a comment names, by one rule written down in docs/USER_GUIDE.md.

A mention is `@` followed by a member's name written without spaces, or with underscores for the spaces:
"Mia van Dijk" is `@Mia_van_Dijk` or `@MiavanDijk`. Case does not matter. The `@` must not follow a letter,
digit or underscore (so `mia@example.org` mentions nobody), and text in code spans and code blocks is not
read. A mention counts only when exactly one member who can see the proposal has that name; an unknown or
ambiguous mention stays plain text and notifies nobody.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_MENTIONS = 20  # a comment naming more than this notifies the first 20 (a list of names is not a request)

_CODE = re.compile(r"```.*?(```|\Z)|~~~.*?(~~~|\Z)|`[^`\n]*`", re.DOTALL)
_MENTION = re.compile(r"(?<![\w@])@(\w[\w.'’-]*)")
_TRAILING = ".'’-"


def key(name: str) -> str:
    """A name as mentions compare it: no spaces or underscores, case folded."""
    return re.sub(r"[\s_]+", "", name).casefold()


def handles(text: str) -> list[str]:
    """The distinct mention keys in a comment's Markdown, in order of first appearance."""
    seen: dict[str, None] = {}
    for m in _MENTION.finditer(_CODE.sub(" ", text)):
        k = key(m.group(1).rstrip(_TRAILING))
        if k and k not in seen:
            seen[k] = None
    return list(seen)[:MAX_MENTIONS]


def resolve(wanted: Iterable[str], members: Iterable[tuple[int, str]]) -> dict[str, int]:
    """Map each wanted key to the one member whose name has it; keys with none or several are left out."""
    wanted = set(wanted)
    found: dict[str, list[int]] = {}
    for member_id, name in members:
        k = key(name)
        if k in wanted:
            found.setdefault(k, []).append(member_id)
    return {k: ids[0] for k, ids in found.items() if len(ids) == 1}
