"""Real-browser fixtures: `plenary serve` in a subprocess, a real SMTP sink, Chromium, and axe-core.

The server runs as an operator would start it (migrations, printed setup link, in-process mail worker), on a
free port, with an empty database and its own HOME in a temporary directory. Each browser test module runs
against a new SQLite file and, when PLENARY_TEST_DATABASE_URL is set, again against a new PostgreSQL database.
Mail goes to an `SmtpSink` in this process, so a test reads the message a member would receive and follows its
link.

Chromium is Debian's (`apt-get install chromium`), not one downloaded by `playwright install`. Without it the
browser tests are skipped, except when the CI environment variable is set: then they fail.

Every page a test checks goes through axe-core (tests/browser/vendor). The app's Content-Security-Policy
allows scripts from its own origin only, so axe is not injected inline: each browser context answers a made-up
same-origin URL with the vendored file, and the page loads it as an ordinary script. The CSP stays on, and a
test fails on any CSP violation the browser reports.

These tests do not use the database fixtures of tests/conftest.py: the server has its own database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import (
    AXE_PATH,
    CHROMIUM,
    CHROMIUM_ARGS,
    Browsing,
    PlenaryServer,
    axe_source,
    find_setup_link,
    free_port,
    in_ci,
    server_env,
    start_server,
    stop_server,
    wait_until_healthy,
)
from tests.conftest import BACKENDS


@contextlib.contextmanager
def empty_database(backend: str) -> Iterator[str | None]:
    """None for SQLite (the server makes its own file); on PostgreSQL a new empty database, dropped after."""
    if backend == "sqlite":
        yield None
        return
    from tests.conftest import scratch_pg_database

    with scratch_pg_database("plenary_browser") as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlenaryServer]:
    """A fresh Plenary (empty database, no admin yet) on a free port, mailing to a real SMTP sink: on SQLite, and
    on PostgreSQL too when PLENARY_TEST_DATABASE_URL is set, as `plenary serve` runs on either."""
    from app.mail.sink import SmtpSink

    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    sink = SmtpSink()
    smtp_port = sink.start("127.0.0.1", 0)
    try:
        with empty_database(request.param) as database_url:
            log_path = tmp / "server.log"
            env = server_env(tmp, base_url, smtp_port, secrets.token_urlsafe(48), database_url)
            proc = start_server(port, env, log_path)
            try:
                wait_until_healthy(proc, base_url + "/healthz", log_path)
                yield PlenaryServer(base_url=base_url, setup_link=find_setup_link(log_path, base_url), sink=sink,
                                    log_path=log_path, database_url=env["PLENARY_DATABASE_URL"])
            finally:
                stop_server(proc)
    finally:
        sink.stop()


# Module scope, not session: a sync Playwright keeps an event loop running in the main thread while it is
# open, and tests after the browser modules call asyncio.run() there.
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests"
        if in_ci():
            pytest.fail(reason + " (CI is set, so this fails instead of skipping)", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("chromium-home")  # Chromium writes ~/.config and ~/.cache
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                                     env={**os.environ, "HOME": str(home)})
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_browser(browser: Any, server: PlenaryServer, tmp_path: Path) -> Iterator[Callable[..., Browsing]]:
    """Opens a browser context (one person on their own device); screenshots go to tmp_path/screenshots/.

    `javascript=False` is a browser with scripts turned off: htmx does not run, forms post and redirect.
    """
    axe = axe_source()
    contexts: list[Any] = []

    def fulfil_axe(route: Any) -> None:
        route.fulfill(status=200, body=axe, content_type="application/javascript; charset=utf-8")

    def open_one(name: str, *, javascript: bool = True) -> Browsing:
        context = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900},
                                      locale="en-GB", java_script_enabled=javascript)
        contexts.append(context)
        context.route(server.base_url + AXE_PATH, fulfil_axe)
        shots = tmp_path / "screenshots" / name
        shots.mkdir(parents=True, exist_ok=True)
        b = Browsing(context=context, page=context.new_page(), base_url=server.base_url, shots=shots)
        b.listen()
        return b

    yield open_one
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()
