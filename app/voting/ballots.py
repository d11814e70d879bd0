"""What a ballot may contain for each method: parse it from a form, check it against the proposal, count it.

Choices are stored as JSON in one canonical shape per method (option ids as strings):
yes_no "yes" | "no" | "abstain"; single "<id>" | "__none__"; multiple ["<id>", ...]; ranked ["<id>", ...]
(first preference first, partial rankings allowed); score {"<id>": 0..max_score} (unscored options absent).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from app.proposals.models import Method, Proposal
from app.voting import tally


class BallotError(ValueError):
    """The submitted ballot is not valid for this proposal; the message says why."""


def _fraction(text: str | None) -> Fraction | None:
    return Fraction(text) if text else None


def rule_of(p: Proposal) -> tally.DecisionRule:
    return tally.DecisionRule(Fraction(p.threshold), strict=p.threshold_strict, quorum=_fraction(p.quorum))


def choice_from_form(method: str, option_ids: list[int], form: Mapping[str, Any], getlist: Any) -> object:
    """Turn the vote form's fields into a raw choice (validated afterwards by `check_choice`)."""
    if method in (Method.YES_NO, Method.SINGLE):
        value = form.get("choice")
        if not isinstance(value, str) or not value:
            raise BallotError("Choose an option before you vote.")
        return value
    if method == Method.MULTIPLE:
        return [v for v in getlist("choice") if isinstance(v, str)]
    if method == Method.RANKED:
        ranks: dict[str, int] = {}
        for oid in option_ids:
            raw = form.get(f"rank-{oid}", "")
            if raw in ("", None):
                continue
            if not isinstance(raw, str) or not raw.isdigit() or not 1 <= int(raw) <= len(option_ids):
                raise BallotError(f"Ranks go from 1 to {len(option_ids)}.")
            ranks[str(oid)] = int(raw)
        if len(set(ranks.values())) != len(ranks):
            raise BallotError("Each rank can be given to one option only.")
        return [oid for oid, _ in sorted(ranks.items(), key=lambda kv: kv[1])]
    if method == Method.SCORE:
        scores: dict[str, int] = {}
        for oid in option_ids:
            raw = form.get(f"score-{oid}", "")
            if raw in ("", None):
                continue
            if not isinstance(raw, str) or not raw.isdigit():
                raise BallotError("Scores are whole numbers.")
            scores[str(oid)] = int(raw)
        return scores
    raise BallotError("Unknown voting method.")


def check_choice(p: Proposal, option_ids: list[int], raw: object) -> object:
    """The canonical choice, or BallotError. Never trusts the form: every id must belong to this proposal."""
    ids = {str(i) for i in option_ids}
    method = p.method
    if method == Method.YES_NO:
        if raw not in (tally.YES, tally.NO, tally.ABSTAIN):
            raise BallotError("Choose yes, no or abstain.")
        return raw
    if method == Method.SINGLE:
        if raw == tally.NONE_OF_THESE or raw == "none":
            if not p.allow_none:
                raise BallotError("This proposal has no “none of these” choice.")
            return tally.NONE_OF_THESE
        if not isinstance(raw, str) or raw not in ids:
            raise BallotError("That option is not part of this proposal.")
        return raw
    if method in (Method.MULTIPLE, Method.RANKED):
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise BallotError("The ballot could not be read.")
        if any(x not in ids for x in raw):
            raise BallotError("That option is not part of this proposal.")
        if len(set(raw)) != len(raw):
            raise BallotError("Each option can be chosen once.")
        if not raw:
            raise BallotError("Choose at least one option." if method == Method.MULTIPLE
                              else "Rank at least one option.")
        if method == Method.MULTIPLE and p.max_picks and len(raw) > p.max_picks:
            raise BallotError(f"Choose at most {p.max_picks} options.")
        return sorted(raw, key=int) if method == Method.MULTIPLE else raw
    if method == Method.SCORE:
        if not isinstance(raw, dict):
            raise BallotError("The ballot could not be read.")
        out = {}
        for k, v in raw.items():
            if k not in ids:
                raise BallotError("That option is not part of this proposal.")
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= p.max_score:
                raise BallotError(f"Scores go from 0 to {p.max_score}.")
            out[k] = v
        if not out:
            raise BallotError("Score at least one option.")
        return out
    raise BallotError("Unknown voting method.")


