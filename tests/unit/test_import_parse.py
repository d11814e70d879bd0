"""Parsing member CSV files: no database, only `parse_csv`."""

from __future__ import annotations

import pytest

from app.members.importing import MAX_ROWS, ImportFileError, parse_csv


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_csv(text.encode("utf-8"))


def refused(data: bytes) -> str:
    with pytest.raises(ImportFileError) as info:
        parse_csv(data)
    return str(info.value)


def test_a_plain_file() -> None:
    parsed = parse("name,email,groups\nAda Lovelace,ada@example.org,Board|Finance\nAlan,alan@example.org,\n")
    assert parsed.delimiter == ","
    assert parsed.columns == ("name", "email", "groups")
    assert [(r.line, r.name, r.email, r.groups, r.errors) for r in parsed.rows] == [
        (2, "Ada Lovelace", "ada@example.org", ("Board", "Finance"), ()),
        (3, "Alan", "alan@example.org", (), ()),
    ]


def test_a_utf8_bom_is_dropped() -> None:
    parsed = parse_csv(b"\xef\xbb\xbfname,email\nJos\xc3\xa9,jose@example.org\n")
    assert parsed.columns == ("name", "email")
    assert parsed.rows[0].name == "José"


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_the_header_line_decides_the_delimiter(delimiter: str) -> None:
    text = f"name{delimiter}email{delimiter}groups\nAda{delimiter}ada@example.org{delimiter}Board\n"
    parsed = parse(text)
    assert parsed.delimiter == delimiter
    assert parsed.rows[0].groups == ("Board",)


def test_semicolons_win_even_when_names_hold_commas() -> None:
    parsed = parse('name;email\n"Hopper, Grace";grace@example.org\nLovelace, Ada;ada@example.org\n')
    assert parsed.delimiter == ";"
    assert [r.name for r in parsed.rows] == ["Hopper, Grace", "Lovelace, Ada"]


def test_quoted_fields_may_hold_the_delimiter_and_quotes() -> None:
    parsed = parse('name,email,groups\n"Hopper, Grace",grace@example.org,"Board|Finance, Audit"\n'
                   '"Ada ""Countess"" Lovelace",ada@example.org,\n')
    assert parsed.rows[0].name == "Hopper, Grace"
    assert parsed.rows[0].groups == ("Board", "Finance, Audit")
    assert parsed.rows[1].name == 'Ada "Countess" Lovelace'


def test_crlf_line_ends_and_a_missing_final_newline() -> None:
    parsed = parse("name,email\r\nAda,ada@example.org\r\nAlan,alan@example.org")
    assert [(r.line, r.email) for r in parsed.rows] == [(2, "ada@example.org"), (3, "alan@example.org")]


def test_line_numbers_count_blank_lines_and_quoted_line_breaks() -> None:
    parsed = parse('name,email\n\n"Ada\nLovelace",ada@example.org\n,\nbob,not-an-address\n')
    assert [r.line for r in parsed.rows] == [3, 6]
    assert parsed.rows[0].name == "Ada Lovelace"
    assert parsed.rows[1].errors == ("'not-an-address' is not a valid email address.",)


def test_headers_are_case_insensitive_trimmed_and_in_any_order() -> None:
    parsed = parse(" Email , NAME ,Groups \nada@example.org,Ada,board\n")
    assert parsed.columns == ("email", "name", "groups")
    assert (parsed.rows[0].name, parsed.rows[0].email) == ("Ada", "ada@example.org")


def test_the_groups_column_is_optional() -> None:
    assert parse("name,email\nAda,ada@example.org\n").rows[0].groups == ()


def test_whitespace_around_values_is_trimmed() -> None:
    parsed = parse("name,email,groups\n  Ada   Lovelace ,  Ada@Example.ORG  , Board | | board |Finance \n")
    row = parsed.rows[0]
    assert row.name == "Ada Lovelace"
    assert row.email == "ada@example.org"
    assert row.groups == ("Board", "Finance")
    assert row.ok


def test_a_trailing_separator_in_the_header_is_ignored() -> None:
    parsed = parse("name,email,\nAda,ada@example.org,\n")
    assert parsed.columns == ("name", "email")
    assert parsed.rows[0].ok


def test_an_unknown_column_refuses_the_file() -> None:
    assert refused(b"name,email,Phone\nAda,ada@example.org,123\n") == (
        "Unknown column 'Phone': expected name, email, groups.")


