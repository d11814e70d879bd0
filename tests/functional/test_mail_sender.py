"""The outbox through a real SMTP server (aiosmtpd sink): delivery, retries, failures, leases, concurrency.

Backoff is compressed (base 10 ms, cap 50 ms) so retries come quickly; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import email
import email.policy
import time
from collections import Counter
from collections.abc import Coroutine
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, update

from app.db import Database, utcnow
from app.jobs.services import backoff_delay
from app.mail.models import OutboxMessage
from app.mail.outbox import enqueue
from app.mail.sender import EXPIRED_ERROR, MessageBuilder, OutboxSender, drain_once
from app.mail.sink import SmtpSink
from app.settings import Settings

FAST = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05}
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own, so it works whatever loop the calling thread may be running."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


@pytest.fixture
def mail_settings(settings: Settings, smtp_sink: SmtpSink) -> Settings:
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}?timeout=5",
                               mail_from="Riverside Tenants <votes@example.org>")


def add(db: Database, settings: Settings, n: int = 1, *, to_addr: str = "", to_name: str = "",
        headers: dict[str, str] | None = None) -> list[str]:
    addresses = []
    with db.begin() as s:
        for i in range(n):
            addr = to_addr or f"member{i}@example.org"
            assert enqueue(s, settings, kind="signin_link", to_addr=addr, to_name=to_name or f"Member {i}",
                           dedupe=f"test:{i}", headers=headers,
                           context={"name": f"Member {i}", "minutes": 15, "org_name": "Riverside Tenants",
                                    "link": f"{settings.base_url}/signin/link/token{i:04d}abcdefghijklmnop"})
            addresses.append(addr)
    return addresses


def rows(db: Database) -> list[OutboxMessage]:
    with db.read() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def drain(settings: Settings, db: Database, **kw: object) -> int:
    return run(drain_once(settings, db, **{**FAST, **kw}))  # type: ignore[arg-type]


def drain_until_settled(settings: Settings, db: Database, timeout: float = 10.0, **kw: object) -> None:
    """Drain until nothing is pending or sending any more (retries are due within the 50 ms cap)."""
    deadline = time.monotonic() + timeout
    while any(r.status in ("pending", "sending") for r in rows(db)):
        assert time.monotonic() < deadline, [(r.status, r.attempts, r.last_error) for r in rows(db)]
        if drain(settings, db, **kw) == 0:
            time.sleep(0.02)


def test_message_reaches_the_sink_whole(mail_settings: Settings, db: Database, smtp_sink: SmtpSink) -> None:
    add(db, mail_settings, to_addr="zoe@example.org", to_name="Zoë Example",
        headers={"Auto-Submitted": "auto-generated"})
    before = utcnow().replace(microsecond=0)
    assert drain(mail_settings, db) == 1

    [got] = smtp_sink.wait_for(1)
    [row] = rows(db)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert row.sent_at is not None and row.locked_until is None
    assert got.envelope_from == "votes@example.org"
    assert got.rcpt_tos == ["zoe@example.org"]
    m = got.message
    assert m["From"] == "Riverside Tenants <votes@example.org>"
    assert m["To"].addresses[0].display_name == "Zoë Example"
    assert m["To"].addresses[0].addr_spec == "zoe@example.org"
    assert m["Subject"] == "Sign in to Riverside Tenants"
    assert m["Message-ID"] == row.message_id
    assert m["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(m["Date"]) >= before
    assert m["Date"].endswith("GMT") or m["Date"].endswith("+0000")
    assert m.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in m.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    link = "http://testserver/signin/link/token0000abcdefghijklmnop"
    text = m.get_body(("plain",)).get_content()
    assert link in text.splitlines()  # the link on a line of its own
    assert f'href="{link}"' in m.get_body(("html",)).get_content()
    assert b"\r\n" in got.raw and b"\r\n\r\n" in got.raw


def test_second_enqueue_with_the_same_dedupe_is_a_no_op(settings: Settings, db: Database) -> None:
    with db.begin() as s:
        ctx = {"name": "Mia", "minutes": 15, "link": "http://testserver/x"}
        kw = {"kind": "signin_link", "context": ctx}
        assert enqueue(s, settings, to_addr="mia@example.org", dedupe="t:1", **kw)  # type: ignore[arg-type]
        assert not enqueue(s, settings, to_addr="MIA@example.org", dedupe="t:1", **kw)  # type: ignore[arg-type]
    with db.begin() as s:
        assert not enqueue(s, settings, to_addr="mia@example.org", dedupe="t:1", **kw)  # type: ignore[arg-type]
        assert enqueue(s, settings, to_addr="mia@example.org", dedupe="t:2", **kw)  # type: ignore[arg-type]
    assert len(rows(db)) == 2


def test_a_rolled_back_transaction_leaves_no_message(settings: Settings, db: Database) -> None:
    with pytest.raises(RuntimeError), db.begin() as s:
        enqueue(s, settings, kind="signin_link", to_addr="mia@example.org", dedupe="t:1",
                context={"name": "Mia", "minutes": 15, "link": "http://testserver/x"})
        raise RuntimeError("the action failed after the enqueue")
    assert rows(db) == []


@pytest.mark.parametrize("fault", ["data", "rcpt"])
def test_temporary_failure_is_retried(fault: str, mail_settings: Settings, db: Database,
                                      smtp_sink: SmtpSink) -> None:
    [addr] = add(db, mail_settings)
    if fault == "data":
        smtp_sink.fail_next = 1
    else:
        smtp_sink.reject_rcpt[addr] = 451
    assert drain(mail_settings, db) == 1
    [row] = rows(db)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("451")
    assert row.next_attempt_at <= utcnow() + dt.timedelta(seconds=FAST["backoff_cap_s"])
    assert smtp_sink.messages == []

    smtp_sink.reject_rcpt.clear()
    drain_until_settled(mail_settings, db)
    [row] = rows(db)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert [m.message_id for m in smtp_sink.messages] == [row.message_id]


def test_permanent_failure_is_tried_exactly_once(mail_settings: Settings, db: Database,
                                                 smtp_sink: SmtpSink) -> None:
    addresses = add(db, mail_settings, 3)
    smtp_sink.reject_rcpt[addresses[1]] = 550
    drain_until_settled(mail_settings, db)
    by_addr = {r.to_addr: r for r in rows(db)}
    bad = by_addr[addresses[1]]
    assert (bad.status, bad.attempts) == ("failed", 1)
    assert bad.last_error.startswith("550")
    assert bad.sent_at is None
    assert all(by_addr[a].status == "sent" for a in (addresses[0], addresses[2]))
    assert drain(mail_settings, db) == 0
    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == [addresses[0], addresses[2]]


def test_gives_up_after_max_attempts(mail_settings: Settings, db: Database, smtp_sink: SmtpSink) -> None:
    [addr] = add(db, mail_settings)
    smtp_sink.reject_rcpt[addr] = 451
    drain_until_settled(mail_settings, db, max_attempts=3)
    [row] = rows(db)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error.startswith("451")


def test_server_down_then_back(mail_settings: Settings, db: Database, smtp_sink: SmtpSink) -> None:
    add(db, mail_settings, 5)
    port = smtp_sink.port
    smtp_sink.stop()
    assert drain(mail_settings, db) == 5
    for row in rows(db):
        assert (row.status, row.attempts) == ("pending", 1)
        assert "cannot connect" in row.last_error
        assert row.sent_at is None

    smtp_sink.start("127.0.0.1", port)
    drain_until_settled(mail_settings, db)
    ids = Counter(m.message_id for m in smtp_sink.messages)
    assert len(ids) == 5 and set(ids.values()) == {1}  # each delivered once, none lost
    assert {r.message_id for r in rows(db)} == set(ids)
    assert all((r.status, r.attempts) == ("sent", 2) for r in rows(db))


def test_poison_row_fails_alone(mail_settings: Settings, db: Database, smtp_sink: SmtpSink) -> None:
    add(db, mail_settings, 2)
    with db.begin() as s:  # written directly, so enqueue's own cleaning is bypassed
        s.add(OutboxMessage(dedupe_key="poison:1", kind="signin_link", to_addr="eve@example.org",
                            to_name="Eve\r\nBcc: victim@example.org", subject="Hello", text_body="x",
                            html_body="<p>x</p>", headers={}, message_id="<poison.1@testserver>"))
        s.add(OutboxMessage(dedupe_key="poison:2", kind="signin_link", to_addr="eve@example.org",
                            subject="Hi\nX-Injected: yes", text_body="x", html_body="x", headers={},
                            message_id="<poison.2@testserver>"))
    add(db, mail_settings, 1, to_addr="last@example.org")

    assert drain(mail_settings, db) == 5
    by_key = {r.dedupe_key: r for r in rows(db)}
    for key in ("poison:1", "poison:2"):
        assert by_key[key].status == "failed"
        assert by_key[key].attempts == 1
        assert "line break" in by_key[key].last_error
    assert sorted(r.status for r in rows(db)) == ["failed", "failed", "sent", "sent", "sent"]
    assert len(smtp_sink.messages) == 3
    for m in smtp_sink.messages:
        assert b"victim" not in m.raw and b"X-Injected" not in m.raw
        assert m.message["Bcc"] is None


@pytest.mark.parametrize("evil", ["\r\nBcc: victim@example.org", "\nBcc: victim@example.org",
                                  "\u2028Bcc: victim@example.org", "\x85Bcc: victim@example.org"])
def test_line_breaks_through_enqueue_are_cleaned_not_injected(evil: str, mail_settings: Settings, db: Database,
                                                              smtp_sink: SmtpSink) -> None:
    with db.begin() as s:
        enqueue(s, mail_settings, kind="signin_link", to_addr="eve@example.org", to_name="Eve" + evil,
                dedupe="t:1", context={"name": "Eve" + evil, "minutes": 15, "org_name": "Org" + evil,
                                       "link": "http://testserver/signin/link/abc"})
    assert drain(mail_settings, db) == 1
    [row] = rows(db)
    assert row.status == "sent", row.last_error
    [got] = smtp_sink.wait_for(1)
    assert got.rcpt_tos == ["eve@example.org"]
    assert got.message["Bcc"] is None
    assert got.message["To"].addresses[0].addr_spec == "eve@example.org"
    assert got.message["Subject"] == "Sign in to Org Bcc: victim@example.org"


def test_expired_lease_is_picked_up_again(mail_settings: Settings, db: Database, smtp_sink: SmtpSink) -> None:
    add(db, mail_settings, 2)
    first, second = rows(db)
    now = utcnow()
    with db.begin() as s:  # two senders that claimed a message each: one died long ago, one is still at work
        s.execute(update(OutboxMessage).where(OutboxMessage.id == first.id)
                  .values(status="sending", attempts=1, locked_until=now - dt.timedelta(minutes=1)))
        s.execute(update(OutboxMessage).where(OutboxMessage.id == second.id)
                  .values(status="sending", attempts=1, locked_until=now + dt.timedelta(minutes=5)))
    assert drain(mail_settings, db) == 1
    first, second = rows(db)
    assert (first.status, first.attempts) == ("sent", 2)
    assert second.status == "sending"
    assert [m.message_id for m in smtp_sink.messages] == [first.message_id]


def test_stale_message_expires_instead_of_arriving_late(mail_settings: Settings, db: Database,
                                                        smtp_sink: SmtpSink) -> None:
    add(db, mail_settings, 2)
    old, fresh = rows(db)
    with db.begin() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.id == old.id)
                  .values(created_at=utcnow() - dt.timedelta(days=2, minutes=1)))
    assert drain(mail_settings, db) == 2
    old, fresh = rows(db)
    assert (old.status, old.last_error, old.sent_at) == ("failed", EXPIRED_ERROR, None)
    assert fresh.status == "sent"
    assert [m.message_id for m in smtp_sink.messages] == [fresh.message_id]


def test_concurrent_drains_deliver_each_message_once(mail_settings: Settings, db: Database,
                                                     smtp_sink: SmtpSink) -> None:
    add(db, mail_settings, 30)

    async def two_senders() -> list[int]:
        return list(await asyncio.gather(drain_once(mail_settings, db, batch=7, **FAST),  # type: ignore[arg-type]
                                         drain_once(mail_settings, db, batch=7, **FAST)))  # type: ignore[arg-type]

    deadline = time.monotonic() + 15
    handled = 0
    while any(r.status != "sent" for r in rows(db)):
        assert time.monotonic() < deadline
        handled += sum(run(two_senders()))
    ids = Counter(m.message_id for m in smtp_sink.messages)
    assert len(ids) == 30 and set(ids.values()) == {1}
    assert handled == 30
    assert all(r.attempts == 1 for r in rows(db))


@pytest.mark.parametrize("connections", [1, 3])
def test_one_sender_reuses_its_connections_across_batches(connections: int, mail_settings: Settings,
                                                          db: Database, smtp_sink: SmtpSink) -> None:
    add(db, mail_settings, 7)

    async def scenario() -> tuple[int, bool]:
        sender = OutboxSender(mail_settings, db, batch=3, connections=connections, **FAST)  # type: ignore[arg-type]
        try:
            total = await sender.drain_once()
            first = list(sender._clients)
            for _ in range(3):
                total += await sender.drain_once()
            return total, all(a is b for a, b in zip(first, sender._clients, strict=True))
        finally:
            await sender.aclose()

    total, reused = run(scenario())
    assert total == 7 and reused
    ids = Counter(m.message_id for m in smtp_sink.messages)
    assert len(ids) == 7 and set(ids.values()) == {1}
    with db.read() as s:
        sent = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")
        assert s.scalar(sent) == 7


def test_drain_needs_an_smtp_server(settings: Settings, db: Database) -> None:
    with pytest.raises(ValueError, match="PLENARY_SMTP_URL"):
        drain(settings, db)


# --- building messages (no server needed) -------------------------------------------------------------------

def _row(**kw: object) -> SimpleNamespace:
    base = {"to_addr": "ada@example.org", "to_name": "Ada", "subject": "Hello", "text_body": "Hi\n",
            "html_body": "<p>Hi</p>\n", "headers": {}, "message_id": "<m.1@example.org>"}
    return SimpleNamespace(**{**base, **kw})


def test_builder_picks_a_safe_transfer_encoding() -> None:
    b = MessageBuilder("Plenary <plenary@example.org>")

    def parts(row: SimpleNamespace) -> list[Any]:
        return list(email.message_from_bytes(b.build(row), policy=email.policy.default).iter_parts())

    plain, html = parts(_row(text_body="plain ascii", html_body="<p>Grüße</p>"))
    assert plain["Content-Transfer-Encoding"] == "7bit"
    # Not ASCII: quoted-printable, which every server takes (8bit needs the server's 8BITMIME).
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert html.get_content() == "<p>Grüße</p>\r\n"  # as on the wire: CRLF
    long_line = "x" * 2000
    text, _ = parts(_row(text_body=long_line))
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_content().rstrip("\r\n") == long_line
    assert max(len(line) for line in text.as_string().splitlines()) <= 998


@pytest.mark.parametrize("row", [
    _row(to_name="Eve\r\nBcc: x@example.org"),
    _row(to_name="Eve\nBcc: x@example.org"),
    _row(subject="Hi\u2028Bcc: x@example.org"),
    _row(subject="trailing newline\n"),
    _row(to_addr="ada@example.org\r\nBcc: x@example.org"),
    _row(message_id="<a@b>\r\nBcc: x@example.org"),
    _row(headers={"X-Note": "a\r\nBcc: x@example.org"}),
    _row(headers={"Bcc": "x@example.org"}),
    _row(headers={"Bad Name": "x"}),
])
def test_builder_refuses_header_injection(row: SimpleNamespace) -> None:
    with pytest.raises(ValueError):
        MessageBuilder("Plenary <plenary@example.org>").build(row)


def test_backoff_is_full_jitter_within_the_cap() -> None:
    for attempts in range(1, 12):
        ceiling = min(3600.0, 30.0 * 2 ** (attempts - 1))
        delays = [backoff_delay(attempts, 30.0, 3600.0) for _ in range(50)]
        assert all(0.0 <= d <= ceiling for d in delays)
    assert backoff_delay(3, 0.0, 10.0) == 0.0


def test_a_server_that_stalls_times_out_and_is_retried(mail_settings: Settings, db: Database,
                                                       smtp_sink: SmtpSink) -> None:
    add(db, mail_settings)
    smtp_sink.data_delay_s = 1.0
    quick = dataclasses.replace(mail_settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}?timeout=0.2")
    assert drain(quick, db) == 1
    [row] = rows(db)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "Timeout" in row.last_error or "timed out" in row.last_error, row.last_error
    smtp_sink.data_delay_s = 0.0
    drain_until_settled(quick, db)
    [row] = rows(db)
    assert row.status == "sent"
    # The stalled server may still have kept the first copy: at least once, and at most one duplicate.
    ids = [m.message_id for m in smtp_sink.wait_for(1)]
    assert set(ids) == {row.message_id} and len(ids) <= 2


def test_stopping_mid_send_puts_unsent_messages_back(mail_settings: Settings, db: Database,
                                                     smtp_sink: SmtpSink) -> None:
    add(db, mail_settings, 3)
    smtp_sink.data_delay_s = 5.0

    async def scenario() -> None:
        task = asyncio.create_task(drain_once(mail_settings, db, **FAST))  # type: ignore[arg-type]
        deadline = time.monotonic() + 5
        while not any(r.status == "sending" for r in rows(db)):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # into the stalled DATA of the first message
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

    run(scenario())
    # Nothing is left locked until the lease runs out: every claimed row is back in the queue, due now.
    assert [(r.status, r.attempts, r.locked_until) for r in rows(db)] == [("pending", 0, None)] * 3
    smtp_sink.data_delay_s = 0.0
    drain_until_settled(mail_settings, db)
    assert all(r.status == "sent" for r in rows(db))
