"""Small-number suppression of the breakdown by group: no hidden cell can be worked out from what is shown."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.voting.breakdown import SMALL, hidden_cells, suppress

SETTINGS = settings(max_examples=300, database=None, deadline=None)


def compositions(total: int, parts: int) -> Iterator[tuple[int, ...]]:
    """Every way `parts` cells of 0 or more ballots add up to `total`."""
    for cuts in itertools.combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *cuts, total + parts - 1)
        yield tuple(edges[i + 1] - edges[i] - 1 for i in range(parts))


rows = st.integers(2, 4).flatmap(lambda k: st.lists(st.integers(0, 12), min_size=k, max_size=k))


@SETTINGS
@given(rows)
@example([5, 1, 1])        # two hidden cells that add up to 2: both must be 1
@example([9, 1])           # one small cell: the total gives it back unless another is hidden
@example([5, 5, 3])        # the complement is bounded by the smallest visible cell
@example([4, 4, 4, 6])     # three hidden cells of 4 adding up to 12
@example([0, 7, 2, 0])
def test_no_hidden_cell_can_be_worked_out(counts: list[int]) -> None:
    """An attacker who knows the rule, the visible cells and the group's total considers every count vector
    that the rule shows the same way; each hidden cell must take two values or more across them."""
    shown = suppress(counts)
    total = sum(counts)
    if total < SMALL:
        assert shown is None
    if shown is None:
        return
    assert all(n is None or n == 0 or n >= SMALL for n in shown)  # no small count is ever shown
    assert [n for n in shown if n is not None] == [n for n, s in zip(counts, shown, strict=True) if s is not None]
    same = [c for c in compositions(total, len(counts)) if suppress(list(c)) == shown]
    assert tuple(counts) in same
    for i, n in enumerate(shown):
        if n is None:
            assert len({c[i] for c in same}) >= 2, (counts, shown, i)


@SETTINGS
@given(rows)
def test_never_exactly_one_hidden_cell(counts: list[int]) -> None:
    shown = suppress(counts)
    if shown is not None:
        assert sum(n is None for n in shown) != 1


def test_the_rule_on_examples() -> None:
    assert suppress([12, 0, 0]) == [12, 0, 0]            # nothing small: all shown
    assert suppress([3, 1]) is None                      # fewer than 5 ballots: the group is hidden
    assert suppress([9, 3, 6]) == [9, None, None]        # one small cell, and the smallest other one
    assert suppress([20, 2, 3]) == [20, None, None]      # two small cells hide each other
    assert suppress([10, 1, 1]) is None                  # they would add up to 2: both 1
    assert suppress([4, 4, 4, 6]) is None                # three hidden cells adding up to 12: all 4
    assert suppress([5, 5, 3]) == [None, 5, None]        # 5 and 3, or 4 and 4: not known which
    assert hidden_cells([9, 3, 6, 6]) == {1, 2}          # among equal cells, the first in option order


def test_cells_that_do_not_add_up_are_only_hidden_when_small() -> None:
    """Approval and score rows: a ballot counts in several cells, so the group total says nothing of a cell."""
    assert suppress([6, 1, 1], partition=False) == [6, None, None]
    assert suppress([7, 3, 0], partition=False) == [None, None, 0]
