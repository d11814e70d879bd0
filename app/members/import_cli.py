"""`plenary import-members FILE.csv`: the CSV import for scripts, with the same rules and preview as the page.

Exit codes: 0 the import ran (or, with --dry-run, would run); 1 rows have errors and nothing was written (pass
--skip-errors to import the good rows); 2 the file cannot be used (missing, not UTF-8, no header, ...).
The audit row names the first active admin as the actor (none if there is no admin) and says "command line".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import Database
from app.members.importing import ImportFileError, ImportRefused, Preview, apply, parse_csv, preview
from app.members.models import Member, Role, Status
from app.members.services import MemberError, get_org
from app.settings import Settings

OK, ROW_ERRORS, FILE_PROBLEM = 0, 1, 2


def run_import(path: str, *, dry_run: bool, skip_errors: bool, settings: Settings | None = None,
               out: TextIO | None = None, err: TextIO | None = None, db: Database | None = None) -> int:
    """Preview, then (unless `dry_run`) import the file in one transaction. Returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        print(f"Cannot read {path}: {exc.strerror or exc}", file=err)
        return FILE_PROBLEM
    try:
        parsed = parse_csv(data)
    except ImportFileError as exc:
        print(f"{path}: {exc}", file=err)
        return FILE_PROBLEM
    settings = settings or Settings.from_env()
    database = db or Database(settings.database_url)
    try:
        if dry_run:
            with database.read() as s:
                plan = preview(s, parsed)
            print(describe(plan, path), file=out)
            if plan.errors and not skip_errors:
                print(f"Dry run: nothing was written. {_refusal(plan)}", file=out)
                return ROW_ERRORS
            print("Dry run: nothing was written.", file=out)
            return OK
        try:
            with database.begin() as s:
                plan = preview(s, parsed)
                org = get_org(s)
                result = apply(s, settings, parsed, actor_id=_first_admin(s), ip="",
                               org_name=org.name if org else "Plenary", skip_errors=skip_errors, source="cli")
        except ImportRefused as exc:
            print(describe(exc.preview, path), file=out)
            print(f"Nothing was written. {_refusal(exc.preview)}", file=out)
            return ROW_ERRORS
        except MemberError as exc:
            print(f"Nothing was written: {exc}", file=err)
            return ROW_ERRORS
        print(describe(plan, path), file=out)
        print(result.message, file=out)
        return OK
    finally:
        if db is None:
            database.dispose()


def describe(plan: Preview, name: str = "") -> str:
    """The preview as plain text: the counts, the new groups, then every row with an error."""
    lines = [f"{name + ': ' if name else ''}{plan.total:,} rows",
             f"  to add:      {len(plan.adds):,}",
             f"  to update:   {len(plan.updates):,}",
             f"  unchanged:   {len(plan.unchanged):,}",
             f"  with errors: {len(plan.errors):,}"]
    if plan.new_groups:
        lines.append(f"  new groups:  {', '.join(plan.new_groups)}")
    if plan.errors:
        lines.append("Rows with errors:")
        lines.extend(f"  line {row.line}: {' '.join(row.errors)}" for row in plan.errors)
    return "\n".join(lines)


def _refusal(plan: Preview) -> str:
    bad = f"{len(plan.errors):,} row has" if len(plan.errors) == 1 else f"{len(plan.errors):,} rows have"
    return (f"{bad} errors; fix them, or run again with --skip-errors to import the {len(plan.good):,} "
            "good rows.")


def _first_admin(session: Session) -> int | None:
    return session.scalar(select(Member.id).where(Member.role == Role.ADMIN, Member.status == Status.ACTIVE)
                          .order_by(Member.id).limit(1))
