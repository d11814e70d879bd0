"""Live updates: which open proposal pages must refresh a part of themselves, in this web process.

A change that open pages should show (a comment, a ballot, a proposal closing) calls `announce(session, kind,
proposal_id)` inside the transaction that makes it. The announcement travels only once that transaction
commits:

- on PostgreSQL as `NOTIFY plenary_live, 'kind:id'` (one statement; PostgreSQL delivers it at commit and never
  after a rollback), heard by one `LISTEN` connection per web process, whichever process made the change;
- on SQLite as a row of `live_signals` written in the same transaction (one row per proposal and kind, with a
  version that every announcement raises), which each web process reads every `POLL_S` while it has open
  streams, and, for the process that made the change, at once through an after-commit hook on the session,
  straight to its own hub (its poller skips the rows it wrote itself). So several web processes and a
  separate `plenary worker` share one SQLite file as they share one PostgreSQL database. The table holds at
  most three rows a proposal and is never pruned.

The `Hub` keeps the open streams of its process by proposal and hands each one the names of what changed.
Events carry no content: a page that hears "comment" or "tally" fetches its own fragment through the same
views, authorization and visibility rules as the page itself (docs/ARCHITECTURE.md says why). Announcements
are coalesced per proposal (at most one delivery every `COALESCE_S`), so a burst of ballots costs each open
page one fetch, and a tally signal reaches only the streams whose member may see the tally now
(`voting.services.tally_viewers`, which asks the same `tally_visible` as the page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import anyio
from sqlalchemy import Column, Index, Integer, String, Table, event, make_url, text
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse
from sse_starlette.event import ServerSentEvent

from app.db import Base, Database, run_db

log = logging.getLogger("plenary.live")

CHANNEL = "plenary_live"
COMMENT, TALLY, CLOSED = "comment", "tally", "closed"
KINDS = (COMMENT, TALLY, CLOSED)
COALESCE_S = 0.25
POLL_S = 0.25  # SQLite: how often a process with open streams reads the other processes' announcements
LISTEN_RETRY_MAX_S = 30.0
PING_S = 15  # a comment line this often keeps proxies from closing a quiet stream
# How long a browser waits before it reconnects a stream that ended (a restart): each stream draws its own, so
# the pages of a restarted process do not all come back in the same second.
RETRY_MS = (5_000, 15_000)
MAX_STREAMS_PER_MEMBER = 20  # in one process: enough for a member's tabs, not enough to tie up a server
SHUTDOWN_GRACE_S = 2.0  # once the server is stopping, how long a stream has to end by itself

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")

# SQLite's announcements between processes: one row per proposal and kind; `version` is raised past every other
# row's on each announcement (writers take turns, so max + 1 is unique), and `origin` is the process that wrote it.
live_signals = Table(
    "live_signals", Base.metadata,
    Column("proposal_id", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(16), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("origin", Integer, nullable=False),
    Index("ix_live_signals_version", "version"),
)
_SIGNAL = text(
    "INSERT INTO live_signals (proposal_id, kind, version, origin) "
    "VALUES (:pid, :kind, (SELECT coalesce(max(version), 0) + 1 FROM live_signals), :origin) "
    "ON CONFLICT (proposal_id, kind) DO UPDATE SET version = excluded.version, origin = excluded.origin")
_LATEST = text("SELECT coalesce(max(version), 0) FROM live_signals")
_SINCE = text("SELECT version, proposal_id, kind, origin FROM live_signals WHERE version > :v ORDER BY version")
_PENDING = "plenary.live.pending"
# SQLite: the hubs of this process by database URL, for the after-commit hook.
_LOCAL: dict[str, set[Hub]] = {}


def announce(session: Session, kind: str, proposal_id: int) -> None:
    """Tell the proposal's open pages that `kind` changed, once the caller's transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"not a kind of live update: {kind!r}")
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(_NOTIFY, {"channel": CHANNEL, "payload": f"{kind}:{proposal_id}"})
    else:
        session.connection().execute(_SIGNAL, {"pid": proposal_id, "kind": kind, "origin": os.getpid()})
        session.info.setdefault(_PENDING, set()).add((str(bind.url), kind, proposal_id))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for url, kind, proposal_id in session.info.pop(_PENDING, ()):
        for hub in list(_LOCAL.get(url, ())):
            hub.post(kind, proposal_id)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def parse(payload: str) -> tuple[str, int] | None:
    kind, _, raw = payload.partition(":")
    if kind not in KINDS or not raw.isdigit():
        return None
    return kind, int(raw)


