"""Live updates across processes, and streams that end cleanly when their server stops.

Two `plenary serve` processes on one database, as behind a load balancer: a comment posted through one reaches
a stream opened on the other, and a ballot cast through the second updates a stream on the first (on
PostgreSQL a NOTIFY in the writing transaction and one LISTEN per process; on SQLite a `live_signals` row in
the writing transaction, read by each process). A separate `plenary worker` closing a proposal at its
deadline ends the streams open on a web process. And a server stopped with SIGTERM while a
stream is open ends the stream and exits, on SQLite and on PostgreSQL, instead of waiting for the browser.
"""

from __future__ import annotations

import datetime as dt
import signal
from pathlib import Path
from typing import Any

import pytest

from app.db import Database
from app.members.auth import start_session
from app.members.models import Organization
from app.settings import Settings
from tests.cluster import cluster, fresh_postgresql
from tests.factories import make_member, make_proposal
from tests.live import send
from tests.sse import EventStream

SESSION_SETTINGS = Settings(base_url="http://127.0.0.1", secret_key="s" * 40, env="test")


def seed(url: str, *, members: int = 2, **proposal: object) -> tuple[int, list[str]]:
    """An organization, signed-in members and an open proposal; returns its id and the session tokens."""
    db = Database(url)
    try:
        with db.begin() as s:
            s.add(Organization(id=1, name="Two Rivers Union", time_zone="UTC"))
            people = [make_member(s) for _ in range(members)]
            pid = make_proposal(s, state="open", **proposal).id  # type: ignore[arg-type]
            tokens = [start_session(s, SESSION_SETTINGS, m, ip="127.0.0.1", user_agent="test") for m in people]
        return pid, tokens
    finally:
        db.dispose()


def _database(tmp_path: Path, backend: str) -> Any:
    return fresh_postgresql() if backend == "postgresql" else _sqlite(tmp_path)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_comment_through_one_web_process_reaches_a_stream_on_the_other(tmp_path: Path, backend: str) -> None:
    with _database(tmp_path, backend) as url, cluster(tmp_path, url) as c:
        pid, (ann, bob) = seed(url, secret=False, visibility="live")
        one, two = c.serve("web-one"), c.serve("web-two")
        with EventStream(two.port, f"/proposals/{pid}/events", session_token=ann) as on_two, \
                EventStream(one.port, f"/proposals/{pid}/events", session_token=ann) as on_one:
            on_two.next_block()
            on_one.next_block()
            status, _ = send(one.port, "POST", f"/proposals/{pid}/comments", bob, {"body": "Through the first."})
            assert status == 200
            assert on_two.wait_for("comment") == ["comment"]
            assert on_one.wait_for("comment") == ["comment"]  # and on the process that wrote it

            status, _ = send(two.port, "POST", f"/proposals/{pid}/vote", bob, {"choice": "yes"})
            assert status == 200
            assert on_one.wait_for("tally") == ["tally"]
            # What the stream on the first process announced, the second serves: one database.
            status, fragment = send(two.port, "GET", f"/proposals/{pid}/tally", ann)
            assert status == 200 and "Tally so far" in fragment


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_proposal_closed_by_a_separate_worker_ends_the_streams_on_a_web_process(tmp_path: Path,
                                                                                  backend: str) -> None:
    with _database(tmp_path, backend) as url, cluster(tmp_path, url) as c:
        pid, (ann, _bob) = seed(url, secret=False, visibility="live", closes_in=dt.timedelta(seconds=2))
        web = c.serve("web")  # no worker of its own: the deadline is the separate worker's to keep
        with EventStream(web.port, f"/proposals/{pid}/events", session_token=ann) as stream:
            stream.next_block()
            c.worker("worker", test_jobs=False)
            assert "closed" in stream.wait_for("closed", timeout_s=30)
            assert stream.ended.wait(timeout=10), "the stream went on after the proposal closed"
        status, page = send(web.port, "GET", f"/proposals/{pid}", ann)
        assert status == 200 and "Voting closed" in page


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_stopping_server_ends_its_open_streams(tmp_path: Path, backend: str) -> None:
    with _database(tmp_path, backend) as url, cluster(tmp_path, url) as c:
        pid, (ann, _bob) = seed(url)
        web = c.serve("web", run_worker=True)
        with EventStream(web.port, f"/proposals/{pid}/events", session_token=ann) as stream:
            stream.next_block()
            # SIGTERM. uvicorn shuts down, then ends itself with the signal it caught, as it should (-15); had
            # it waited for the stream, stop() would have killed it after its bound (-9).
            assert web.stop() in (0, -signal.SIGTERM), web.log()
            assert stream.ended.wait(timeout=10), "the stream outlived its server"
        log = web.log()
        assert "Traceback" not in log and "ERROR" not in log, log


class _sqlite:
    """A migrated SQLite file, as a context manager like fresh_postgresql()."""

    def __init__(self, tmp: Path) -> None:
        self.url = f"sqlite:///{tmp / 'plenary.db'}"

    def __enter__(self) -> str:
        from alembic import command

        from tests.conftest import alembic_config

        command.upgrade(alembic_config(self.url), "head")
        return self.url

    def __exit__(self, *exc: object) -> None:
        return None
