"""Instant-runoff counting: published examples, tie-breaks, and properties checked against a naive count."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.voting.tally import InvalidBallot, IrvResult, IrvRound, TieBreak, count_irv, result_from_dict

SETTINGS = settings(max_examples=150, database=None, deadline=None)

TENNESSEE = ("Memphis", "Nashville", "Chattanooga", "Knoxville")


def tennessee_ballots() -> list[tuple[str, ...]]:
    """The "Tennessee capital" example used on Wikipedia: voters rank cities by distance from home."""
    groups: list[tuple[tuple[str, ...], int]] = [
        (("Memphis", "Nashville", "Chattanooga", "Knoxville"), 42),
        (("Nashville", "Chattanooga", "Knoxville", "Memphis"), 26),
        (("Chattanooga", "Knoxville", "Nashville", "Memphis"), 15),
        (("Knoxville", "Chattanooga", "Nashville", "Memphis"), 17),
    ]
    return [ranking for ranking, voters in groups for _ in range(voters)]


def lot_order(seed: str, options: Sequence[str]) -> list[str]:
    """The lot, recomputed independently from its published definition."""
    return sorted(options, key=lambda option: hashlib.sha256(f"{seed}:{option}".encode()).hexdigest())


# --- worked examples ----------------------------------------------------------------------------------------


def test_tennessee_capital() -> None:
    # Chattanooga (15) goes first and its voters move to Knoxville (32); then Nashville (26) goes and its
    # voters, whose next choice Chattanooga is out, move to Knoxville, which wins 58 to 42.
    result = count_irv(tennessee_ballots(), TENNESSEE, tie_seed="tennessee")
    first, second, third = result.rounds
    assert dict(first.tallies) == {"Memphis": 42, "Nashville": 26, "Chattanooga": 15, "Knoxville": 17}
    assert first.eliminated == "Chattanooga"
    assert first.transfers == (("Knoxville", 15),)
    assert dict(second.tallies) == {"Memphis": 42, "Nashville": 26, "Knoxville": 32}
    assert second.eliminated == "Nashville"
    assert second.transfers == (("Knoxville", 26),)
    assert dict(third.tallies) == {"Memphis": 42, "Knoxville": 58}
    assert third.elected == "Knoxville"
    assert result.winners == ("Knoxville",)
    assert result.eliminated == ("Chattanooga", "Nashville")
    assert result.tie_break_note is None


def test_partial_rankings_exhaust_and_blanks_are_counted_apart() -> None:
    ballots = [["A"]] * 4 + [["B", "C"]] * 3 + [["C"]] * 2 + [[]] * 5
    result = count_irv(ballots, ["A", "B", "C"], tie_seed="p")
    assert (result.ballots_cast, result.valid, result.blank) == (14, 9, 5)
    first, second = result.rounds
    assert first.eliminated == "C"
    assert first.transferred_exhausted == 2
    # Round 2: A 4, B 3, two exhausted; 4 is more than half of the 7 ballots still in the count.
    assert (dict(second.tallies), second.exhausted, second.elected) == ({"A": 4, "B": 3}, 2, "A")


def test_last_place_tie_broken_backwards() -> None:
    # Round 1: A 10, B 6, C 5, D 2.  D goes; one D ballot moves to C, one exhausts.
    # Round 2: A 10, B 6, C 6: B and C tie for last; C had fewer in round 1, so C goes, whatever the seed.
    ballots = [("A",)] * 10 + [("B",)] * 6 + [("C", "B")] * 5 + [("D", "C", "B")] + [("D",)]
    for seed in ("one", "two", "three", "four"):
        result = count_irv(ballots, ["A", "B", "C", "D"], tie_seed=seed)
        second = result.rounds[1]
        assert dict(second.tallies) == {"A": 10, "B": 6, "C": 6}
        assert second.eliminated == "C"
        assert second.tie_break_note is not None
        assert "backwards tie-break" in second.tie_break_note
        assert "round 1 (B 6, C 5) left C" in second.tie_break_note
        # C's six ballots go to B: B 12 of the 22 still in the count.
        assert result.rounds[2].tallies == (("A", 10), ("B", 12))
        assert result.winners == ("B",)
        assert result.tie_break_note == second.tie_break_note


def test_last_place_tie_with_no_history_decided_by_recomputable_lot() -> None:
    seed = "proposal-7Q2X"
    result = count_irv([("A",), ("B",), ("C", "A")], ["A", "B", "C"], tie_seed=seed)
    first = result.rounds[0]
    eliminated = lot_order(seed, ["A", "B", "C"])[-1]
    assert first.eliminated == eliminated
    assert first.tie_break_note is not None
    assert "no earlier round to compare" in first.tie_break_note
    assert "sha256 of the proposal seed" in first.tie_break_note
    assert f"{eliminated} eliminated (last in lot order)" in first.tie_break_note


def test_backwards_tie_break_narrows_then_lot_decides() -> None:
    # Round 1: A 4, B 3, C 3, D 2, E 1.  E goes to D (D 3).
    # Round 2: A 4, B 3, C 3, D 3: three tie for last; round 1 had B 3, C 3, D 2, so D goes.
    # Round 3: D's ballots exhaust.  A 4 of 10 is no majority; B and C tie, equal in every earlier round,
    # so the lot decides.  Round 4: A 4 against 3, with 6 exhausted: A wins.
    ballots = [("A",)] * 4 + [("B",)] * 3 + [("C",)] * 3 + [("D",)] * 2 + [("E", "D")]
    seed = "narrow"
    result = count_irv(ballots, ["A", "B", "C", "D", "E"], tie_seed=seed)
    assert result.eliminated[:2] == ("E", "D")
    note = result.rounds[1].tie_break_note
    assert note is not None and "round 1 (B 3, C 3, D 2) left D; D eliminated." in note
    third = result.rounds[2]
    assert third.eliminated == lot_order(seed, ["B", "C"])[-1]
    assert third.tie_break_note is not None and "equal votes in every earlier round" in third.tie_break_note
    assert result.winners == ("A",)
    assert result.tie_break_note == f"{note} {third.tie_break_note}"


def test_single_option_wins() -> None:
    result = count_irv([("A",), ()], ["A"], tie_seed="s")
    assert result.winners == ("A",)
    assert result.rounds == (IrvRound(1, (("A", 1),), 0, elected="A"),)


def test_no_valid_ballot_means_no_rounds_and_no_winner() -> None:
    result = count_irv([(), []], ["A", "B"], tie_seed="s")
    assert (result.ballots_cast, result.blank, result.rounds, result.winners) == (2, 2, (), ())


@pytest.mark.parametrize(
    "bad",
    [
        ("A", "X"),  # unknown option
        ("A", "B", "A"),  # ranked twice
        "AB",  # a string is not a ranking
        (["A"],),  # not an option id
        5,  # not a sequence at all
    ],
)
def test_invalid_rankings_are_refused(bad: object) -> None:
    with pytest.raises(InvalidBallot):
        count_irv([("A",), bad], ["A", "B"], tie_seed="s")  # type: ignore[list-item]


def test_options_and_seed_are_checked() -> None:
    with pytest.raises(ValueError):
        count_irv([], ["A", "A"], tie_seed="s")
    with pytest.raises(ValueError):
        count_irv([], [], tie_seed="s")
    with pytest.raises(ValueError):
        count_irv([], ["A"], tie_seed="")


# --- properties ---------------------------------------------------------------------------------------------

option_lists = st.lists(st.sampled_from("ABCDEFG"), min_size=1, max_size=6, unique=True)


@st.composite
def elections(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, ...]]]:
    options = draw(option_lists)
    ranking = st.permutations(options).flatmap(
        lambda order: st.integers(0, len(order)).map(lambda length: tuple(order[:length]))
    )
    return options, draw(st.lists(ranking, max_size=40))


def naive_irv(ballots: Sequence[tuple[str, ...]], options: Sequence[str], seed: str) -> list[IrvRound]:
    """A deliberately plain recount, ballot by ballot, sharing only the documented tie rule."""
    tie_break = TieBreak(seed)
    valid = [ballot for ballot in ballots if ballot]
    continuing = list(options)
    rounds: list[IrvRound] = []
    history: list[dict[str, int]] = []
    while valid:
        tops = [next((choice for choice in ballot if choice in continuing), None) for ballot in valid]
        counted = Counter(tops)
        tallies = {choice: counted[choice] for choice in continuing}
        exhausted = counted[None]
        leader = max(tallies, key=tallies.__getitem__)
        number = len(rounds) + 1
        if 2 * tallies[leader] > len(valid) - exhausted or len(continuing) == 1:
            rounds.append(IrvRound(number, tuple(tallies.items()), exhausted, elected=leader))
            break
        fewest = min(tallies.values())
        tied = [choice for choice in continuing if tallies[choice] == fewest]
        loser, note = (
            (tied[0], None)
            if len(tied) == 1
            else tie_break.decide_elimination(tied, round_number=number, votes=fewest, earlier_rounds=history)
        )
        rounds.append(
            IrvRound(number, tuple(tallies.items()), exhausted, eliminated=loser, tie_break_note=note)
        )
        history.append(tallies)
        continuing.remove(loser)
    return rounds


@SETTINGS
@given(elections())
def test_matches_a_naive_recount(election: tuple[list[str], list[tuple[str, ...]]]) -> None:
    options, ballots = election
    result = count_irv(ballots, options, tie_seed="naive")
    expected = naive_irv(ballots, options, "naive")
    got = [
        (r.number, r.tallies, r.exhausted, r.elected, r.eliminated, r.tie_break_note) for r in result.rounds
    ]
    assert got == [
        (r.number, r.tallies, r.exhausted, r.elected, r.eliminated, r.tie_break_note) for r in expected
    ]


@SETTINGS
@given(elections())
def test_rounds_add_up_and_transfers_are_consistent(
    election: tuple[list[str], list[tuple[str, ...]]],
) -> None:
    options, ballots = election
    result = count_irv(ballots, options, tie_seed="sums")
    assert result.valid + result.blank == result.ballots_cast == len(ballots)
    assert len(result.rounds) <= len(options)
    for this, following in zip(result.rounds, result.rounds[1:], strict=False):
        assert this.elected is None and this.eliminated is not None
        moved = sum(count for _, count in this.transfers) + this.transferred_exhausted
        assert moved == this.votes(this.eliminated)
        expected = {option: votes for option, votes in this.tallies if option != this.eliminated}
        for option, count in this.transfers:
            expected[option] += count
        assert dict(following.tallies) == expected
        assert following.exhausted == this.exhausted + this.transferred_exhausted
    for round_ in result.rounds:
        assert round_.continuing + round_.exhausted == result.valid
    if result.valid:
        final = result.rounds[-1]
        assert final.elected is not None and result.winners == (final.elected,)
        assert final.elected not in result.eliminated
        assert 2 * final.votes(final.elected) > final.continuing or len(final.tallies) == 1
    else:
        assert result.winners == ()


@SETTINGS
@given(elections())
def test_majority_of_first_preferences_wins_in_round_one(
    election: tuple[list[str], list[tuple[str, ...]]],
) -> None:
    options, ballots = election
    result = count_irv(ballots, options, tie_seed="first")
    firsts = Counter(ballot[0] for ballot in ballots if ballot)
    majority = [option for option, count in firsts.items() if 2 * count > result.valid]
    if majority:
        assert len(result.rounds) == 1
        assert result.winners == (majority[0],)


@SETTINGS
@given(st.lists(st.sampled_from([("A",), ()]), min_size=1, max_size=20))
def test_a_single_option_wins_when_anyone_voted(ballots: list[tuple[str, ...]]) -> None:
    result = count_irv(ballots, ["A"], tie_seed="solo")
    assert result.winners == (("A",) if any(ballots) else ())


@SETTINGS
@given(elections(), st.randoms(use_true_random=False))
def test_ballot_order_does_not_matter(
    election: tuple[list[str], list[tuple[str, ...]]], order: random.Random
) -> None:
    options, ballots = election
    result = count_irv(ballots, options, tie_seed="order")
    shuffled = list(ballots)
    order.shuffle(shuffled)
    assert count_irv([list(ballot) for ballot in shuffled], options, tie_seed="order") == result


@SETTINGS
@given(elections())
def test_stored_form_round_trips(election: tuple[list[str], list[tuple[str, ...]]]) -> None:
    options, ballots = election
    result = count_irv(ballots, options, tie_seed="store")
    stored = json.loads(json.dumps(result.to_dict()))
    assert IrvResult.from_dict(stored) == result
    assert result_from_dict(stored) == result
