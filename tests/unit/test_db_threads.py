"""PLENARY_DB_THREADS: how many units of database work run at once, and that run_db keeps to it."""

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


def test_default_is_twice_the_cores_and_at_least_four(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
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


def test_run_db_runs_no_more_units_at_once_than_the_limit() -> None:
    set_db_threads(3)
    lock = threading.Lock()
    running, peak, done = 0, 0, []

    def unit(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return i

    async def main() -> None:
        async def one(i: int) -> None:
            done.append(await run_db(unit, i))

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(one, i)

    anyio.run(main)  # a new event loop: the limit is per loop, read when the loop first needs it
    assert sorted(done) == list(range(12))
    assert peak == 3
