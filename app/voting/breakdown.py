"""The result by group, worked out once at close, and the small-number suppression that keeps it secret.

For a secret ballot a small count can reveal how a few members voted ("Finance: No 1" names the treasurer when
the finance group is small or everyone else is known). So for secret ballots:

- a group with fewer than SMALL ballots is hidden whole (no count at all);
- every group x option cell with 1 to SMALL-1 ballots is hidden (shown as "fewer than 5");
- when exactly one cell of a group is hidden, the smallest other nonzero cell is hidden too (complementary
  suppression), since otherwise the group total minus the visible cells gives it back;
- and when the hidden cells could still be worked out by someone who knows this rule, the visible cells and
  the group total (e.g. two hidden cells whose sum is 2 must both be 1), the group's cells are hidden whole.

"Worked out" is judged as an attacker who knows the rule would: every count vector that the rule turns into
what is shown is possible, and each hidden cell must take at least two values across them.
`tests/unit/test_breakdown.py` checks that against a brute-force enumeration.

Zero cells are shown: a 0 is not a count of anyone's vote. (A group whose visible cells show that all its
members voted one way reveals their votes; docs/SECRET_BALLOTS.md says so.)

Cells add up to the group's ballots for yes/no, single choice and ranked first preferences; for approval and
score (the options given a ballot's top score) a ballot counts in several cells, so no sum links them and only
the cell rules apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.proposals.models import Method, Option, Proposal

SMALL = 5  # secret ballots: fewer than this many ballots in a cell or group are not shown

YES_NO = (("yes", "Yes"), ("no", "No"), ("abstain", "Abstain"))
NONE_KEY, NONE_LABEL = "__none__", "None of these"
PARTITION_METHODS = (Method.YES_NO, Method.SINGLE, Method.RANKED)


def _primary(counts: Sequence[int]) -> list[int]:
    return [i for i, n in enumerate(counts) if 1 <= n < SMALL]


def hidden_cells(counts: Sequence[int]) -> set[int]:
    """The cells the base rule hides: every cell with 1..SMALL-1 ballots and, if that is one cell only, the
    smallest other nonzero cell (the first in option order among equals)."""
    primary = _primary(counts)
    if len(primary) != 1:
        return set(primary)
    others = [i for i, n in enumerate(counts) if n > 0 and i not in primary]
    if not others:
        return set(primary)
    return {primary[0], min(others, key=lambda i: (counts[i], i))}


def _ambiguous(shown: Sequence[int | None], hidden: set[int], hidden_sum: int) -> bool:
    """Whether every hidden cell takes at least two values among the count vectors that the base rule turns
    into `shown` (with cells adding up to the total). Those vectors are of two kinds:

    A. all hidden cells in 1..SMALL-1 (two or more of them): any split of `hidden_sum` in that range;
    B. two hidden cells, one in 1..SMALL-1 and the other the complement: at least SMALL, and before every
       visible nonzero cell in (count, position) order, as the rule picks it.
    """
    k = len(hidden)
    values: dict[int, set[int]] = {i: set() for i in hidden}
    top = SMALL - 1
    if k >= 2 and k <= hidden_sum <= top * k:
        lo, hi = max(1, hidden_sum - top * (k - 1)), min(top, hidden_sum - (k - 1))
        for i in hidden:
            values[i].update(range(lo, hi + 1))
    if k == 2:
        a, b = sorted(hidden)
        visible = [(n, j) for j, n in enumerate(shown) if n]
        for small, big in ((a, b), (b, a)):
            for x in range(1, SMALL):
                y = hidden_sum - x
                if y >= SMALL and all((y, big) < w for w in visible):
                    values[small].add(x)
                    values[big].add(y)
    return all(len(v) >= 2 for v in values.values())


def suppress(counts: Sequence[int], *, partition: bool = True) -> list[int | None] | None:
    """What may be shown of one group's cells on a secret ballot: the counts with hidden ones as None, or None
    when the whole group is hidden. `partition`: the cells add up to the group's ballots."""
    total = sum(counts)
    if partition and total < SMALL:
        return None
    hidden = hidden_cells(counts)
    shown = [None if i in hidden else n for i, n in enumerate(counts)]
    if partition and hidden and not _ambiguous(shown, hidden, sum(counts[i] for i in hidden)):
        return None
    return shown


