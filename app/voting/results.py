"""Turn a tally into what people read: one verdict line, rows for the table and chart, rounds for IRV.

The dict built here is stored in `proposals.result` at close and read as it is ever after.
"""

from __future__ import annotations

from typing import Any

from app.proposals.models import Method, Proposal
from app.voting import tally

YES_NO_LABELS = {"yes": "Yes", "no": "No", "abstain": "Abstain"}


def _pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def build_result(p: Proposal, counted: Any) -> dict[str, Any]:
    data = counted.to_dict()
    cast = counted.ballots_cast
    eligible = max(p.eligible_count, cast)
    rows: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    if p.method == Method.YES_NO:
        decided = counted.yes + counted.no
        for key in ("yes", "no", "abstain"):
            n = getattr(counted, key)
            rows.append({"label": YES_NO_LABELS[key], "count": n,
                         "percent": _pct(n, decided) if key != "abstain" else _pct(n, cast)})
        verdict = _yes_no_verdict(counted, p)
    elif p.method == Method.SINGLE:
        for name, n in counted.counts:
            rows.append({"label": name, "count": n, "percent": _pct(n, counted.valid)})
        if p.allow_none:
            rows.append({"label": "None of these", "count": counted.none_of_these,
                         "percent": _pct(counted.none_of_these, counted.valid)})
        verdict = _winner_verdict(counted, "votes", rows)
    elif p.method == Method.MULTIPLE:
        for name, n in counted.counts:
            rows.append({"label": name, "count": n, "percent": _pct(n, counted.valid)})
        verdict = _winner_verdict(counted, "approvals", rows)
    elif p.method == Method.RANKED:
        first = counted.rounds[0].tallies if counted.rounds else tuple((o, 0) for o in counted.options)
        for name, n in first:
            rows.append({"label": name, "count": n, "percent": _pct(n, counted.valid)})
        rounds = data["rounds"]
        if counted.winners:
            last = counted.rounds[-1]
            votes = dict(last.tallies)[counted.winners[0]]
            active = sum(dict(last.tallies).values())
            verdict = (f"Elected: {counted.winners[0]}, with {votes} of {active} continuing ballots "
                       f"({_pct(votes, active)}%) in round {last.number}.")
        else:
            verdict = "No votes were cast."
    else:
        for line in counted.lines:
            avg = float(line.average) if line.average is not None else 0.0
            rows.append({"label": line.option, "count": line.scored, "average": round(avg, 2),
                         "percent": round(100 * avg / p.max_score, 1), "distribution": list(line.distribution),
                         "unscored": line.unscored})
        if counted.winners:
            top = next(r for r in rows if r["label"] == counted.winners[0])
            verdict = f"Highest average score: {counted.winners[0]}, {top['average']} of {p.max_score}."
        else:
            verdict = "No votes were cast."
    if counted.tie_break_note and p.method != Method.RANKED:
        verdict += " (Tie broken: see below.)"
    return {
        "method": p.method,
        "verdict": verdict,
        "ballots": cast,
        "eligible": eligible,
        "turnout_percent": _pct(cast, eligible),
        "winners": list(counted.winners),
        "rows": rows,
        "rounds": rounds,
        "tie_break_note": counted.tie_break_note,
        "explanation": data.get("explanation", ""),
        "tally": data,
    }


def _yes_no_verdict(counted: Any, p: Proposal) -> str:
    decided = counted.yes + counted.no
    share = _pct(counted.yes, decided)
    turnout = f"turnout {counted.ballots_cast} of {counted.eligible}"
    if counted.outcome == tally.Outcome.NO_QUORUM:
        return f"Not decided: quorum not reached ({turnout})."
    word = "Passed" if counted.outcome == tally.Outcome.PASSED else "Rejected"
    quorum = "; quorum met" if p.quorum else ""
    if decided == 0:
        return f"{word}: no yes or no votes were cast ({turnout})."
    return f"{word}: {share}% of yes/no votes in favour ({counted.yes} of {decided}); {turnout}{quorum}."


def _winner_verdict(counted: Any, unit: str, rows: list[dict[str, Any]]) -> str:
    if not counted.winners:
        return "No votes were cast."
    top = next(r for r in rows if r["label"] == counted.winners[0])
    tied = f" (tied with {', '.join(t for t in counted.tied if t != counted.winners[0])})" if counted.tied else ""
    return f"Most {unit}: {counted.winners[0]}, {top['count']} ({top['percent']}%){tied}."


def score_table(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Score voting: per option, how many ballots gave each score (index = score) and how many left it
    unscored. Results stored before rows carried `unscored` take it from the stored tally."""
    if not result or result.get("method") != Method.SCORE:
        return []
    unscored = {line["option"]: line["unscored"] for line in (result.get("tally") or {}).get("lines", [])}
    return [{"label": r["label"], "distribution": list(r.get("distribution") or []),
             "unscored": r.get("unscored", unscored.get(r["label"], 0))} for r in result.get("rows", [])]
