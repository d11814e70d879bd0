"""The @mention rule: what counts as a mention and whom it names."""

from __future__ import annotations

from app.comments.mentions import MAX_MENTIONS, handles, key, resolve


def test_key_ignores_case_spaces_and_underscores() -> None:
    assert key("Mia van Dijk") == key("mia_van_dijk") == key("MiaVanDijk") == "miavandijk"
    assert key("Zoë  Ökten") == "zoëökten"


def test_handles_in_order_without_duplicates() -> None:
    text = "Thanks @Mia_van_Dijk and @zoe. Also @MiaVanDijk, (@Olu-Ade) and @O'Brien!"
    assert handles(text) == ["miavandijk", "zoe", "olu-ade", "o'brien"]


def test_what_is_not_a_mention() -> None:
    assert handles("write to mia@example.org") == []
    assert handles("`@Mia` and\n```\n@Zoe\n```\n~~~\n@Ann\n~~~") == []
    assert handles("@ alone, @@double, email@@x") == []


def test_trailing_punctuation_is_not_part_of_the_name() -> None:
    assert handles("Ask @Mia. Or @Zoe's friend? @Ann-") == ["mia", "zoe's", "ann"]


def test_at_most_twenty() -> None:
    assert len(handles(" ".join(f"@m{i}" for i in range(50)))) == MAX_MENTIONS


def test_resolve_needs_exactly_one_member() -> None:
    members = [(1, "Mia van Dijk"), (2, "Ann Lee"), (3, "Ann  Lee"), (4, "Zoe")]
    assert resolve(["miavandijk", "annlee", "zoe", "nobody"], members) == {"miavandijk": 1, "zoe": 4}