# --- the breakdown stored with the result --------------------------------------------------------------------

def cell_keys(p: Proposal, options: Sequence[Option]) -> list[tuple[str, str]]:
    """(choice key, label) of every cell, in the order the results page shows them."""
    if p.method == Method.YES_NO:
        return list(YES_NO)
    keys = [(str(o.id), o.label) for o in options]
    if p.method == Method.SINGLE and p.allow_none:
        keys.append((NONE_KEY, NONE_LABEL))
    return keys


def _cells_of(method: str, choice: Any) -> list[str]:
    """The cells a ballot counts in: its answer, each approval, its first preference, or the options it gave
    its top score."""
    if method in (Method.YES_NO, Method.SINGLE):
        return [str(choice)]
    if method == Method.MULTIPLE:
        return [str(c) for c in choice]
    if method == Method.RANKED:
        return [str(choice[0])] if choice else []
    scores = dict(choice)
    top = max(scores.values(), default=None)
    return [k for k, v in scores.items() if v == top]


def breakdown(p: Proposal, options: Sequence[Option],
              ballots: Iterable[tuple[object, Iterable[int]]]) -> list[dict[str, Any]]:
    """Per group (of the voters, as at close): ballots and the count per cell, suppressed for secret ballots.

    `ballots` pairs each ballot's choice with its voter's group ids; they are used here and not kept."""
    keys = cell_keys(p, options)
    index = {k: i for i, (k, _) in enumerate(keys)}
    per_group: dict[int, list[int]] = {}
    sizes: dict[int, int] = {}
    for choice, groups in ballots:
        cells = [index[k] for k in _cells_of(p.method, choice) if k in index]
        for gid in groups:
            row = per_group.setdefault(gid, [0] * len(keys))
            sizes[gid] = sizes.get(gid, 0) + 1
            for i in cells:
                row[i] += 1
    return [_row(gid, sizes[gid], counts, [label for _, label in keys], secret=p.secret,
                 partition=p.method in PARTITION_METHODS)
            for gid, counts in sorted(per_group.items())]


def _row(group_id: int, ballots: int, counts: list[int], labels: list[str], *, secret: bool,
         partition: bool) -> dict[str, Any]:
    if not secret:
        shown: list[int | None] | None = list(counts)
    elif ballots < SMALL:
        shown = None
    else:
        shown = suppress(counts, partition=partition)
    if shown is None:
        return {"group_id": group_id, "ballots": None, "hidden": True,
                "reason": "few" if ballots < SMALL else "derivable", "cells": None}
    return {"group_id": group_id, "ballots": ballots, "hidden": False,
            "cells": [{"label": label, "count": n} for label, n in zip(labels, shown, strict=True)]}


def for_display(result: dict[str, Any], secret: bool) -> list[dict[str, Any]]:
    """The stored breakdown as pages and downloads show it. Results stored before cells were suppressed
    one by one (a `counts` mapping per group) are suppressed now, with the result's option labels."""
    out = []
    labels = [r["label"] for r in result.get("rows", [])]
    partition = result.get("method") in PARTITION_METHODS
    for g in result.get("breakdown") or []:
        if "cells" in g or g.get("hidden"):
            out.append({"reason": "few", "cells": None} | g if g.get("hidden") else g)
            continue
        counts = [int((g.get("counts") or {}).get(label, 0)) for label in labels]
        out.append(_row(int(g["group_id"]), int(g["ballots"]), counts, labels, secret=secret,
                        partition=partition))
    return out
