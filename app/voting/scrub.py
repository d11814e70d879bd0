"""After a close commits: make the deleted ballot key and ballots leave the database files, not just the tables.

Deleting a row does not erase its bytes. Measured on PostgreSQL 15 with pageinspect: the deleted row version
stays in its page until vacuumed, and a plain VACUUM only marks the space free: the bytes of the last row on a
page stayed readable in the raw page (and in the index page) after it. So on PostgreSQL the key table and the
ballots table are rewritten (`VACUUM (FULL)`), which copies the live rows into new files and unlinks the old
ones; both tables are small (one key per open proposal, the ballots of open proposals only). VACUUM cannot run
in a transaction, so this uses an AUTOCOMMIT connection, after the closing transaction has committed.
A row version that a transaction still open might see is copied too; VACUUM VERBOSE reports it, and the
rewrite is tried again a little later.

On SQLite every connection has `secure_delete` on (app/db.py), so deleted content is overwritten with zeros in
its page; the old page images stay in the write-ahead log until a checkpoint copies the new ones into the
database file, so this checkpoints and truncates the WAL (`wal_checkpoint(TRUNCATE)`).

What this cannot reach (PostgreSQL's own WAL segments and archives, replicas, backups, filesystem snapshots and
the freed blocks of unlinked files) is listed in docs/SECRET_BALLOTS.md.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from app.db import Database

log = logging.getLogger("plenary.voting")

TABLES = ("ballot_keys", "ballots")
ATTEMPTS = 5
LOCK_TIMEOUT = "10s"  # a rewrite waiting for its lock holds up votes meanwhile; better to try again later
_KEPT = re.compile(r"(\d+) dead row versions cannot be removed yet")


def erase_residue(db: Database, *, attempts: int = ATTEMPTS, wait_s: float = 0.5) -> bool:
    """Rewrite (PostgreSQL) or checkpoint (SQLite) so that deleted keys and ballots are gone from the files.
    Returns whether that was done completely; failures are logged, never raised (the close has happened)."""
    for attempt in range(1, attempts + 1):
        try:
            done = _postgresql(db) if db.dialect == "postgresql" else _sqlite(db)
        except Exception:
            log.exception("erasing closed ballots' residue failed (attempt %s of %s)", attempt, attempts)
            done = False
        if done:
            return True
        if attempt < attempts:
            time.sleep(wait_s * 2 ** (attempt - 1))
    log.error("deleted ballot keys or ballots may still be in the database files: %s", ", ".join(TABLES))
    return False


def _postgresql(db: Database) -> bool:
    kept = 0

    def notice(diag: Any) -> None:
        nonlocal kept
        for text in (diag.message_primary or "", diag.message_detail or ""):
            kept += sum(int(n) for n in _KEPT.findall(text))

    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        raw = conn.connection.dbapi_connection
        raw.add_notice_handler(notice)
        try:
            conn.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            for table in TABLES:
                conn.exec_driver_sql(f"VACUUM (FULL, VERBOSE) {table}")
        finally:
            conn.exec_driver_sql("RESET lock_timeout")
            raw.remove_notice_handler(notice)
    if kept:
        log.info("%s deleted row versions are still visible to an open transaction; trying again", kept)
    return kept == 0


def _sqlite(db: Database) -> bool:
    with db.engine.connect() as conn:
        # The raw connection runs outside any transaction (a checkpoint inside one cannot finish).
        raw = conn.connection.dbapi_connection
        busy, _log_frames, _copied = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return busy == 0
