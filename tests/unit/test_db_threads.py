"""PLENARY_DB_THREADS: how many units of database work run at once, and that run_db keeps to it: up to the limit on
PostgreSQL, one at a time on SQLite unless the running ones are slow."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from app import db as app_db
from app.db import db_threads, run_db, set_db_threads
from app.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def _restore() -> object:
    yield
    set_db_threads(0)


def test_default_limit_is_twice_the_cores_and_at_least_four(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    assert Settings.from_env({"PLENARY_VAR_DIR": str(tmp_path)}).db_threads == 0
    monkeypatch.setattr(app_db.os, "cpu_count", lambda: 1)
    assert db_threads() == 4
    monkeypatch.setattr(app_db.os, "cpu_count", lambda: 8)
    assert db_threads() == 16
    set_db_threads(Settings.from_env({"PLENARY_VAR_DIR": str(tmp_path), "PLENARY_DB_THREADS": "3"}).db_threads)
    assert db_threads() == 3


@pytest.mark.parametrize("value", ["0", "-1", "four", "1.5", "257"])
def test_a_bad_value_is_refused_with_its_name(tmp_path, value: str) -> None:
    with pytest.raises(SettingsError, match="PLENARY_DB_THREADS"):
        Settings.from_env({"PLENARY_VAR_DIR": str(tmp_path), "PLENARY_DB_THREADS": value})


class Units:
    """Units of work that sleep (as a unit waiting on a lock or the disk does) and record how many ran at once,
    and in which order they ended."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.ended: list[object] = []

    def unit(self, name: object, seconds: float) -> object:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(seconds)
        with self.lock:
            self.running -= 1
            self.ended.append(name)
        return name


def _run_all(units: Units, work: list[tuple[object, float, float]]) -> list[object]:
    """Each (name, start after s, seconds) through run_db on a new event loop (the limit is per loop, read when
    the loop first needs it); what each call returned."""
    done: list[object] = []

    async def main() -> None:
        async def one(name: object, after: float, seconds: float) -> None:
            await anyio.sleep(after)
            done.append(await run_db(units.unit, name, seconds))

        async with anyio.create_task_group() as tg:
            for w in work:
                tg.start_soon(one, *w)

    anyio.run(main)
    return done


def test_on_postgresql_run_db_runs_up_to_the_limit_at_once_and_no_more() -> None:
    set_db_threads(3, "postgresql+psycopg://db.example/plenary")
    units = Units()
    done = _run_all(units, [(i, 0, 0.02) for i in range(12)])
    assert sorted(done) == list(range(12))
    assert units.peak == 3


def test_on_sqlite_quick_units_run_one_at_a_time_in_order() -> None:
    set_db_threads(3, "sqlite:///plenary.sqlite3")
    units = Units()
    done = _run_all(units, [(i, i * 0.001, 0.005) for i in range(12)])
    assert sorted(done) == list(range(12))
    assert units.peak == 1
    assert units.ended == list(range(12))  # first come, first served


def test_on_sqlite_a_slow_unit_does_not_hold_up_the_rest() -> None:
    # A job that runs a second (or waits that long for the write lock); requests arriving meanwhile start once
    # it has run SPILL_AFTER, one more beside it, and end long before it, never more than the limit at once.
    set_db_threads(3, "sqlite:///plenary.sqlite3")
    units = Units()
    done = _run_all(units, [("slow", 0, 1.0), *((i, 0.01, 0.01) for i in range(8))])
    assert sorted(done, key=str) == sorted(["slow", *range(8)], key=str)
    assert units.ended[-1] == "slow"
    assert 2 <= units.peak <= 3  # one beside it (two, should a quick one be slow on a busy machine)


def test_on_sqlite_two_slow_units_let_a_third_start_and_the_limit_holds() -> None:
    set_db_threads(3, "sqlite:///plenary.sqlite3")
    units = Units()
    done = _run_all(units, [("a", 0, 0.6), ("b", 0, 0.6), ("c", 0, 0.6), ("d", 0, 0.05)])
    assert sorted(done) == ["a", "b", "c", "d"]
    assert units.peak == 3
    assert units.ended.index("d") > units.ended.index("a")  # it waited for the first of the three to end


def test_a_unit_cancelled_while_it_waits_does_not_block_the_queue() -> None:
    set_db_threads(2, "sqlite:///plenary.sqlite3")
    units = Units()
    done: list[object] = []

    async def main() -> None:
        async def one(name: object, seconds: float) -> None:
            done.append(await run_db(units.unit, name, seconds))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "first", 0.03)
            await anyio.sleep(0.005)
            with anyio.move_on_after(0.01):  # gives up while "first" runs
                await one("gave up", 0.01)
            tg.start_soon(one, "next", 0.01)

    anyio.run(main)
    assert done == ["first", "next"]
    assert units.ended == ["first", "next"]
