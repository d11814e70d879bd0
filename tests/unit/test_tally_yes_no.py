"""Yes/No counting: decision rules, quorum, wording and stored form."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.voting.tally import (
    DecisionRule,
    InvalidBallot,
    Outcome,
    YesNoResult,
    count_yes_no,
    percent,
    result_from_dict,
)

SETTINGS = settings(max_examples=150, database=None, deadline=None)


def ballots(yes: int, no: int, abstain: int = 0) -> list[str]:
    return ["yes"] * yes + ["no"] * no + ["abstain"] * abstain


# --- worked examples ----------------------------------------------------------------------------------------


def test_simple_majority_passes_with_explanation() -> None:
    rule = DecisionRule.simple_majority(quorum=Fraction(1, 2))
    result = count_yes_no(ballots(62, 38, 10), eligible=150, rule=rule)
    assert result.outcome is Outcome.PASSED
    assert result.winners == ("yes",)
    assert result.explanation == (
        "Passed: 62 of 100 yes/no votes were yes (62.0%), more than the 50% required. "
        "10 abstentions not counted toward the majority. "
        "Turnout 110 of 150 eligible (73.3%), quorum 50% reached."
    )
    assert result.tie_break_note is None


def test_supermajority_of_exactly_two_thirds_passes() -> None:
    result = count_yes_no(ballots(20, 10), eligible=40, rule=DecisionRule.supermajority(Fraction(2, 3)))
    assert result.outcome is Outcome.PASSED
    assert "20 of 30 yes/no votes were yes (66.7%), at least the 2/3 (66.7%) required" in result.explanation


def test_exactly_two_thirds_fails_a_strict_two_thirds_rule() -> None:
    rule = DecisionRule(Fraction(2, 3), strict=True)
    result = count_yes_no(ballots(20, 10), eligible=40, rule=rule)
    assert result.outcome is Outcome.REJECTED
    assert "exactly, but not more than, the 2/3 (66.7%) required" in result.explanation


def test_just_below_two_thirds_is_shown_with_enough_decimals() -> None:
    # 66.66% would round to the same 66.7% as the threshold; the text must not look like a pass.
    result = count_yes_no(
        ballots(6666, 3334), eligible=10000, rule=DecisionRule.supermajority(Fraction(2, 3))
    )
    assert result.outcome is Outcome.REJECTED
    assert "(66.66%), less than the 2/3 (66.7%) required" in result.explanation


def test_abstentions_count_toward_quorum_but_not_majority() -> None:
    rule = DecisionRule.simple_majority(quorum=Fraction(1, 2))
    # 3 yes, 2 no and 5 abstain out of 20 eligible: turnout exactly 50% meets the quorum.
    result = count_yes_no(ballots(3, 2, 5), eligible=20, rule=rule)
    assert result.outcome is Outcome.PASSED
    assert "3 of 5 yes/no votes were yes (60.0%)" in result.explanation
    assert "quorum 50% reached" in result.explanation


def test_quorum_not_reached() -> None:
    rule = DecisionRule.simple_majority(quorum=Fraction(1, 2))
    result = count_yes_no(ballots(30, 5, 5), eligible=150, rule=rule)
    assert result.outcome is Outcome.NO_QUORUM
    assert result.winners == ()
    assert result.explanation == (
        "No quorum: turnout 40 of 150 eligible (26.7%), less than the 50% quorum; "
        "no decision was made (30 yes, 5 no, 5 abstain)."
    )


def test_tie_under_simple_majority_is_rejected_and_says_why() -> None:
    result = count_yes_no(ballots(50, 50), eligible=100, rule=DecisionRule.simple_majority())
    assert result.outcome is Outcome.REJECTED
    assert "a tie is not more than the 50% required" in result.explanation
    assert result.tie_break_note is not None
    assert "tie does not meet it, so the motion is rejected" in result.tie_break_note


def test_tie_passes_a_rule_of_at_least_half() -> None:
    result = count_yes_no(ballots(5, 5), eligible=10, rule=DecisionRule(Fraction(1, 2), strict=False))
    assert result.outcome is Outcome.PASSED
    assert result.tie_break_note is not None
    assert "tie meets it, so the motion passes" in result.tie_break_note


def test_no_yes_or_no_votes_is_rejected() -> None:
    result = count_yes_no(ballots(0, 0, 4), eligible=10, rule=DecisionRule.simple_majority())
    assert result.outcome is Outcome.REJECTED
    assert result.explanation.startswith("Rejected: no yes or no votes were cast.")


def test_nobody_eligible_is_no_quorum_when_a_quorum_is_required() -> None:
    result = count_yes_no([], eligible=0, rule=DecisionRule.simple_majority(quorum=Fraction(1, 10)))
    assert result.outcome is Outcome.NO_QUORUM


def test_unanimity() -> None:
    rule = DecisionRule.supermajority(Fraction(1))
    assert count_yes_no(ballots(9, 0, 3), eligible=12, rule=rule).outcome is Outcome.PASSED
    assert count_yes_no(ballots(9, 1), eligible=12, rule=rule).outcome is Outcome.REJECTED


# --- rules and input checks ---------------------------------------------------------------------------------


def test_rule_constructors_and_percentages() -> None:
    assert DecisionRule.simple_majority() == DecisionRule(Fraction(1, 2), strict=True)
    assert DecisionRule.supermajority(Fraction(2, 3)).strict is False
    assert percent(75) == Fraction(3, 4)
    assert percent("66.67") == Fraction(6667, 10000)
    assert percent(Decimal("12.5")) == Fraction(1, 8)
    rule = DecisionRule.from_percent(75, strict=False, quorum=50)
    assert rule == DecisionRule(Fraction(3, 4), strict=False, quorum=Fraction(1, 2))
    assert "75%" in count_yes_no(ballots(3, 1), eligible=4, rule=rule).explanation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.5},
        {"threshold": Fraction(0)},
        {"threshold": Fraction(3, 2)},
        {"threshold": Fraction(1), "strict": True},
        {"quorum": Fraction(0)},
        {"quorum": 0.5},
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        DecisionRule(**kwargs)  # type: ignore[arg-type]


def test_float_percentages_are_refused() -> None:
    with pytest.raises(TypeError):
        percent(66.67)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["Yes", "", "maybe", None, ["yes"]])
def test_unknown_ballots_are_refused(bad: object) -> None:
    with pytest.raises(InvalidBallot):
        count_yes_no(["yes", bad], eligible=10, rule=DecisionRule.simple_majority())  # type: ignore[list-item]


def test_more_ballots_than_eligible_is_an_error() -> None:
    with pytest.raises(ValueError, match="eligible"):
        count_yes_no(ballots(3, 0), eligible=2, rule=DecisionRule.simple_majority())


# --- properties ---------------------------------------------------------------------------------------------

thresholds = st.fractions(min_value=Fraction(1, 100), max_value=Fraction(99, 100), max_denominator=100)
rules = st.builds(
    DecisionRule,
    threshold=thresholds,
    strict=st.booleans(),
    quorum=st.none() | st.fractions(min_value=Fraction(1, 100), max_value=Fraction(1), max_denominator=100),
)
counts = st.integers(min_value=0, max_value=60)


@SETTINGS
@given(yes=counts, no=counts, abstain=counts, absent=counts, rule=rules)
def test_outcome_follows_the_definition(
    yes: int, no: int, abstain: int, absent: int, rule: DecisionRule
) -> None:
    eligible = yes + no + abstain + absent
    result = count_yes_no(ballots(yes, no, abstain), eligible=eligible, rule=rule)

    assert result.yes + result.no + result.abstain == result.ballots_cast == yes + no + abstain
    if rule.quorum is not None and (eligible == 0 or Fraction(result.ballots_cast, eligible) < rule.quorum):
        expected = Outcome.NO_QUORUM
    elif yes + no == 0:
        expected = Outcome.REJECTED
    else:
        share = Fraction(yes, yes + no)
        passed = share > rule.threshold if rule.strict else share >= rule.threshold
        expected = Outcome.PASSED if passed else Outcome.REJECTED
    assert result.outcome is expected
    prefix = {Outcome.PASSED: "Passed: ", Outcome.REJECTED: "Rejected: ", Outcome.NO_QUORUM: "No quorum: "}
    assert result.explanation.startswith(prefix[expected])


@SETTINGS
@given(yes=counts, no=counts, abstain=counts, rule=rules, order=st.randoms(use_true_random=False))
def test_round_trip_and_ballot_order(
    yes: int, no: int, abstain: int, rule: DecisionRule, order: random.Random
) -> None:
    cast = ballots(yes, no, abstain)
    result = count_yes_no(cast, eligible=len(cast) + 5, rule=rule)
    order.shuffle(cast)
    assert count_yes_no(cast, eligible=len(cast) + 5, rule=rule) == result
    stored = json.loads(json.dumps(result.to_dict()))
    assert YesNoResult.from_dict(stored) == result
    assert result_from_dict(stored) == result


@SETTINGS
@given(yes=counts, no=counts, abstain=counts, rule=rules)
def test_one_more_yes_never_turns_a_pass_into_a_rejection(
    yes: int, no: int, abstain: int, rule: DecisionRule
) -> None:
    eligible = yes + no + abstain + 1
    before = count_yes_no(ballots(yes, no, abstain), eligible=eligible, rule=rule)
    after = count_yes_no(ballots(yes + 1, no, abstain), eligible=eligible, rule=rule)
    if before.outcome is Outcome.PASSED:
        assert after.outcome is Outcome.PASSED


# --- a supermajority with a quorum, as Robert's Rules of Order defines them ------------------------------------

# Robert's Rules of Order Newly Revised (12th ed.), 44:3-44:4: a two-thirds vote is at least two-thirds of the
# votes cast by those entitled to vote, blanks and abstentions excluded; 40:1: the quorum is counted on the
# members present (here: who took part, abstaining included). An assembly of 150 with a quorum of one third
# (50 members) and a two-thirds rule:


def test_two_thirds_with_quorum_worked_example() -> None:
    rule = DecisionRule.supermajority(Fraction(2, 3), quorum=Fraction(1, 3))
    # 40 for, 20 against, 5 abstaining: 65 took part (quorum 50 met); 40 of 60 is exactly two thirds: adopted.
    adopted = count_yes_no(ballots(40, 20, 5), eligible=150, rule=rule)
    assert adopted.outcome is Outcome.PASSED
    # 39 for, 21 against: 39 of 60 is 65%, less than two thirds: lost, though a majority was in favour.
    lost = count_yes_no(ballots(39, 21, 5), eligible=150, rule=rule)
    assert lost.outcome is Outcome.REJECTED
    # 45 for, 4 against, nobody abstaining: 49 took part, one short of the quorum of 50: no decision, however
    # lopsided the vote.
    assert count_yes_no(ballots(45, 4), eligible=150, rule=rule).outcome is Outcome.NO_QUORUM
    # Abstentions count toward the quorum only: 45 for, 4 against and 1 abstaining reach it, and pass.
    assert count_yes_no(ballots(45, 4, 1), eligible=150, rule=rule).outcome is Outcome.PASSED
