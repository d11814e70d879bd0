"""Counting votes: pure functions from ballots to frozen, JSON-storable results.

This package owns the counting rules and nothing else: no database, no I/O, standard library only.
Options are string ids (the caller maps database ids to strings).  Every method returns a frozen dataclass
with ``method``, ``ballots_cast``, ``winners`` (a tuple, empty if none), ``tie_break_note`` (how a tie was
broken, or None), ``to_dict()`` for storing it frozen in a JSON column, and ``from_dict()`` to read it back;
``result_from_dict()`` reads any of them.

Methods: ``count_yes_no`` (majority, supermajority, quorum), ``count_plurality`` (single choice, optional
"none of these"), ``count_approval`` (multiple choice), ``count_irv`` (instant runoff) and ``count_score``.
Ties are broken by one documented rule, in ``ties``; bad ballots raise ``InvalidBallot``, never skipped.
"""

from app.voting.tally.approval import ApprovalResult, count_approval
from app.voting.tally.base import FORMAT_VERSION, NONE_OF_THESE, InvalidBallot
from app.voting.tally.irv import IrvResult, IrvRound, count_irv
from app.voting.tally.plurality import PluralityResult, count_plurality
from app.voting.tally.registry import TallyResult, result_from_dict
from app.voting.tally.score import ScoreLine, ScoreResult, count_score
from app.voting.tally.ties import TieBreak
from app.voting.tally.yes_no import (
    ABSTAIN,
    NO,
    YES,
    DecisionRule,
    Outcome,
    YesNoResult,
    count_yes_no,
    percent,
)

__all__ = [
    "ABSTAIN",
    "FORMAT_VERSION",
    "NO",
    "NONE_OF_THESE",
    "YES",
    "ApprovalResult",
    "DecisionRule",
    "InvalidBallot",
    "IrvResult",
    "IrvRound",
    "Outcome",
    "PluralityResult",
    "ScoreLine",
    "ScoreResult",
    "TallyResult",
    "TieBreak",
    "YesNoResult",
    "count_approval",
    "count_irv",
    "count_plurality",
    "count_score",
    "count_yes_no",
    "percent",
    "result_from_dict",
]
