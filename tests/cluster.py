"""Real Plenary processes for tests across processes: `plenary serve` and `plenary worker` as subprocesses on
free ports, against one database (a fresh PostgreSQL database per test, or a SQLite file), stopped by PID.

Workers can load tests/cluster_jobs.py first, so they know the job kinds the tests schedule (a real worker
loop, with handlers whose effects a test can count).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alembic import command

from app.settings import ROOT
from tests.browser.harness import free_port, in_ci

PG_URL = os.environ.get("PLENARY_TEST_DATABASE_URL", "")
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 20
WORKER_WITH_TEST_JOBS = "import sys, tests.cluster_jobs; from app.cli import main; sys.exit(main())"


def require_postgresql() -> str:
    """The PostgreSQL URL the tests may create databases from; skips without one (fails in CI)."""
    if not PG_URL:
        reason = "needs PostgreSQL: set PLENARY_TEST_DATABASE_URL"
        if in_ci():
            pytest.fail(reason + " (CI is set, so this fails instead of skipping)", pytrace=False)
        pytest.skip(reason)
    return PG_URL


@contextlib.contextmanager
def fresh_postgresql() -> Iterator[str]:
    """A new, migrated PostgreSQL database, dropped afterwards (connections and all)."""
    from tests.conftest import alembic_config, scratch_pg_database

    with scratch_pg_database("plenary_cluster", require_postgresql()) as url:
        command.upgrade(alembic_config(url), "head")
        yield url


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to tidy up (a crash, a power cut)."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int:
        """SIGTERM, as systemd stops a service; SIGKILL if it has not exited in time. Returns the exit code."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


@dataclass
class Cluster:
    """Processes sharing one database, one secret key, one base URL and (optionally) one SMTP server."""

    tmp: Path
    database_url: str
    smtp_port: int | None = None
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    base_port: int = field(default_factory=free_port)
    processes: list[Process] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLENARY_")}
        env.update({
            "PLENARY_DATABASE_URL": self.database_url,
            "PLENARY_BASE_URL": f"http://127.0.0.1:{self.base_port}",
            "PLENARY_VAR_DIR": str(self.tmp / "var"),
            "PLENARY_ENV": "test",
            "PLENARY_SECRET_KEY": self.secret_key,
            "PLENARY_PASSWORD_ROUNDS": "1",
            "PLENARY_PASSWORD_MEMORY_KIB": "8192",
            "PLENARY_LOG_LEVEL": "WARNING",
            "HOME": str(self.tmp),
            "PYTHONUNBUFFERED": "1",
        })
        if self.smtp_port:
            env["PLENARY_SMTP_URL"] = f"smtp://127.0.0.1:{self.smtp_port}"
        env.update(extra)
        return env

    def _start(self, name: str, argv: list[str], env: dict[str, str], port: int = 0) -> Process:
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        p = Process(name, proc, log_path, port)
        self.processes.append(p)
        return p

    def serve(self, name: str, *, run_worker: bool = False, port: int = 0) -> Process:
        """`plenary serve` on a free port (the first one on the base URL's port), once /healthz answers."""
        if not port:
            port = self.base_port if not any(p.port == self.base_port for p in self.processes) else free_port()
        env = self.env(PLENARY_RUN_WORKER="true" if run_worker else "false")
        p = self._start(name, [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port",
                               str(port)], env, port)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert p.alive(), f"{name} exited with {p.proc.returncode}:\n{p.log()}"
            try:
                with urllib.request.urlopen(p.base_url + "/healthz", timeout=1) as r:
                    if r.status == 200 and json.load(r).get("status") == "ok":
                        return p
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"{name} did not answer /healthz in {START_TIMEOUT_S} s:\n{p.log()}")

    def worker(self, name: str, *, job_lease_s: float | None = None, test_jobs: bool = True,
               **extra_env: str) -> Process:
        """`plenary worker` (with the test job kinds loaded), once it has logged that it started."""
        args = ["worker", "--name", name] + (["--job-lease", str(job_lease_s)] if job_lease_s else [])
        argv = ([sys.executable, "-c", WORKER_WITH_TEST_JOBS] if test_jobs else
                [sys.executable, "-m", "app.cli"]) + args
        p = self._start(name, argv, self.env(**extra_env))
        deadline = time.monotonic() + START_TIMEOUT_S
        while f"worker {name}@" not in p.log():
            assert p.alive(), f"{name} exited with {p.proc.returncode}:\n{p.log()}"
            assert time.monotonic() < deadline, f"{name} did not start in {START_TIMEOUT_S} s:\n{p.log()}"
            time.sleep(0.1)
        return p

    def stop_all(self) -> None:
        for p in self.processes:
            with contextlib.suppress(Exception):
                p.stop()


@contextlib.contextmanager
def cluster(tmp: Path, database_url: str, smtp_port: int | None = None) -> Iterator[Cluster]:
    c = Cluster(tmp, database_url, smtp_port)
    try:
        yield c
    finally:
        c.stop_all()