@dataclass(eq=False)
class Subscription:
    """One open stream: a proposal, the member reading it, and the kinds heard since it last read."""

    proposal_id: int
    member_id: int
    pending: dict[str, None] = field(default_factory=dict)  # an ordered set: "closed" goes last
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False

    def push(self, kinds: Iterable[str]) -> None:
        for kind in kinds:
            self.pending[kind] = None
        if self.pending:
            self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    async def next(self) -> list[str] | None:
        """The kinds heard since the last call (waiting for one), or None once the hub has stopped."""
        while not self.pending and not self.ended:
            self.wake.clear()
            await self.wake.wait()
        if self.ended:
            return None
        kinds = sorted(self.pending, key=KINDS.index)
        self.pending.clear()
        return kinds


class Hub:
    """This process's open streams, fed by PostgreSQL notifications or by this process's own commits."""

    def __init__(self, db: Database, *, coalesce_s: float = COALESCE_S) -> None:
        self.db = db
        self.coalesce_s = coalesce_s
        self._subs: dict[int, set[Subscription]] = {}
        self._per_member: dict[int, int] = {}
        self._due: dict[int, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.Task[None] | None = None
        self._key = str(db.engine.url)

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def start(self, *, listen_timeout_s: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        if self.db.dialect == "postgresql":
            listening = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(listening))
            try:
                await asyncio.wait_for(listening.wait(), listen_timeout_s)
            except TimeoutError:
                log.error("live updates: could not LISTEN within %.0f s; retrying in the background",
                          listen_timeout_s)
        else:
            _LOCAL.setdefault(self._key, set()).add(self)
            try:
                last = await run_db(self._latest)
            except Exception as exc:  # a database that is down at start-up: hear everything once it is back
                log.warning("live updates: could not read the latest announcement (%s)", exc)
                last = 0
            self._listener = asyncio.create_task(self._poll(last))

    async def stop(self) -> None:
        _LOCAL.get(self._key, set()).discard(self)
        if not _LOCAL.get(self._key, True):
            del _LOCAL[self._key]
        for task in [*self._tasks, *([self._listener] if self._listener else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._listener = None
        for subs in self._subs.values():
            for sub in subs:
                sub.end()
        self._subs.clear()
        self._per_member.clear()
        self._loop = None

    # --- streams --------------------------------------------------------------------------------------------

    def subscribe(self, proposal_id: int, member_id: int) -> Subscription:
        sub = Subscription(proposal_id, member_id)
        self._subs.setdefault(proposal_id, set()).add(sub)
        self._per_member[member_id] = self._per_member.get(member_id, 0) + 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.proposal_id)
        if subs is not None and sub in subs:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.proposal_id]
            left = self._per_member.get(sub.member_id, 1) - 1
            if left > 0:
                self._per_member[sub.member_id] = left
            else:
                self._per_member.pop(sub.member_id, None)

    def streams_of(self, member_id: int) -> int:
        return self._per_member.get(member_id, 0)

    def subscribers(self, proposal_id: int | None = None) -> int:
        if proposal_id is not None:
            return len(self._subs.get(proposal_id, ()))
        return sum(len(s) for s in self._subs.values())

    async def resync(self, subs: Iterable[Subscription]) -> None:
        """Signal everything to streams that may have missed announcements (a reconnect, a lost LISTEN)."""
        by_proposal: dict[int, list[Subscription]] = {}
        for sub in subs:
            by_proposal.setdefault(sub.proposal_id, []).append(sub)
        for proposal_id, group in by_proposal.items():
            await self._deliver(proposal_id, {COMMENT, TALLY}, group)

    # --- announcements --------------------------------------------------------------------------------------

    def post(self, kind: str, proposal_id: int) -> None:
        """From any thread: `kind` changed on `proposal_id` (and has been committed)."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening any more
            loop.call_soon_threadsafe(self._heard, kind, proposal_id)

    def _heard(self, kind: str, proposal_id: int) -> None:
        if proposal_id not in self._subs:
            return
        due = self._due.get(proposal_id)
        if due is not None:
            due.add(kind)  # a delivery is already scheduled: this joins it
            return
        self._due[proposal_id] = {kind}
        assert self._loop is not None
        self._loop.call_later(self.coalesce_s, self._spawn, proposal_id)

    def _spawn(self, proposal_id: int) -> None:
        task = asyncio.ensure_future(self._flush(proposal_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, proposal_id: int) -> None:
        kinds = self._due.pop(proposal_id, set())
        subs = list(self._subs.get(proposal_id, ()))
        if subs and kinds:
            await self._deliver(proposal_id, kinds, subs)

    async def _deliver(self, proposal_id: int, kinds: set[str], subs: list[Subscription]) -> None:
        if CLOSED in kinds:
            kinds = kinds | {TALLY}  # the result is there for everyone to see
        others = [k for k in KINDS if k in kinds and k != TALLY]
        viewers: set[int] = set()
        if TALLY in kinds:
            from app.voting.services import tally_viewers

            def decide() -> set[int]:
                with self.db.read() as s:
                    return tally_viewers(s, proposal_id, {sub.member_id for sub in subs})

            try:
                viewers = await run_db(decide)
            except Exception:
                log.exception("live updates: could not decide who sees the tally of proposal %d", proposal_id)
        for sub in subs:
            sub.push(sorted([*others, *([TALLY] if sub.member_id in viewers else [])], key=KINDS.index))

    # --- SQLite ---------------------------------------------------------------------------------------------

    def _latest(self) -> int:
        with self.db.read_connection() as conn:
            return int(conn.execute(_LATEST).scalar_one())

    def _since(self, version: int) -> list[tuple[int, int, str, int]]:
        with self.db.read_connection() as conn:
            return [tuple(r) for r in conn.execute(_SINCE, {"v": version})]  # type: ignore[misc]

    async def _poll(self, last: int, *, interval_s: float = POLL_S) -> None:
        """Hear what other processes announced: every `interval_s`, while this process has open streams, the
        rows raised since the last read. What this process wrote it has heard already (the after-commit hook);
        rows from while it had no streams are heard late, which costs a page a refetch at most."""
        me = os.getpid()
        while True:
            await asyncio.sleep(interval_s)
            if not self._subs:
                continue
            try:
                rows = await run_db(self._since, last)
            except Exception as exc:
                log.warning("live updates: could not read announcements (%s); trying again", exc)
                continue
            for version, proposal_id, kind, origin in rows:
                last = max(last, version)
                if origin != me and kind in KINDS:
                    self._heard(kind, proposal_id)

    # --- PostgreSQL -----------------------------------------------------------------------------------------

    async def _listen(self, listening: asyncio.Event) -> None:
        import psycopg

        conninfo = make_url(self.db.url).set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 0.5
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    listening.set()
                    if not first:  # what was announced while we were not listening is lost: refetch all
                        log.info("live updates: listening again")
                        await self.resync([s for subs in self._subs.values() for s in subs])
                    first, delay = False, 0.5
                    async for note in conn.notifies():
                        parsed = parse(note.payload)
                        if parsed is not None:
                            self._heard(*parsed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                first = False
                log.warning("live updates: LISTEN connection lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX_S)


def response(hub: Hub, proposal_id: int, member_id: int, *, is_open: bool, resumed: bool) -> EventSourceResponse:
    """The stream of one open page. When the server stops (SIGTERM), sse-starlette sets `stopping` and the
    stream ends by itself, so the server does not wait for browsers to hang up, nor cut a response short."""
    stopping = anyio.Event()
    events = stream(hub, proposal_id, member_id, is_open=is_open, resumed=resumed, stopping=stopping)
    return EventSourceResponse(events, ping=PING_S, shutdown_event=stopping, shutdown_grace_period=SHUTDOWN_GRACE_S)


async def stream(hub: Hub, proposal_id: int, member_id: int, *, is_open: bool, resumed: bool,
                 stopping: anyio.Event | None = None) -> AsyncIterator[ServerSentEvent]:
    """The events of one open page: the names of what changed, with the proposal's id as data (a browser
    ignores an event without data). It ends after "closed", which the page answers by closing its stream."""
    sub = hub.subscribe(proposal_id, member_id) if is_open else None
    watcher = asyncio.ensure_future(_end_when(stopping, sub)) if sub is not None and stopping else None
    try:
        # First block: an id, so a browser that reconnects sends Last-Event-ID and gets everything signalled
        # again (it may have missed something), and the delay before such a reconnect.
        yield ServerSentEvent(id="live", retry=random.randint(*RETRY_MS), comment="listening")
        if sub is None:
            for kind in (TALLY, CLOSED):
                yield ServerSentEvent(str(proposal_id), event=kind)
            return
        if resumed:
            await hub.resync([sub])
        while True:
            kinds = await sub.next()
            if kinds is None:
                return
            for kind in kinds:
                yield ServerSentEvent(str(proposal_id), event=kind)
                if kind == CLOSED:
                    return
    finally:
        if watcher is not None:
            watcher.cancel()
        if sub is not None:
            hub.unsubscribe(sub)


async def _end_when(stopping: anyio.Event, sub: Subscription) -> None:
    await stopping.wait()
    sub.end()
