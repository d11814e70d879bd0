"""The database: declarative base with a constraint naming convention, engine set-up, units of work.

Plenary uses SQLAlchemy's synchronous Session (measured 3-5x cheaper per query than the async bridge on SQLite;
see docs/ARCHITECTURE.md). Async handlers run a unit of work in the thread pool with `run_db`.

On SQLite every connection gets WAL, foreign keys and a busy timeout. Transactions that will write are opened
with `BEGIN IMMEDIATE`: a deferred `BEGIN` that later upgrades its read lock to a write lock fails with
"database is locked" under concurrency no matter the timeout, because SQLite cannot wait for that upgrade.
Write transactions also take `WriterLock` first: SQLite has one writer at a time anyway, and a writer waiting
on a lock wakes the moment it is free, where one waiting in `BEGIN IMMEDIATE` polls with sleeps of up to
100 ms (the busy handler) and, under 32 concurrent votes, gave up after the 5 s timeout (see
docs/BENCHMARKS.md). The lock is a lock of the process plus an `flock` on a file beside the database, so the
web processes, `plenary worker` and the command line take turns the same way; only other programs writing to
the file meet the busy timeout.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import fcntl
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes as UTC and always gives back aware UTC datetimes (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def like_escape(text: str) -> str:
    """`text` matched literally by a LIKE with `escape="\\"`: its backslashes, % and _ escaped. For patterns
    passed as bound parameters, where SQLAlchemy's `autoescape=True` cannot be used."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def per_dialect(build: Callable[[Any], T]) -> dict[str, T]:
    """Statements with `INSERT ... ON CONFLICT`, built once at import for each dialect from its `insert`, for the
    paths that run them on every request: `per_dialect(build)[conn.dialect.name]`. Building one per call cost
    more than running it on SQLite."""
    return {"sqlite": build(sqlite_insert), "postgresql": build(pg_insert)}


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # Room for every thread that may hold a connection (run_db's few, the worker's, Starlette's thread pool of
        # 40 at most): with fewer, threads queue for a connection, and overflow connections are closed and reopened
        # (with their pragmas) on every burst.
        kwargs.setdefault("pool_size", 40)
        kwargs.setdefault("max_overflow", 0)
        # Last in, first out: the few connections in use stay the same ones, with their page caches warm.
        kwargs.setdefault("pool_use_lifo", True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        _sqlite_setup(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)
    return engine


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (so we can say IMMEDIATE).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # secure_delete: deleted content (an erased ballot key, deleted ballots) is overwritten with zeros, not
        # left in free space in the file (docs/SECRET_BALLOTS.md).
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=5000", "synchronous=FULL",
                       "secure_delete=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("plenary_write"):
            # The safety level can only change between transactions; each write says the one it needs.
            level = "NORMAL" if options.get("plenary_fast_commit") else "FULL"
            if conn.info.get("synchronous") != level:
                conn.exec_driver_sql(f"PRAGMA synchronous={level}")
                conn.info["synchronous"] = level
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN DEFERRED")


class WriterLock:
    """SQLite's one writer at a time, taken before `BEGIN IMMEDIATE`, so a writer waits on a lock that wakes it
    the moment the previous writer commits instead of in SQLite's busy handler, which polls with sleeps of up
    to 100 ms: a lock of this process (re-entrant, for a unit of work that calls another in the same thread),
    then an advisory `flock` on a file beside the database, shared by every Plenary process that opens it (the
    web processes, `plenary worker`, the command line). Other programs that write to the file (the sqlite3
    shell) still meet the busy timeout. `path=None` (an in-memory database): the process lock alone.

    There is no timeout: a Plenary process stuck inside a write transaction stops every other writer, as
    SQLite's own write lock would (which only turns the wait into "database is locked" after 5 s); the kernel
    drops the lock of a process that dies."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.RLock()
        self._path = path
        self._fd: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            if self._depth == 0 and self._path is not None:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
        except BaseException:
            self._lock.release()
            raise

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # also drops the flock, should a unit of work still hold it
                self._fd = None

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()


class Database:
    """Owns the engine and hands out units of work: `with db.begin() as s:` writes, `with db.read() as s:` reads."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.dialect = self.engine.dialect.name
        self._write = sessionmaker(
            bind=self.engine.execution_options(plenary_write=True), expire_on_commit=False
        )
        self._fast_write = sessionmaker(
            bind=self.engine.execution_options(plenary_write=True, plenary_fast_commit=True), expire_on_commit=False
        )
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False)
        # Re-entrant, so a write unit of work that calls another one in the same thread does not block itself.
        self._write_lock: Any = contextlib.nullcontext()
        if self.dialect == "sqlite":
            path = self.engine.url.database
            self._write_lock = WriterLock(f"{path}-writer.lock" if path and path != ":memory:" else None)

    @contextlib.contextmanager
    def begin(self, *, durable: bool = True) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        `durable=False` is for bookkeeping that is safe to lose in a power cut or a database server crash
        (not in a crash of this process): the commit does not wait for the disk (SQLite `synchronous=NORMAL`,
        PostgreSQL `synchronous_commit=off`). The mail sender records what it sent this way: what a power cut
        loses is sent again, with the same Message-ID."""
        factory = self._write if durable else self._fast_write
        with self._write_lock, factory.begin() as session:
            if not durable and self.dialect == "postgresql":
                session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            yield session

    @contextlib.contextmanager
    def write_connection(self, *, durable: bool = True) -> Iterator[Connection]:
        """A write transaction on a bare Core connection, for hot paths with prebuilt statements and no ORM
        objects (the mail sender's bookkeeping): the same locking and `durable` meaning as `begin`, without a
        Session's cost."""
        engine = self.engine.execution_options(plenary_write=True, plenary_fast_commit=not durable)
        with self._write_lock, engine.begin() as conn:
            if not durable and self.dialect == "postgresql":
                conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            yield conn

    @contextlib.contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A read transaction on a bare Core connection (the per-request session look-up)."""
        with self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        # close() (not rollback()) ends the transaction without expiring what was loaded, so the objects stay
        # readable after the block, as the templates need.
        with self._read() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if isinstance(self._write_lock, WriterLock):
            self._write_lock.close()


_threads = 0  # set from PLENARY_DB_THREADS by the app and the worker (set_db_threads); 0: the default
_one_at_a_time = False  # SQLite: one unit at a time unless the running ones are slow (see Lanes)
SPILL_AFTER = 0.05  # seconds a unit runs before, on SQLite, another may start beside it


def set_db_threads(n: int, database_url: str = "") -> None:
    """The limit (`PLENARY_DB_THREADS`, 0: the default) and, from the database URL, whether units run one at
    a time in the steady state (SQLite) or up to the limit (PostgreSQL)."""
    global _threads, _one_at_a_time
    _threads = max(0, n)
    _one_at_a_time = database_url.startswith("sqlite")


def db_threads() -> int:
    """How many units of database work run at once per event loop at most (`PLENARY_DB_THREADS`; default twice
    the cores, at least 4). More threads than that only contend for the interpreter lock (docs/BENCHMARKS.md)."""
    return _threads or max(4, 2 * (os.cpu_count() or 1))


class _Waiter:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()


class Lanes:
    """Admission of units of database work on one event loop, first come first served: up to `steady` run at
    once; beyond that, up to `limit`, one more starts only once every running unit has run `SPILL_AFTER` or
    longer (a long job, a wait for SQLite's write lock, a full scan), so a slow unit never holds up the rest.

    On SQLite `steady` is 1. Its queries hold the interpreter lock for all but the short moments SQLite runs,
    so two threads cannot run them side by side; they only hand the lock back and forth. Measured with 32
    clients on 2 cores, one unit at a time served the proposal page 42% faster than four (the results page
    40%, the vote 20%), at a third less CPU per request (docs/BENCHMARKS.md). On PostgreSQL a thread waits for
    the server on most of its statements, and the limit is the steady number: there four beat one by 20%."""

    def __init__(self, steady: int, limit: int) -> None:
        self.limit = max(1, limit)
        self.steady = max(1, min(steady, self.limit))
        self.started: dict[_Waiter, float] = {}  # running units by when they started
        self.queue: collections.deque[_Waiter] = collections.deque()
        self.threads = anyio.CapacityLimiter(self.limit)

    def _patience(self, now: float) -> float | None:
        """0 if the head of the queue may start now, else how long until it may (None: until a unit ends)."""
        n = len(self.started)
        if n < self.steady:
            return 0
        if n >= self.limit:
            return None
        return max(0.0, max(self.started.values()) + SPILL_AFTER - now)

    def _wake(self) -> None:
        if self.queue:
            self.queue[0].event.set()

    async def run(self, fn: Callable[[], T]) -> T:
        me = _Waiter()
        self.queue.append(me)
        try:
            while True:
                wait = self._patience(anyio.current_time()) if self.queue[0] is me else None
                if wait == 0:
                    break
                me.event = anyio.Event()
                with anyio.move_on_after(wait if wait is None else max(wait, 0.001)):
                    await me.event.wait()
        except BaseException:  # cancelled while waiting: the next in line may be due
            self.queue.remove(me)
            self._wake()
            raise
        self.queue.popleft()
        self.started[me] = anyio.current_time()
        self._wake()
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self.threads)
        finally:
            del self.started[me]
            self._wake()


_lanes: RunVar[Lanes] = RunVar("plenary_db_lanes")


async def run_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking database work off the event loop, admitted by `Lanes` (one per event loop); the rest wait
    their turn on the loop, which costs nothing."""
    try:
        lanes = _lanes.get()
    except LookupError:
        limit = db_threads()
        lanes = Lanes(1 if _one_at_a_time else limit, limit)
        _lanes.set(lanes)
    return await lanes.run(functools.partial(fn, *args, **kwargs))
