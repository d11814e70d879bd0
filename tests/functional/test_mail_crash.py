"""A worker killed (SIGKILL) after the SMTP server accepted a message and before the worker recorded it.

`plenary worker` runs as a separate process against a real aiosmtpd server. The server keeps the 5th message
and holds its "250" answer; the test kills the worker while the answer is held, so the server has the message
and the worker never learns it. A second worker then finishes the outbox.

What the design promises (docs/ARCHITECTURE.md, "Delivery guarantee"), and what is checked here:
- every message recorded as sent before the kill stays recorded and is never sent again (each is recorded
  right after its own 250, not at the end of the batch);
- every member receives their message;
- with one connection, the one message in flight at the kill is the only one sent twice, and both copies
  carry the same Message-ID, so a receiving system that drops a Message-ID it has seen shows it once;
- with several connections, at most one message per connection is sent twice, each with its one Message-ID.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.db import Database, utcnow
from app.mail.models import OutboxMessage
from app.mail.outbox import enqueue
from app.mail.sink import SmtpSink
from app.settings import Settings

N = 12
HELD = 5  # the server keeps this message (1-based, in sending order) and holds its answer


def worker_command() -> list[str]:
    script = Path(sys.executable).with_name("plenary")
    if script.exists():
        return [str(script), "worker", "--name", "crash-test"]
    return [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main(sys.argv[1:]))",
            "worker", "--name", "crash-test"]


@pytest.fixture
def start_worker(settings: Settings, smtp_sink: SmtpSink, tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, connections: int = 1) -> subprocess.Popen[bytes]:
        env = {**os.environ,
               "PLENARY_DATABASE_URL": settings.database_url,
               "PLENARY_BASE_URL": settings.base_url,
               "PLENARY_SECRET_KEY": settings.secret_key,
               "PLENARY_ENV": "test",
               "PLENARY_SMTP_URL": f"smtp://127.0.0.1:{smtp_sink.port}?timeout=10&connections={connections}",
               "PLENARY_MAIL_FROM": "Riverside Tenants <votes@example.org>",
               "PLENARY_VAR_DIR": str(tmp_path / "var"),
               "PLENARY_LOG_LEVEL": "INFO"}
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(worker_command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=Path(__file__).resolve().parents[2])
        log.close()
        started.append(proc)
        return proc

    yield start
    for proc in started:  # only the processes this test started, by their own handle
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def rows(db: Database) -> list[OutboxMessage]:
    with db.read() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_kill_between_accept_and_record_resends_only_the_message_in_flight(
        settings: Settings, db: Database, smtp_sink: SmtpSink, start_worker: object, tmp_path: Path) -> None:
    with db.begin() as s:
        for i in range(N):
            enqueue(s, settings, kind="signin_link", to_addr=f"member{i}@example.org", to_name=f"Member {i}",
                    dedupe=f"crash:{i}", context={"name": f"Member {i}", "minutes": 15,
                                                  "link": f"{settings.base_url}/signin/link/token{i:04d}x"})
    smtp_sink.hold(HELD, stored=True)

    first = start_worker("first", connections=1)  # type: ignore[operator]
    try:
        smtp_sink.wait_held(timeout=60)
    except TimeoutError:
        pytest.fail("the worker never reached the held message:\n" + (tmp_path / "first.log").read_text())
    os.kill(first.pid, signal.SIGKILL)  # the server has the message; the worker has no answer yet
    assert first.wait(timeout=10) == -signal.SIGKILL
    smtp_sink.release()  # the held "250" now goes to a closed connection

    received = smtp_sink.wait_for(HELD)
    assert len(received) == HELD
    in_flight = received[-1].message_id
    at_kill = rows(db)
    # Each message was recorded after its own 250: the four before the held one are sent, with their time.
    assert [r.status for r in at_kill[:HELD - 1]] == ["sent"] * (HELD - 1)
    assert all(r.sent_at is not None for r in at_kill[:HELD - 1])
    assert {r.message_id for r in at_kill if r.status == "sent"} == {m.message_id for m in received[:-1]}
    # The held one, and the rest of the claimed batch, are still leased to the dead worker.
    assert [r.status for r in at_kill[HELD - 1:]] == ["sending"] * (N - HELD + 1)
    assert next(r for r in at_kill if r.message_id == in_flight).status == "sending"

    # The dead worker's lease (five minutes) runs out: moved in the database rather than waited for.
    with db.begin() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.status == "sending")
                  .values(locked_until=utcnow() - dt.timedelta(seconds=1)))
    second = start_worker("second")  # type: ignore[operator]
    wait_until(lambda: all(r.status == "sent" for r in rows(db)), 60,
               "every message to be sent after the restart")
    second.send_signal(signal.SIGINT)
    second.wait(timeout=10)

    got = smtp_sink.wait_for(N + 1)
    ids = Counter(m.message_id for m in got)
    final = rows(db)
    assert set(ids) == {r.message_id for r in final}  # nothing lost
    assert len(got) == N + 1  # exactly one message more than there are members...
    assert [mid for mid, n in ids.items() if n > 1] == [in_flight]  # ...the one in flight at the kill
    assert ids[in_flight] == 2
    recipients = Counter(r for m in got for r in m.rcpt_tos)
    assert set(recipients) == {f"member{i}@example.org" for i in range(N)}
    copies = [m for m in got if m.message_id == in_flight]
    assert copies[0].message["Subject"] == copies[1].message["Subject"]
    assert copies[0].message.get_body(("plain",)).get_content() == \
        copies[1].message.get_body(("plain",)).get_content()
    # Messages recorded before the kill were never tried again.
    before = {r.id: r for r in at_kill if r.status == "sent"}
    assert all(r.attempts == 1 and r.sent_at == before[r.id].sent_at for r in final if r.id in before)


def test_kill_with_several_connections_resends_at_most_one_message_per_connection(
        settings: Settings, db: Database, smtp_sink: SmtpSink, start_worker: object, tmp_path: Path) -> None:
    connections, n = 4, 40
    with db.begin() as s:
        for i in range(n):
            enqueue(s, settings, kind="signin_link", to_addr=f"member{i}@example.org", to_name=f"Member {i}",
                    dedupe=f"crash:{i}", context={"name": f"Member {i}", "minutes": 15,
                                                  "link": f"{settings.base_url}/signin/link/token{i:04d}x"})
    smtp_sink.hold(HELD, stored=True)
    first = start_worker("first", connections=connections)  # type: ignore[operator]
    try:
        smtp_sink.wait_held(timeout=60)
    except TimeoutError:
        pytest.fail("the worker never reached the held message:\n" + (tmp_path / "first.log").read_text())
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    smtp_sink.release()
    at_kill = {r.id: r for r in rows(db)}
    received_at_kill = len(smtp_sink.messages)

    with db.begin() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.status == "sending")
                  .values(locked_until=utcnow() - dt.timedelta(seconds=1)))
    second = start_worker("second", connections=connections)  # type: ignore[operator]
    wait_until(lambda: all(r.status == "sent" for r in rows(db)), 60, "every message to be sent after the restart")
    second.send_signal(signal.SIGINT)
    second.wait(timeout=10)

    final = rows(db)
    got = smtp_sink.wait_for(n)
    ids = Counter(m.message_id for m in got)
    assert set(ids) == {r.message_id for r in final}  # nothing lost
    assert set(r for m in got for r in m.rcpt_tos) == {f"member{i}@example.org" for i in range(n)}
    twice = [mid for mid, count in ids.items() if count > 1]
    assert all(ids[mid] == 2 for mid in twice)
    assert len(twice) <= connections, (len(twice), received_at_kill)  # at most the messages in flight at the kill
    recorded_before = {r.message_id for r in at_kill.values() if r.status == "sent"}
    assert not recorded_before & set(twice)  # what was recorded as sent was never sent again
    assert all(r.attempts == 1 for r in final if r.id in at_kill and at_kill[r.id].status == "sent")
