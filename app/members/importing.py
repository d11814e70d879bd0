"""Importing members from a CSV file: parse it, preview what would change, then apply it in one transaction.

The file has a header naming its columns (`name`, `email`, optional `groups`; any order, any case), is UTF-8
with or without a BOM, and is separated by `,` or `;` (the header line decides which). `groups` holds group
names separated by `|`. A row whose email is not yet a member is invited through `services.invite_many`; a
row for an existing member updates the name and adds the listed groups, and never removes a group, changes a
role or status, or invites again.

`parse_csv` needs no database and refuses a whole file with `ImportFileError`; problems in single rows are
kept on the row. `preview` reads the database and says what `apply` would do; `apply` re-runs the preview in
the caller's write transaction (the database may have changed since the admin saw it) and writes everything
or, by raising, nothing.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.members.guard import audit
from app.members.models import GroupMembership, Member
from app.members.services import (
    GROUP_NAME_MAX,
    MemberError,
    clean_name,
    create_group,
    groups_by_name,
    invite_many,
    normalize_email,
)
from app.settings import Settings

COLUMNS = ("name", "email", "groups")
REQUIRED = ("name", "email")
GROUP_SEPARATOR = "|"
MAX_ROWS = 50_000
MAX_BYTES = 5 * 1024 * 1024
EXPECTED = "expected name, email, groups"
# Keeps each IN (...) list well under SQLite's and PostgreSQL's limits on bound parameters.
CHUNK = 500

T = TypeVar("T")


class ImportFileError(ValueError):
    """The whole file is refused (not UTF-8, empty, no header, an unknown column, too many rows)."""


class ImportRefused(Exception):
    """Rows have errors and the admin did not choose to skip them: nothing was written."""

    def __init__(self, plan: Preview) -> None:
        self.preview = plan
        super().__init__(
            f"Nothing was imported: {_count(len(plan.errors), 'row has', 'rows have')} errors. Fix the file "
            f"and upload it again, or choose to import the {len(plan.good):,} good rows and skip the rest."
        )


@dataclass(frozen=True, slots=True)
class Row:
    """One data line of the file. `name` and `email` are cleaned when valid; `errors` says what is wrong."""

    line: int
    name: str
    email: str
    groups: tuple[str, ...]
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class ParsedFile:
    rows: tuple[Row, ...]
    delimiter: str
    columns: tuple[str, ...]

    @property
    def good(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.ok)

    @property
    def bad(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if not r.ok)


@dataclass(frozen=True, slots=True)
class Add:
    line: int
    name: str
    email: str
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Update:
    """An existing member: `new_name` is None when the name stays; `add_groups` are the groups joined."""

    line: int
    member_id: int
    email: str
    old_name: str
    new_name: str | None
    add_groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Preview:
    """What an import would do. `new_groups` are created on confirm, spelled as the file first spells them."""

    adds: tuple[Add, ...]
    updates: tuple[Update, ...]
    unchanged: tuple[Row, ...]
    errors: tuple[Row, ...]
    new_groups: tuple[str, ...]

    @property
    def good(self) -> tuple[Add | Update | Row, ...]:
        return (*self.adds, *self.updates, *self.unchanged)

    @property
    def total(self) -> int:
        return len(self.adds) + len(self.updates) + len(self.unchanged) + len(self.errors)


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int
    skipped: int
    new_groups: tuple[str, ...]

    @property
    def message(self) -> str:
        """One sentence for the admin: 'Imported 120 new members (invitations queued), updated 3, ...'."""
        text = f"Imported {_count(self.added, 'new member')}"
        if self.added:
            text += " (invitations queued)"
        text += f", updated {self.updated:,}"
        if self.unchanged:
            text += f", {self.unchanged:,} unchanged"
        if self.skipped:
            text += f", skipped {_count(self.skipped, 'row')} with errors"
        return text + "."


# --- parsing ----------------------------------------------------------------------------------------------

def parse_csv(data: bytes) -> ParsedFile:
    """Parse the bytes of an uploaded file. Raises ImportFileError when the whole file must be refused."""
    text = _decode(data)
    if not text.strip():
        raise ImportFileError("The file is empty.")
    delimiter = _sniff(text)
    records = _records(text, delimiter)
    first = next(records, None)
    if first is None:
        raise ImportFileError("The file is empty.")
    header_line, header = first
    columns = _header(header)
    width = len(header)
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for line, record in records:
        if len(rows) == MAX_ROWS:
            raise ImportFileError(f"The file has more than {MAX_ROWS:,} rows. Split it into smaller files.")
        rows.append(_row(line, record, columns, width, seen))
    if not rows:
        raise ImportFileError(f"The file has a header (line {header_line}) but no members below it.")
    return ParsedFile(rows=tuple(rows), delimiter=delimiter, columns=tuple(c for c in columns if c))


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise ImportFileError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB. "
                              "Split it into smaller files.")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError("The file is UTF-16 text. Save it as \u201cCSV UTF-8\u201d and upload it "
                              "again.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(
            f"The file is not valid UTF-8 text (line {line} has a byte that is not UTF-8). Save it as "
            "\u201cCSV UTF-8\u201d in your spreadsheet and upload it again. Nothing was imported."
        ) from exc
    if "\x00" in text:
        raise ImportFileError("The file contains NUL bytes, so it is not a CSV text file.")
    return text


def _sniff(text: str) -> str:
    """`;` when the header line has more semicolons than commas outside quotes, else `,`."""
    first = next(line for line in io.StringIO(text) if line.strip())
    unquoted = re.sub(r'"[^"]*"', "", first)
    return ";" if unquoted.count(";") > unquoted.count(",") else ","


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records with the line each starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFileError(f"Line {start} cannot be read as CSV: {exc}.") from exc
        if any(field.strip() for field in record):
            yield start, record
        start = reader.line_num + 1


def _header(record: list[str]) -> list[str]:
    """Column names by position ('' for trailing unnamed columns, which must stay empty)."""
    names = [field.strip().lower() for field in record]
    while names and not names[-1]:
        names.pop()
    if "@" in "".join(names) or not set(names) & set(COLUMNS):
        raise ImportFileError(f"The first line must be a header naming the columns: {', '.join(COLUMNS)} "
                              "(groups is optional).")
    for position, name in enumerate(names, start=1):
        if not name:
            raise ImportFileError(f"Column {position} has no name in the header: {EXPECTED}.")
        if name not in COLUMNS:
            raise ImportFileError(f"Unknown column '{record[position - 1].strip()[:40]}': {EXPECTED}.")
        if names.count(name) > 1:
            raise ImportFileError(f"The column '{name}' appears twice in the header.")
    for name in REQUIRED:
        if name not in names:
            raise ImportFileError(f"The header has no '{name}' column: {EXPECTED}.")
    return names


def _row(line: int, record: list[str], columns: list[str], width: int, seen: dict[str, int]) -> Row:
    errors: list[str] = []
    if any(field.strip() for field in record[len(columns):]):
        errors.append(f"This row has {len(record)} values but the header has {width} columns.")
    values = dict(zip(columns, record, strict=False))
    raw_name = values.get("name", "")
    try:
        name = clean_name(raw_name)
    except MemberError as exc:
        name = " ".join(raw_name.split())
        errors.append(str(exc))
    raw_email = values.get("email", "").strip()
    email = raw_email
    if not raw_email:
        errors.append("The email address is missing.")
    else:
        try:
            email = normalize_email(raw_email)
        except MemberError:
            errors.append(f"'{raw_email[:100]}' is not a valid email address.")
        else:
            if email in seen:
                errors.append(f"Duplicate of line {seen[email]}.")
            else:
                seen[email] = line
    groups: dict[str, str] = {}
    for part in values.get("groups", "").split(GROUP_SEPARATOR):
        if not part.strip():
            continue
        try:
            group = clean_name(part, "A group name", GROUP_NAME_MAX)
        except MemberError as exc:
            errors.append(str(exc))
            continue
        groups.setdefault(group.lower(), group)
    return Row(line=line, name=name, email=email, groups=tuple(groups.values()), errors=tuple(errors))


# --- preview and apply ------------------------------------------------------------------------------------

def preview(session: Session, parsed: ParsedFile) -> Preview:
    """Sort the file's rows into adds, updates, unchanged and errors, with a handful of queries in all."""
    good = parsed.good
    existing = _members_by_email(session, [r.email for r in good])
    memberships = _memberships(session, [member_id for member_id, _ in existing.values()])
    known = groups_by_name(session)
    new_groups: dict[str, str] = {}
    adds: list[Add] = []
    updates: list[Update] = []
    unchanged: list[Row] = []
    for row in good:
        for group in row.groups:
            if group.lower() not in known:
                new_groups.setdefault(group.lower(), group)
        hit = existing.get(row.email)
        if hit is None:
            adds.append(Add(line=row.line, name=row.name, email=row.email, groups=row.groups))
            continue
        member_id, old_name = hit
        have = memberships.get(member_id, set())
        add_groups = tuple(g for g in row.groups if known.get(g.lower()) not in have)
        new_name = row.name if row.name != old_name else None
        if new_name is None and not add_groups:
            unchanged.append(row)
        else:
            updates.append(Update(line=row.line, member_id=member_id, email=row.email, old_name=old_name,
                                  new_name=new_name, add_groups=add_groups))
    return Preview(adds=tuple(adds), updates=tuple(updates), unchanged=tuple(unchanged), errors=parsed.bad,
                   new_groups=tuple(new_groups.values()))