def count_groups(p: Proposal, options: list[tuple[int, str]], groups: Iterable[tuple[object, int]], *,
                 eligible: int) -> Any:
    """`count` from (choice, how many ballots hold it) pairs, as the live tally reads them from the database.

    Yes/no and single-choice counts take the numbers as they are (their counters accept a mapping of ballot to
    count), so a live tally costs the same with 100 ballots or 100,000; the other methods look at every ballot
    and get each choice repeated."""
    if p.method in (Method.YES_NO, Method.SINGLE):
        label = {str(i): name for i, name in options}
        counts: Counter[object] = Counter()
        for choice, n in groups:
            if p.method == Method.YES_NO:
                counts[str(choice)] += n
            else:
                counts[choice if choice == tally.NONE_OF_THESE else label[str(choice)]] += n
        if p.method == Method.YES_NO:
            return tally.count_yes_no(counts, eligible=eligible, rule=rule_of(p))  # type: ignore[arg-type]
        return tally.count_plurality(counts, [name for _, name in options],  # type: ignore[arg-type]
                                     allow_none_of_these=p.allow_none, tie_seed=p.public_id)
    choices = itertools.chain.from_iterable(itertools.repeat(choice, n) for choice, n in groups)
    return count(p, options, choices, eligible=eligible)


def count(p: Proposal, options: list[tuple[int, str]], choices: Iterable[object], *, eligible: int) -> Any:
    """Count stored choices with the proposal's method and rules; returns the tally result object.

    The count runs on option labels (unique within a proposal, checked when voting opens), so the tally's
    tie-break notes and round tables name options as members know them, and the lot stays recomputable
    from public facts: the proposal's public id and the labels.
    """
    label = {str(i): name for i, name in options}
    names = [name for _, name in options]
    seed = p.public_id
    if p.method == Method.YES_NO:
        return tally.count_yes_no((str(c) for c in choices), eligible=eligible, rule=rule_of(p))
    if p.method == Method.SINGLE:
        return tally.count_plurality((c if c == tally.NONE_OF_THESE else label[str(c)] for c in choices), names,
                                     allow_none_of_these=p.allow_none, tie_seed=seed)
    if p.method == Method.MULTIPLE:
        return tally.count_approval((tuple(label[x] for x in c) for c in choices),  # type: ignore[attr-defined]
                                    names, max_picks=p.max_picks, tie_seed=seed)
    if p.method == Method.RANKED:
        return tally.count_irv((tuple(label[x] for x in c) for c in choices),  # type: ignore[attr-defined]
                               names, tie_seed=seed)
    return tally.count_score(({label[k]: v for k, v in dict(c).items()} for c in choices),  # type: ignore[call-overload]
                             names, max_score=p.max_score, tie_seed=seed)


def describe(choice: object, labels: Mapping[str, str], method: str) -> str:
    """A choice in words, for the voter's own panel and open-ballot exports."""
    if method == Method.YES_NO:
        return {"yes": "Yes", "no": "No", "abstain": "Abstain"}.get(str(choice), str(choice))
    if method == Method.SINGLE:
        return "None of these" if choice == tally.NONE_OF_THESE else labels.get(str(choice), "?")
    if method == Method.MULTIPLE and isinstance(choice, list):
        return ", ".join(labels.get(c, "?") for c in choice)
    if method == Method.RANKED and isinstance(choice, list):
        return "; ".join(f"{i}. {labels.get(c, '?')}" for i, c in enumerate(choice, 1))
    if method == Method.SCORE and isinstance(choice, dict):
        return ", ".join(f"{labels.get(k, '?')}: {v}" for k, v in choice.items())
    return str(choice)
