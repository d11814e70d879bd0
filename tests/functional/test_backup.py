"""`plenary backup` on a running site, then a restore into a fresh place, on SQLite and PostgreSQL.

While members vote and comment over HTTP, the real command (a subprocess) copies the database. The copy is
restored as the docs say (SQLite: the file copied into place; PostgreSQL: pg_restore into an empty database),
`plenary migrate` runs against it, and the app serves it: the members sign in, the proposal shows its comments,
and the snapshot is consistent (every ballot has its participation, the comment counts match the comments).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, make_url, select

from app.comments.models import Comment, CommentCount
from app.db import Database
from app.main import create_app
from app.members.auth import start_session
from app.settings import ROOT, Settings
from app.voting.models import Ballot, Participation
from tests.conftest import PASSWORD, PG_URL, Client, scratch_pg_database
from tests.factories import make_comment, make_member, make_proposal
from tests.live import send

WRITERS = 6
COMMENTS_EACH = 8  # under the comment rate limit (10 a minute)
WRITE_BOUND_S = 60.0  # the writers stop by themselves after this, whatever happens


def plenary(*args: str, database_url: str, var_dir: Path, extra_env: dict[str, str] | None = None,
            timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLENARY_")}
    env.update({"PLENARY_DATABASE_URL": database_url, "PLENARY_VAR_DIR": str(var_dir), "PLENARY_ENV": "test",
                "PLENARY_SECRET_KEY": "backup-test-" + "k" * 40, **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def seed(db: Database, settings: Settings) -> dict[str, object]:
    with db.begin() as s:
        author = make_member(s, email="ida@example.org", name="Ida Keeper", password=PASSWORD)
        voters = [make_member(s) for _ in range(WRITERS)]
        p = make_proposal(s, title="Replace the boiler?", state="open", secret=True)
        for i in range(3):
            make_comment(s, p, author, body=f"Before the backup, comment {i}.")
        tokens = [start_session(s, settings, m, ip="127.0.0.1", user_agent="test") for m in voters]
        return {"pid": p.id, "tokens": tokens}


def write_while(port: int, pid: int, tokens: list[str], stop: threading.Event) -> list[int]:
    """Each writer votes (and changes its vote) and comments until told to stop; returns the statuses."""
    statuses: list[int] = []
    lock = threading.Lock()

    def writer(token: str) -> None:
        deadline = time.monotonic() + WRITE_BOUND_S
        n = 0
        while not stop.is_set() and time.monotonic() < deadline and n < 200:
            n += 1
            got = [send(port, "POST", f"/proposals/{pid}/vote", token, {"choice": ("yes", "no")[n % 2]})[0]]
            if n <= COMMENTS_EACH:
                got.append(send(port, "POST", f"/proposals/{pid}/comments", token, {"body": f"Live, {n}."})[0])
            with lock:
                statuses.extend(got)

    threads = [threading.Thread(target=writer, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    stop.wait(WRITE_BOUND_S)
    stop.set()
    for t in threads:
        t.join(timeout=WRITE_BOUND_S)
    return statuses


def back_up_while_writing(live_server: int, db: Database, settings: Settings, output: Path) -> int:
    """Starts the writers, takes the backup once some writes are in, stops the writers; returns the proposal."""
    seeded = seed(db, settings)
    pid = int(seeded["pid"])  # type: ignore[call-overload]
    stop = threading.Event()
    result: dict[str, list[int]] = {}
    runner = threading.Thread(target=lambda: result.setdefault(
        "statuses", write_while(live_server, pid, seeded["tokens"], stop)))  # type: ignore[arg-type]
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while _count(db, Participation, pid) < WRITERS // 2:  # writes are going on
            assert time.monotonic() < deadline, "the writers wrote nothing"
            time.sleep(0.05)
        done = plenary("backup", "--output", str(output), database_url=settings.database_url,
                       var_dir=settings.var_dir)
        assert done.returncode == 0, done.stderr
        assert f"Backup written to {output}" in done.stdout
    finally:
        stop.set()
        runner.join(timeout=WRITE_BOUND_S + 10)
    statuses = result["statuses"]
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert output.stat().st_mode & 0o777 == 0o600
    return pid


def _count(db: Database, model: type, pid: int) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(model.proposal_id == pid)) or 0


def check_restored(url: str, var_dir: Path, pid: int) -> None:
    migrated = plenary("migrate", database_url=url, var_dir=var_dir)
    assert migrated.returncode == 0, migrated.stderr
    settings = Settings(database_url=url, base_url="http://testserver", secret_key="restored-" + "r" * 40,
                        env="test", trusted_hosts=("testserver",), run_worker=False, password_hash_rounds=1,
                        password_hash_memory_kib=8192, var_dir=var_dir).resolved()
    db = Database(url)
    try:
        with db.read() as s:
            ballots = s.scalar(select(func.count()).select_from(Ballot).where(Ballot.proposal_id == pid))
            voted = s.scalar(select(func.count()).select_from(Participation)
                             .where(Participation.proposal_id == pid))
            comments = s.scalar(select(func.count()).select_from(Comment).where(Comment.proposal_id == pid))
            counted = s.scalar(select(func.sum(CommentCount.n)).where(CommentCount.proposal_id == pid))
        # One snapshot: no ballot without its participation, no comment outside the counts (written together).
        assert ballots == voted and ballots > 0
        assert comments == counted and comments >= 3
        with Client(create_app(settings, db=db), base_url="http://testserver") as client:
            client.sign_in("ida@example.org")
            page = client.get(f"/proposals/{pid}")
            assert page.status_code == 200
            assert "Replace the boiler?" in page.text
            assert "Before the backup, comment 2." in page.text
            assert f"{voted} of " in page.text  # the turnout the snapshot holds
    finally:
        db.dispose()


# Tests of one backend's backup run on that backend only (PostgreSQL's when PLENARY_TEST_DATABASE_URL is set).
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"] if PG_URL else [], indirect=True)


@pytest.fixture
def pg_tools() -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.fail("pg_dump and pg_restore are needed (Debian: postgresql-client)")


@SQLITE_ONLY
def test_sqlite_backup_while_writing_and_restore(db, settings, org, live_server, tmp_path):
    output = tmp_path / "backups" / "site.db"
    pid = back_up_while_writing(live_server, db, settings, output)
    # Restore: with Plenary stopped, the file is copied into place.
    restored = tmp_path / "restored" / "plenary.db"
    restored.parent.mkdir()
    shutil.copyfile(output, restored)
    check_restored(f"sqlite:///{restored}", tmp_path / "restored" / "var", pid)


@pytest.fixture
def empty_pg_database(database_url: str) -> Iterator[str]:
    with scratch_pg_database("plenary_restore", database_url) as url:
        yield url


@POSTGRESQL_ONLY
def test_postgresql_backup_while_writing_and_restore(pg_tools, db, settings, org, live_server, tmp_path,
                                                     empty_pg_database):
    output = tmp_path / "site.dump"
    pid = back_up_while_writing(live_server, db, settings, output)
    target = make_url(empty_pg_database).set(drivername="postgresql").render_as_string(hide_password=False)
    restored = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", f"--dbname={target}", str(output)],
                              capture_output=True, text=True, timeout=120, check=False)
    assert restored.returncode == 0, restored.stderr
    check_restored(empty_pg_database, tmp_path / "var", pid)


def test_backup_refuses_to_overwrite_and_names_a_default_file(db, settings, org, tmp_path):
    existing = tmp_path / "taken.db"
    existing.write_text("keep me")
    done = plenary("backup", "--output", str(existing), database_url=settings.database_url, var_dir=tmp_path)
    assert done.returncode == 1 and "exists already" in done.stderr
    assert existing.read_text() == "keep me"

    done = plenary("backup", database_url=settings.database_url, var_dir=tmp_path / "var")
    assert done.returncode == 0, done.stderr
    made = list((tmp_path / "var" / "backups").iterdir())
    suffix = ".db" if settings.is_sqlite else ".dump"
    assert len(made) == 1 and made[0].name.startswith("plenary-") and made[0].suffix == suffix
    assert str(made[0]) in done.stdout


@POSTGRESQL_ONLY
def test_backup_says_what_is_missing(settings, tmp_path):
    done = plenary("backup", database_url=settings.database_url, var_dir=tmp_path,
                   extra_env={"PATH": str(tmp_path / "empty")})
    assert done.returncode == 1
    assert "pg_dump was not found" in done.stderr and "postgresql-client" in done.stderr
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