def test_a_missing_required_column_refuses_the_file() -> None:
    assert "no 'email' column" in refused(b"name,groups\nAda,Board\n")
    assert "no 'name' column" in refused(b"email\nada@example.org\n")


def test_a_repeated_column_refuses_the_file() -> None:
    assert "appears twice" in refused(b"name,email,EMAIL\nAda,a@example.org,b@example.org\n")


def test_a_file_without_a_header_is_refused() -> None:
    message = refused(b"Ada Lovelace,ada@example.org,Board\n")
    assert message.startswith("The first line must be a header")


@pytest.mark.parametrize("data", [b"", b"\n\n  \r\n", b"\xef\xbb\xbf", b",,\n,,\n"])
def test_an_empty_file_is_refused(data: bytes) -> None:
    assert refused(data) == "The file is empty."


def test_a_header_without_rows_is_refused() -> None:
    assert "no members" in refused(b"name,email\n\n")


def test_invalid_utf8_refuses_the_whole_file_and_names_the_line() -> None:
    message = refused("name,email\nAda,ada@example.org\nJos\xe9,jose@example.org\n".encode("latin-1"))
    assert "not valid UTF-8" in message
    assert "line 3" in message
    assert "CSV UTF-8" in message


def test_utf16_and_nul_bytes_are_refused() -> None:
    assert "UTF-16" in refused("name,email\n".encode("utf-16"))
    assert "NUL" in refused(b"name,email\nA\x00,a@example.org\n")


def test_a_duplicate_email_is_an_error_on_the_later_row() -> None:
    parsed = parse("name,email\nAda,ada@example.org\nAlan,alan@example.org\nAda Again,ADA@example.org\n")
    assert [r.ok for r in parsed.rows] == [True, True, False]
    assert parsed.rows[2].errors == ("Duplicate of line 2.",)
    assert [r.line for r in parsed.good] == [2, 3]
    assert [r.line for r in parsed.bad] == [4]


def test_bad_and_missing_email_addresses() -> None:
    parsed = parse("name,email\nA,ada@\nB,\nC,two words@example.org\nD,ok@example.org\n")
    assert parsed.rows[0].errors == ("'ada@' is not a valid email address.",)
    assert parsed.rows[1].errors == ("The email address is missing.",)
    assert parsed.rows[2].errors == ("'two words@example.org' is not a valid email address.",)
    assert parsed.rows[3].ok


def test_missing_and_too_long_names() -> None:
    parsed = parse(f"name,email\n ,a@example.org\n{'x' * 101},b@example.org\n{'y' * 100},c@example.org\n")
    assert parsed.rows[0].errors == ("Name is required.",)
    assert parsed.rows[1].errors == ("Name can be at most 100 characters.",)
    assert parsed.rows[2].ok


def test_a_too_long_group_name_is_a_row_error() -> None:
    row = parse(f"name,email,groups\nAda,ada@example.org,Board|{'g' * 101}\n").rows[0]
    assert row.errors == ("A group name can be at most 100 characters.",)


def test_a_row_may_have_several_errors() -> None:
    row = parse("name,email\n,nope\n").rows[0]
    assert row.errors == ("Name is required.", "'nope' is not a valid email address.")


def test_more_values_than_columns_is_a_row_error() -> None:
    parsed = parse("name,email\nAda,ada@example.org,extra\nAlan,alan@example.org,,\n")
    assert parsed.rows[0].errors == ("This row has 3 values but the header has 2 columns.",)
    assert parsed.rows[1].ok


def test_line_breaks_and_control_characters_cannot_reach_a_name() -> None:
    parsed = parse('name,email\n"Ada\r\nBcc: x@evil.example",ada@example.org\n"A\u2028B",b@example.org\n'
                   '"Ctrl\x07",c@example.org\n')
    assert parsed.rows[0].name == "Ada Bcc: x@evil.example"
    assert parsed.rows[1].name == "A B"
    assert parsed.rows[2].errors == ("Name contains characters that are not allowed.",)


def test_the_row_limit() -> None:
    header = "name,email\n"
    body = "".join(f"M{i},m{i}@example.org\n" for i in range(MAX_ROWS))
    assert len(parse(header + body).rows) == MAX_ROWS
    message = refused((header + body + "One more,more@example.org\n").encode())
    assert "more than 50,000 rows" in message
