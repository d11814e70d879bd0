"""Plurality, approval and score counting, the shared tie rule, and the stored form of every result."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.voting.tally import (
    NONE_OF_THESE,
    ApprovalResult,
    InvalidBallot,
    PluralityResult,
    ScoreResult,
    TallyResult,
    TieBreak,
    count_approval,
    count_plurality,
    count_score,
    result_from_dict,
)

SETTINGS = settings(max_examples=150, database=None, deadline=None)

option_lists = st.lists(st.sampled_from("ABCDEFG"), min_size=1, max_size=6, unique=True)


def lot_order(seed: str, options: Sequence[str]) -> list[str]:
    """The lot, recomputed independently from its published definition."""
    return sorted(options, key=lambda option: hashlib.sha256(f"{seed}:{option}".encode()).hexdigest())


def stored(result: TallyResult) -> dict[str, Any]:
    """What a JSON column would give back."""
    data: dict[str, Any] = json.loads(json.dumps(result.to_dict()))
    return data


# --- the tie rule -------------------------------------------------------------------------------------------


def test_lot_is_sha256_of_seed_and_option() -> None:
    tie_break = TieBreak("proposal-42")
    options = ["alpha", "beta", "gamma", "delta"]
    assert tie_break.lot_key("beta") == hashlib.sha256(b"proposal-42:beta").hexdigest()
    assert list(tie_break.lot_order(options)) == lot_order("proposal-42", options)
    # Different seeds give different orders for at least some of these ids; a fixed order would be a bug.
    orders = {TieBreak(f"seed-{n}").lot_order(options) for n in range(20)}
    assert len(orders) > 1


def test_empty_seed_is_refused() -> None:
    with pytest.raises(ValueError):
        TieBreak("")


# --- plurality ----------------------------------------------------------------------------------------------


def test_plurality_tennessee() -> None:
    ballots = ["Memphis"] * 42 + ["Nashville"] * 26 + ["Chattanooga"] * 15 + ["Knoxville"] * 17
    result = count_plurality(
        ballots,
        ["Memphis", "Nashville", "Chattanooga", "Knoxville"],
        allow_none_of_these=False,
        tie_seed="tn",
    )
    assert result.winners == ("Memphis",)
    assert result.count("Memphis") == 42
    assert (result.tied, result.tie_break_note) == ((), None)


def test_plurality_blank_and_none_of_these() -> None:
    ballots = ["A", "A", "B", None, NONE_OF_THESE, NONE_OF_THESE, NONE_OF_THESE]
    result = count_plurality(ballots, ["A", "B"], allow_none_of_these=True, tie_seed="s")
    assert (result.ballots_cast, result.valid, result.blank, result.none_of_these) == (7, 6, 1, 3)
    assert result.winners == ("A",)
    assert result.none_of_these_leads


def test_plurality_tie_decided_by_recomputable_lot() -> None:
    seed = "vote-2024-17"
    result = count_plurality(
        ["A"] * 40 + ["B"] * 40 + ["C"] * 3, ["A", "B", "C"], allow_none_of_these=False, tie_seed=seed
    )
    drawn = lot_order(seed, ["A", "B"])[0]
    assert result.tied == ("A", "B")
    assert result.winners == (drawn,)
    assert result.tie_break_note == (
        f"A and B tied with 40 votes; decided by lot (sha256 of the proposal seed), {drawn} drawn."
    )


def test_plurality_without_votes_has_no_winner() -> None:
    result = count_plurality([None, None], ["A", "B"], allow_none_of_these=False, tie_seed="s")
    assert (result.winners, result.tied, result.blank) == ((), (), 2)


@pytest.mark.parametrize("bad", ["X", NONE_OF_THESE, ["A"], ""])
def test_plurality_refuses_choices_not_offered(bad: object) -> None:
    with pytest.raises(InvalidBallot):
        count_plurality(["A", bad], ["A", "B"], allow_none_of_these=False, tie_seed="s")  # type: ignore[list-item]


def test_none_of_these_cannot_be_an_option() -> None:
    with pytest.raises(ValueError):
        count_plurality([], ["A", NONE_OF_THESE], allow_none_of_these=True, tie_seed="s")


@st.composite
def plurality_votes(draw: st.DrawFn) -> tuple[list[str], bool, list[str | None]]:
    options = draw(option_lists)
    allow = draw(st.booleans())
    choices: list[str | None] = [*options, None] + ([NONE_OF_THESE] if allow else [])
    return options, allow, draw(st.lists(st.sampled_from(choices), max_size=40))


@SETTINGS
@given(plurality_votes(), st.randoms(use_true_random=False))
def test_plurality_properties(vote: tuple[list[str], bool, list[str | None]], order: random.Random) -> None:
    options, allow, ballots = vote
    result = count_plurality(ballots, options, allow_none_of_these=allow, tie_seed="p")
    assert (
        sum(count for _, count in result.counts) + result.none_of_these + result.blank == result.ballots_cast
    )
    assert result.ballots_cast == len(ballots)
    top = max(count for _, count in result.counts)
    if top:
        assert result.count(result.winners[0]) == top
        leaders = tuple(option for option in options if result.count(option) == top)
        assert result.tied == (leaders if len(leaders) > 1 else ())
        assert (result.tie_break_note is not None) == (len(leaders) > 1)
    else:
        assert result.winners == ()
    shuffled = list(ballots)
    order.shuffle(shuffled)
    assert count_plurality(shuffled, options, allow_none_of_these=allow, tie_seed="p") == result
    assert PluralityResult.from_dict(stored(result)) == result
    assert result_from_dict(stored(result)) == result


# --- approval -----------------------------------------------------------------------------------------------


def test_approval_counts_and_shares() -> None:
    ballots = [{"A", "B"}, ["A"], ("A", "C"), [], frozenset({"B"})]
    result = count_approval(ballots, ["A", "B", "C"], max_picks=2, tie_seed="s")
    assert (result.ballots_cast, result.valid, result.blank) == (5, 4, 1)
    assert dict(result.counts) == {"A": 3, "B": 2, "C": 1}
    assert result.share("A") == Fraction(3, 4)
    assert result.winners == ("A",)
    row = stored(result)["counts"][0]
    assert row == {"option": "A", "approvals": 3, "share": 0.75, "share_exact": "3/4"}


def test_approval_tie_decided_by_lot() -> None:
    seed = "approve-9"
    result = count_approval([["A", "B"], ["B", "C"], ["A"]], ["A", "B", "C"], max_picks=None, tie_seed=seed)
    drawn = lot_order(seed, ["A", "B"])[0]
    assert (result.tied, result.winners) == (("A", "B"), (drawn,))
    assert result.tie_break_note == (
        f"A and B tied with 2 approvals; decided by lot (sha256 of the proposal seed), {drawn} drawn."
    )


@pytest.mark.parametrize(
    "bad",
    [
        ["A", "X"],  # unknown option
        ["A", "A"],  # named twice
        ["A", "B", "C"],  # more than max_picks
        "AB",  # a string is not a set of picks
        [["A"]],  # not an option id
        7,  # not a collection
    ],
)
def test_approval_refuses_bad_ballots(bad: object) -> None:
    with pytest.raises(InvalidBallot):
        count_approval([["A"], bad], ["A", "B", "C"], max_picks=2, tie_seed="s")  # type: ignore[list-item]


def test_approval_max_picks_must_be_positive() -> None:
    with pytest.raises(ValueError):
        count_approval([], ["A"], max_picks=0, tie_seed="s")


@st.composite
def approval_votes(draw: st.DrawFn) -> tuple[list[str], int | None, list[list[str]]]:
    options = draw(option_lists)
    max_picks = draw(st.none() | st.integers(1, len(options)))
    limit = len(options) if max_picks is None else max_picks
    ballot = st.lists(st.sampled_from(options), max_size=limit, unique=True)
    return options, max_picks, draw(st.lists(ballot, max_size=30))


@SETTINGS
@given(approval_votes(), st.randoms(use_true_random=False))
def test_approval_properties(
    vote: tuple[list[str], int | None, list[list[str]]], order: random.Random
) -> None:
    options, max_picks, ballots = vote
    result = count_approval(ballots, options, max_picks=max_picks, tie_seed="a")
    assert result.valid + result.blank == result.ballots_cast == len(ballots)
    assert sum(count for _, count in result.counts) == sum(len(ballot) for ballot in ballots)
    for option in options:
        assert 0 <= result.share(option) <= 1
    top = max(count for _, count in result.counts)
    if top:
        assert result.count(result.winners[0]) == top
        assert result.winners[0] in result.tied or not result.tied
    else:
        assert result.winners == ()
    shuffled = list(ballots)
    order.shuffle(shuffled)
    assert count_approval(shuffled, options, max_picks=max_picks, tie_seed="a") == result
    assert ApprovalResult.from_dict(stored(result)) == result
    assert result_from_dict(stored(result)) == result


@SETTINGS
@given(option_lists, st.data())
def test_approval_over_max_picks_always_raises(options: list[str], data: st.DataObject) -> None:
    if len(options) < 2:
        options = [*options, "Z"]
    max_picks = data.draw(st.integers(1, len(options) - 1))
    too_many = data.draw(st.lists(st.sampled_from(options), min_size=max_picks + 1, unique=True))
    with pytest.raises(InvalidBallot):
        count_approval([[options[0]], too_many], options, max_picks=max_picks, tie_seed="a")


# --- score --------------------------------------------------------------------------------------------------


def test_score_averages_distribution_and_unscored() -> None:
    ballots = [{"A": 5, "B": 3}, {"A": 4, "B": 3, "C": 0}, {"A": 2}, {}]
    result = count_score(ballots, ["A", "B", "C"], tie_seed="s")
    assert (result.ballots_cast, result.valid, result.blank) == (4, 3, 1)
    a, b, c = result.lines
    assert a.distribution == (0, 0, 1, 0, 1, 1) and a.unscored == 0 and a.average == Fraction(11, 3)
    assert b.average == 3 and b.unscored == 1
    assert c.average == 0 and c.scored == 1 and c.unscored == 2
    assert result.winners == ("A",)
    line = stored(result)["lines"][0]
    assert line["average"] == 3.6667 and line["average_exact"] == "11/3"


def test_score_option_nobody_scored_cannot_win() -> None:
    result = count_score([{"A": 0}], ["A", "B"], tie_seed="s")
    assert result.winners == ("A",)
    assert result.average("B") is None
    assert stored(result)["lines"][1]["average"] is None


def test_score_tie_decided_by_lot() -> None:
    seed = "score-3"
    result = count_score([{"A": 5, "B": 4}, {"A": 4, "B": 5}], ["A", "B"], tie_seed=seed)
    drawn = lot_order(seed, ["A", "B"])[0]
    assert (result.tied, result.winners) == (("A", "B"), (drawn,))
    assert result.tie_break_note == (
        f"A and B tied with an average score of 9/2 (4.50); decided by lot (sha256 of the proposal seed), "
        f"{drawn} drawn."
    )


@pytest.mark.parametrize("bad", [{"X": 1}, {"A": 6}, {"A": -1}, {"A": True}, {"A": 2.5}, ["A"], {"A": "5"}])
def test_score_refuses_bad_ballots(bad: object) -> None:
    with pytest.raises(InvalidBallot):
        count_score([{"A": 1}, bad], ["A", "B"], tie_seed="s")  # type: ignore[list-item]


@st.composite
def score_votes(draw: st.DrawFn) -> tuple[list[str], int, list[dict[str, int]]]:
    options = draw(option_lists)
    max_score = draw(st.integers(1, 10))
    ballot = st.dictionaries(st.sampled_from(options), st.integers(0, max_score))
    return options, max_score, draw(st.lists(ballot, max_size=30))


@SETTINGS
@given(score_votes(), st.randoms(use_true_random=False))
def test_score_properties(vote: tuple[list[str], int, list[dict[str, int]]], order: random.Random) -> None:
    options, max_score, ballots = vote
    result = count_score(ballots, options, max_score=max_score, tie_seed="sc")
    assert result.valid + result.blank == result.ballots_cast == len(ballots)
    averages = {}
    for line in result.lines:
        assert line.scored + line.unscored == result.valid
        assert len(line.distribution) == max_score + 1
        if line.average is not None:
            assert 0 <= line.average <= max_score
            averages[line.option] = line.average
    if averages:
        assert result.average(result.winners[0]) == max(averages.values())
    else:
        assert result.winners == ()
    shuffled = list(ballots)
    order.shuffle(shuffled)
    assert count_score(shuffled, options, max_score=max_score, tie_seed="sc") == result
    assert ScoreResult.from_dict(stored(result)) == result
    assert result_from_dict(stored(result)) == result


# --- stored form --------------------------------------------------------------------------------------------


def test_stored_form_refuses_another_method_or_version() -> None:
    data = stored(count_plurality(["A"], ["A"], allow_none_of_these=False, tie_seed="s"))
    with pytest.raises(ValueError):
        ApprovalResult.from_dict(data)
    with pytest.raises(ValueError):
        PluralityResult.from_dict({**data, "version": 99})
    with pytest.raises(ValueError):
        result_from_dict({**data, "method": "borda"})


def test_stored_form_refuses_counts_that_do_not_add_up() -> None:
    data = stored(count_plurality(["A", None], ["A"], allow_none_of_these=False, tie_seed="s"))
    with pytest.raises(ValueError):
        PluralityResult.from_dict({**data, "blank": 5})


# --- worked examples with known outcomes ----------------------------------------------------------------------

# The "Tennessee capital" example (Wikipedia and electowiki, "Effects of different voting systems under similar
# circumstances"): 100 voters choose a capital and each wants it near home. 42 live in Memphis (ranking
# Memphis > Nashville > Chattanooga > Knoxville), 26 in Nashville (N > C > K > M), 15 in Chattanooga
# (C > K > N > M), 17 in Knoxville (K > C > N > M).
TENNESSEE = ["Memphis", "Nashville", "Chattanooga", "Knoxville"]


def test_approval_tennessee_each_voter_approving_their_top_two() -> None:
    """Approval voting on the Tennessee example, each voter approving their two nearest cities: Memphis 42,
    Nashville 42 + 26 = 68, Chattanooga 26 + 15 + 17 = 58, Knoxville 15 + 17 = 32. Nashville wins, where
    plurality elects Memphis with 42 (test_plurality_tennessee)."""
    ballots = ([("Memphis", "Nashville")] * 42 + [("Nashville", "Chattanooga")] * 26
               + [("Chattanooga", "Knoxville")] * 15 + [("Knoxville", "Chattanooga")] * 17)
    result = count_approval(ballots, TENNESSEE, max_picks=2, tie_seed="tn")
    assert dict(result.counts) == {"Memphis": 42, "Nashville": 68, "Chattanooga": 58, "Knoxville": 32}
    assert result.winners == ("Nashville",) and result.tied == () and result.tie_break_note is None
    assert result.share("Nashville") == Fraction(68, 100)


def test_score_tennessee_on_a_zero_to_ten_scale() -> None:
    """Score voting on the Tennessee example as Wikipedia's "Score voting" article scores it (0 to 10 by
    distance): Memphis voters M10 N4 C2 K0, Nashville voters M0 N10 C4 K2, Chattanooga voters M0 N6 C10 K6,
    Knoxville voters M0 N5 C7 K10. Totals: Nashville 603, Chattanooga 457, Memphis 420, Knoxville 312;
    every voter scores every city, so the averages are those totals over 100 and Nashville wins."""
    groups = [(42, (10, 4, 2, 0)), (26, (0, 10, 4, 2)), (15, (0, 6, 10, 6)), (17, (0, 5, 7, 10))]
    ballots = [dict(zip(TENNESSEE, scores, strict=True)) for n, scores in groups for _ in range(n)]
    result = count_score(ballots, TENNESSEE, max_score=10, tie_seed="tn")
    averages = {line.option: line.average for line in result.lines}
    assert averages == {"Memphis": Fraction(420, 100), "Nashville": Fraction(603, 100),
                        "Chattanooga": Fraction(457, 100), "Knoxville": Fraction(312, 100)}
    assert result.winners == ("Nashville",) and result.tied == ()
    memphis = result.lines[0]
    assert memphis.distribution[10] == 42 and memphis.distribution[0] == 58 and memphis.unscored == 0
