"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL too when configured), the app, clients.

Set PLENARY_TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) and every test that
uses the database runs twice: on SQLite and on PostgreSQL. The PostgreSQL run creates a database of its own,
migrates it once, and empties every table between tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool
from starlette.testclient import TestClient

from app.db import Database
from app.main import create_app
from app.settings import ROOT, Settings
from tests.factories import make_member

PG_URL = os.environ.get("PLENARY_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
PASSWORD = "correct horse battery staple"


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "plenary.db"
    command.upgrade(alembic_config(f"sqlite:///{path}"), "head")
    return path


@contextlib.contextmanager
def scratch_pg_database(prefix: str, server_url: str = "") -> Iterator[str]:
    """A new empty PostgreSQL database on the server of `server_url` (default PLENARY_TEST_DATABASE_URL), named
    `<prefix>_<pid>_<random>`; its URL is yielded, and it is dropped afterwards, connections and all."""
    base = make_url(server_url or PG_URL)
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    # NullPool: no idle admin connection lingers for the whole session (or gets collected mid-run unclosed).
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    with scratch_pg_database("plenary_test") as url:
        command.upgrade(alembic_config(url), "head")
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "plenary.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("_pg_database")
    yield url
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename != 'alembic_version'"))]
        if tables:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        base_url="http://testserver",
        secret_key="test-secret-" + "x" * 40,
        env="test",
        trusted_hosts=("testserver", "127.0.0.1", "localhost"),
        run_worker=False,
        password_hash_rounds=1,
        password_hash_memory_kib=8192,
        var_dir=tmp_path / "var",
    ).resolved()


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, db=db)


class Client(TestClient):
    """A TestClient that knows the CSRF token its cookie jar holds, as a browser page would."""

    member = None

    def csrf(self) -> str:
        token = self.cookies.get("plenary_csrf")
        if not token:
            self.get("/signin")
            token = self.cookies.get("plenary_csrf")
        assert token
        return token

    def form(self, url: str, data: dict | None = None, **kwargs):  # type: ignore[no-untyped-def]
        """POST a form the way our pages do: with the CSRF token first."""
        body = {"csrf_token": self.csrf(), **(data or {})}
        kwargs.setdefault("follow_redirects", False)
        return self.post(url, data=body, **kwargs)

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        r = self.form("/signin", {"email": email, "password": password})
        assert r.status_code == 303, r.text
        self.cookies.delete("plenary_flash")


def _client(app) -> Client:  # type: ignore[no-untyped-def]
    return Client(app, base_url="http://testserver")


@pytest.fixture
def client(app) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    with _client(app) as c:
        yield c


@pytest.fixture
def org(db: Database) -> None:
    from app.members.models import Organization

    with db.begin() as s:
        s.add(Organization(id=1, name="Riverside Tenants", time_zone="Europe/Berlin"))


@pytest.fixture
def admin(db: Database, org: None):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return make_member(s, email="admin@example.org", name="Ada Admin", role="admin", password=PASSWORD)


@pytest.fixture
def member(db: Database, org: None):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return make_member(s, email="mia@example.org", name="Mia Member", password=PASSWORD)


@pytest.fixture
def admin_client(app, admin) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    with _client(app) as c:
        c.sign_in(admin.email)
        c.member = admin
        yield c


@pytest.fixture
def member_client(app, member) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    with _client(app) as c:
        c.sign_in(member.email)
        c.member = member
        yield c


@pytest.fixture
def smtp_sink():  # type: ignore[no-untyped-def]
    from app.mail.sink import SmtpSink

    sink = SmtpSink()
    sink.start("127.0.0.1", 0)
    yield sink
    sink.stop()


def links_in(body: str) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>]+", body)


@pytest.fixture
def live_server(app) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The app served by uvicorn on 127.0.0.1 in a thread, for real concurrent connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
