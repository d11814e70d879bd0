"""SQLite's writer lock is shared by every Plenary process on one database file: a writer in this process waits on
it while another process holds a write transaction, and goes on once that one commits."""

from __future__ import annotations

import subprocess
import sys
import threading

from sqlalchemy import text

from app.db import Database, WriterLock

# Another process: open the database, hold a write transaction until told to go on (a line on stdin), commit.
HOLDER = """
import sys
from sqlalchemy import text
from app.db import Database, WriterLock
db = Database(sys.argv[1])
with db.begin() as s:
    s.execute(text("INSERT INTO t (who) VALUES ('other')"))
    print("holding", flush=True)
    sys.stdin.readline()
db.dispose()
print("done", flush=True)
"""

PROBE = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)")


def test_a_writer_waits_for_another_process_and_goes_on_when_it_commits(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    db = Database(url)
    with db.begin() as s:
        s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)"))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"
        assert not _free(tmp_path / "p.sqlite3-writer.lock"), "the other process's transaction holds the file lock"
        wrote = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                with db.begin() as s:
                    s.execute(text("INSERT INTO t (who) VALUES ('me')"))
                wrote.set()
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                errors.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        assert not wrote.wait(1.0), "wrote while another process held the write transaction"
        assert not errors
        holder.stdin.write("go\n")
        holder.stdin.flush()
        writer.join(10)
        assert wrote.is_set(), errors
        assert holder.stdout.readline().strip() == "done"
        assert holder.wait(10) == 0
        with db.read() as s:
            assert [r[0] for r in s.execute(text("SELECT who FROM t ORDER BY id"))] == ["other", "me"]
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()  # waits, and closes the pipes
        db.dispose()


def _free(path) -> bool:
    """Whether a third process can take the lock file at once."""
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, timeout=10)
    return probe.returncode == 0


def test_the_lock_is_reentrant_in_one_thread_and_free_after(tmp_path) -> None:
    lock = WriterLock(str(tmp_path / "w.lock"))
    try:
        with lock:
            with lock:  # a unit of work's helper that takes it again in the same thread does not block itself
                assert not _free(tmp_path / "w.lock")
            assert not _free(tmp_path / "w.lock"), "released by the inner block"
        assert _free(tmp_path / "w.lock")
    finally:
        lock.close()


def test_a_database_releases_its_lock_file_when_disposed(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    with db.begin() as s:
        s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    fd = db._write_lock._fd
    assert fd is not None
    db.dispose()
    assert db._write_lock._fd is None
