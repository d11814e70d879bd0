"""`plenary backup`: a consistent copy of the database, taken while Plenary runs.

- SQLite: the online backup API (`sqlite3.Connection.backup`) in one step, which reads one snapshot (WAL lets
  the app go on writing meanwhile), checked with `PRAGMA quick_check` before it takes its final name.
- PostgreSQL: `pg_dump --format=custom` with the connection parameters of PLENARY_DATABASE_URL (the password
  passed in the environment, not on the command line, where other users could read it).

The file is written under a temporary name in the same folder and renamed when complete, so a backup that
fails half way never looks like a backup. It is readable by its owner only: it holds what the database holds
(sessions, and the ballot keys of secret ballots still open). Restoring is described in docs/OPERATIONS.md.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import make_url

from app.settings import Settings


class BackupError(Exception):
    """The backup could not be made; the message says why, for the operator."""


def default_path(settings: Settings, now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".db" if settings.is_sqlite else ".dump"
    return Path(settings.var_dir) / "backups" / f"plenary-{stamp}{suffix}"


def backup(settings: Settings, output: str | Path | None = None) -> Path:
    """Write a backup to `output` (default: var/backups/plenary-<UTC time>.db or .dump); returns its path."""
    path = Path(output) if output else default_path(settings)
    if path.exists():
        raise BackupError(f"{path} exists already; name another file (a backup never overwrites one).")
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    # Created empty, owner-only, before anything is written into it.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        if settings.is_sqlite:
            _sqlite(settings.database_url, partial)
        else:
            _postgresql(settings.database_url, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _sqlite(url: str, target: Path) -> None:
    source_path = make_url(url).database
    if not source_path or source_path == ":memory:" or not Path(source_path).is_file():
        raise BackupError(f"there is no SQLite database at {source_path!r} (PLENARY_DATABASE_URL)")
    source = sqlite3.connect(source_path, timeout=30)
    try:
        dest = sqlite3.connect(target)
        try:
            # pages=-1: the whole database in one step, from one read snapshot. Copied in several steps, a write
            # by the running app between two of them would restart the copy, again and again on a busy site.
            source.backup(dest, pages=-1)
            check = dest.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise BackupError(f"the copy failed its integrity check: {check}")
        finally:
            dest.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite could not copy the database: {exc}") from exc
    finally:
        source.close()


def _postgresql(url: str, target: Path) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump was not found on PATH. Install PostgreSQL's client tools, in a version at "
                          "least that of the server (Debian and Ubuntu: apt-get install postgresql-client).")
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    dbname = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    done = subprocess.run(  # noqa: S603 - a fixed program with our own arguments, no shell
        [pg_dump, "--format=custom", "--no-password", f"--file={target}", f"--dbname={dbname}"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
