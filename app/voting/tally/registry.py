"""Reading a stored result back without knowing its method in advance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.voting.tally.approval import ApprovalResult
from app.voting.tally.irv import IrvResult
from app.voting.tally.plurality import PluralityResult
from app.voting.tally.score import ScoreResult
from app.voting.tally.yes_no import YesNoResult

TallyResult = YesNoResult | PluralityResult | ApprovalResult | IrvResult | ScoreResult

RESULT_TYPES: dict[str, type[TallyResult]] = {
    result_type.method: result_type
    for result_type in (YesNoResult, PluralityResult, ApprovalResult, IrvResult, ScoreResult)
}


def result_from_dict(data: Mapping[str, Any]) -> TallyResult:
    """Rebuild any result from its ``to_dict()`` form, dispatching on its ``method`` key."""
    method = data.get("method")
    if method not in RESULT_TYPES:
        raise ValueError(f"unknown counting method {method!r}")
    return RESULT_TYPES[method].from_dict(data)
