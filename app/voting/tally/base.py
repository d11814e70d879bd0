"""Pieces shared by every counting method: the ballot error, option checks, JSON helpers and wording.

Pure functions over the standard library; nothing here touches the database or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

# Special ballot value for "none of these options" in single-choice votes.  It can never be an
# option id, so a vote for it is always told apart from a vote for a real option.
NONE_OF_THESE = "__none__"

# Written into every stored result; bump it when the stored shape changes so old rows are read knowingly.
FORMAT_VERSION = 1

# Per-option counts, in the order the options were given.  Pairs rather than a dict because the results
# are frozen and hashable, and because a database JSON column (PostgreSQL's jsonb) does not keep key order.
Tally = tuple[tuple[str, int], ...]


class InvalidBallot(ValueError):
    """A ballot the counting method cannot accept.

    Ballots are validated when they are cast; the count checks again and refuses rather than skipping,
    so bad stored data is noticed instead of quietly changing an outcome.
    """


def check_options(options: Sequence[str]) -> tuple[str, ...]:
    """Return the options as a tuple after checking they are distinct, non-empty string ids."""
    if isinstance(options, str):
        raise TypeError("options must be a sequence of option ids, not a single string")
    checked = tuple(options)
    if not checked:
        raise ValueError("at least one option is required")
    for option in checked:
        if not isinstance(option, str) or not option:
            raise ValueError(f"option ids must be non-empty strings, got {option!r}")
        if option == NONE_OF_THESE:
            raise ValueError(f"{NONE_OF_THESE!r} is reserved for 'none of these' and cannot be an option")
    if len(set(checked)) != len(checked):
        raise ValueError("option ids must be distinct")
    return checked


def check_count(value: int, name: str) -> int:
    """Reject negative or non-integer counts (bool included, which is an int subclass)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def check_positive(value: int, name: str) -> int:
    """Reject anything but a whole number of at least 1 (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def tally_of(tally: Tally, option: str) -> int:
    """The count for one option in a tally."""
    for name, count in tally:
        if name == option:
            return count
    raise KeyError(option)


def leaders_of(tally: Tally) -> tuple[int, tuple[str, ...]]:
    """The highest count and the options holding it; no options when nobody got anything."""
    top = max((count for _, count in tally), default=0)
    if top == 0:
        return 0, ()
    return top, tuple(name for name, count in tally if count == top)


# --- JSON ---------------------------------------------------------------------------------------------------


def fraction_to_json(value: Fraction) -> str:
    """Exact text form, e.g. "2/3"; floats would not round-trip."""
    return f"{value.numerator}/{value.denominator}"


def fraction_from_json(value: Any) -> Fraction:
    if not isinstance(value, str):
        raise ValueError(f"expected a fraction written as text, got {value!r}")
    return Fraction(value)


def tally_to_json(tally: Tally, key: str) -> list[dict[str, Any]]:
    return [{"option": name, key: count} for name, count in tally]


def tally_from_json(rows: Iterable[Mapping[str, Any]], key: str) -> Tally:
    return tuple((str(row["option"]), int(row[key])) for row in rows)


def header(method: str) -> dict[str, Any]:
    """The keys every stored result starts with."""
    return {"method": method, "version": FORMAT_VERSION}


def check_header(data: Mapping[str, Any], method: str) -> None:
    """Refuse to read a stored result of another method or of an unknown format version."""
    if data.get("method") != method:
        raise ValueError(f"stored result is for method {data.get('method')!r}, not {method!r}")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown stored result version {data.get('version')!r}")


def optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


# --- wording ------------------------------------------------------------------------------------------------


def join_names(names: Sequence[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def percent_text(value: Fraction, places: int = 1) -> str:
    """A share as a percentage rounded half up, e.g. Fraction(2, 3) -> "66.7%".

    Rounding half up by hand because round() on a Fraction rounds half to even, which reads oddly.
    """
    scale = 10**places
    scaled = value * 100 * scale
    rounded = (scaled.numerator * 2 + scaled.denominator) // (scaled.denominator * 2)
    whole, part = divmod(rounded, scale)
    if places == 0:
        return f"{whole}%"
    return f"{whole}.{part:0{places}d}%"


def rule_text(value: Fraction) -> str:
    """A threshold as people write it: "50%" or "67.5%" when exact, else "2/3 (66.7%)"."""
    hundredths = value * 10000
    if hundredths.denominator == 1:
        whole, part = divmod(hundredths.numerator, 100)
        return f"{whole}%" if part == 0 else f"{whole}.{part:02d}".rstrip("0") + "%"
    return f"{value.numerator}/{value.denominator} ({percent_text(value)})"


def share_text(value: Fraction, reference: Fraction) -> str:
    """A share shown with enough decimals that it never looks equal to a threshold it differs from."""
    for places in range(1, 7):
        text = percent_text(value, places)
        if value == reference or text != percent_text(reference, places):
            return text
    return text