def apply(session: Session, settings: Settings, parsed: ParsedFile, *, actor_id: int | None, ip: str,
          org_name: str, skip_errors: bool, source: str = "web") -> ImportResult:
    """Write the import in the caller's transaction. Raises ImportRefused (having written nothing) when rows
    have errors and `skip_errors` is false. `source` is "web" or "cli" and is recorded in the audit row."""
    plan = preview(session, parsed)
    if plan.errors and not skip_errors:
        raise ImportRefused(plan)
    group_ids = groups_by_name(session)
    actor = actor_id
    for name in plan.new_groups:
        group_ids[name.lower()] = create_group(session, actor_id=actor, name=name, ip=ip).id
    joins = [{"member_id": u.member_id, "group_id": group_ids[g.lower()]} for u in plan.updates
             for g in u.add_groups]
    new_ids = invite_many(session, settings, actor_id=actor, ip=ip, org_name=org_name,
                          people=[(add.name, add.email) for add in plan.adds])
    for add in plan.adds:
        joins.extend({"member_id": new_ids[add.email], "group_id": group_ids[g.lower()]} for g in add.groups)
    renames = [{"id": u.member_id, "name": u.new_name} for u in plan.updates if u.new_name is not None]
    if renames:
        session.execute(update(Member), renames)
    if joins:
        session.execute(insert(GroupMembership), joins)
    result = ImportResult(added=len(plan.adds), updated=len(plan.updates), unchanged=len(plan.unchanged),
                          skipped=len(plan.errors), new_groups=plan.new_groups)
    summary = f"Imported {result.added:,} new, {result.updated:,} updated, {result.skipped:,} skipped"
    audit(session, "member.import", actor_id=actor_id, ip=ip, object_type="member",
          summary=summary + (" (command line)" if source == "cli" else ""), source=source,
          rows=plan.total, added=result.added, updated=result.updated, unchanged=result.unchanged,
          skipped=result.skipped, new_groups=list(plan.new_groups))
    return result


def _chunks(values: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _members_by_email(session: Session, emails: list[str]) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(emails):
        for member_id, email, name in session.execute(
            select(Member.id, Member.email, Member.name).where(Member.email.in_(chunk))
        ):
            found[email] = (member_id, name)
    return found


def _memberships(session: Session, member_ids: list[int]) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    for chunk in _chunks(member_ids):
        for member_id, group_id in session.execute(
            select(GroupMembership.member_id, GroupMembership.group_id)
            .where(GroupMembership.member_id.in_(chunk))
        ):
            found.setdefault(member_id, set()).add(group_id)
    return found


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"
