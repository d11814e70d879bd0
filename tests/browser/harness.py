"""Helpers for the browser tests: the `plenary serve` subprocess, one browser context per person, axe-core.

The fixtures that use them are in conftest.py.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENDOR = Path(__file__).resolve().parent / "vendor"
AXE_FILE = VENDOR / "axe-4.14.1.min.js"
AXE_PATH = "/__axe-4.14.1.min.js"  # not served by Plenary: each browser context fulfils it (conftest.py)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 10
PASSWORD = "correct horse battery staple"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def axe_source() -> bytes:
    """The vendored axe-core, refused if it does not match SHA256SUMS."""
    import hashlib

    data = AXE_FILE.read_bytes()
    lines = (VENDOR / "SHA256SUMS").read_text().splitlines()
    sums = {name: digest for digest, name in (line.split() for line in lines if line.strip())}
    assert hashlib.sha256(data).hexdigest() == sums[AXE_FILE.name], f"{AXE_FILE.name} fails its SHA256SUMS"
    return data


# --- the server ---------------------------------------------------------------------------------------------

@dataclass
class PlenaryServer:
    """A running `plenary serve`: its base URL, the setup link it printed, and the mail it sent."""

    base_url: str
    setup_link: str
    sink: Any
    log_path: Path
    database_url: str  # for tests that seed the server's database directly

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def url(self, path: str) -> str:
        return self.base_url + path

    def wait_for_mail(self, to: str, contains: str, timeout: float = 15.0) -> EmailMessage:
        """The first message to `to` whose text part contains `contains` (waits for the worker to send it)."""
        deadline = time.monotonic() + timeout
        while True:
            for received in self.sink.to(to):
                if contains in plain_text(received.message):
                    return received.message
            if time.monotonic() > deadline:
                seen = [(m.rcpt_tos, str(m.message.get("Subject"))) for m in list(self.sink.messages)]
                raise AssertionError(f"no message to {to} containing {contains!r} within {timeout} s; "
                                     f"the sink holds {seen}\n--- server log ---\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def link_in_mail(self, to: str, path: str, timeout: float = 15.0) -> str:
        """The first link to `path` (e.g. "/invite/") in the first message to `to` that has one."""
        prefix = self.base_url + path
        msg = self.wait_for_mail(to, prefix, timeout)
        found = re.search(re.escape(prefix) + r"[A-Za-z0-9_\-]+", plain_text(msg))
        assert found, plain_text(msg)
        return found.group(0)


def server_env(tmp: Path, base_url: str, smtp_port: int, secret_key: str,
               database_url: str | None = None) -> dict[str, str]:
    """The environment of `plenary serve`: ours without any PLENARY_* setting, plus exactly the test's.
    The database is a new SQLite file unless `database_url` names another (an empty PostgreSQL database)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLENARY_")}
    env.update({
        "PLENARY_DATABASE_URL": database_url or f"sqlite:///{tmp / 'plenary.db'}",
        "PLENARY_BASE_URL": base_url,
        "PLENARY_VAR_DIR": str(tmp / "var"),
        "PLENARY_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "PLENARY_ENV": "test",
        "PLENARY_SECRET_KEY": secret_key,
        "PLENARY_PASSWORD_ROUNDS": "1",
        "PLENARY_PASSWORD_MEMORY_KIB": "8192",
        "PLENARY_LOG_LEVEL": "WARNING",  # no access log: the output holds the setup link and any errors
        "HOME": str(tmp),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def start_server(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m app.cli serve` with stdout and stderr going to `log_path` (a file: no pipe to drain)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def wait_until_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"plenary serve exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200 and json.load(r).get("status") == "ok":
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"plenary serve did not answer {url} in {START_TIMEOUT_S} s:\n{log_path.read_text()}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it has not exited in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def find_setup_link(log_path: Path, base_url: str) -> str:
    found = re.search(re.escape(base_url) + r"/setup/\S+", log_path.read_text(encoding="utf-8"))
    assert found, f"no setup link in the server's output:\n{log_path.read_text()}"
    return found.group(0)


# --- the browser --------------------------------------------------------------------------------------------

@dataclass
class Browsing:
    """One browser context (one person's browser) and the checks every page it visits must pass."""

    context: Any
    page: Any
    base_url: str
    shots: Path
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def check(self, name: str) -> None:
        """Screenshot the page and run axe (WCAG 2.1 A, AA): fail on a violation or browser problem."""
        self.page.wait_for_load_state("load")
        self.page.screenshot(path=str(self.shots / f"{len(self.checked) + 1:02d}-{name}.png"), full_page=True)
        violations = axe_violations(self.page, self.base_url)
        self.page.evaluate(_REMOVE_EMPTY_STYLES)
        assert not violations, f"axe: problems on {name} ({self.page.url}):\n{format_violations(violations)}"
        self.checked.append(name)
        self.assert_no_problems()

    def assert_no_problems(self) -> None:
        assert not self.problems, "the browser reported:\n" + "\n".join(self.problems)

    def listen(self) -> None:
        """Record CSP violations (Chromium logs them to the console) and uncaught script errors."""

        def on_console(msg: Any) -> None:
            if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
                self.problems.append(f"CSP [{msg.type}] {msg.text} (on {self.page.url})")

        self.page.on("console", on_console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc} ({self.page.url})"))


# A full-page screenshot leaves an empty style attribute on some elements (form inputs, for one). Left there,
# htmx copies it onto the element that replaces one with the same id when it swaps, and setting a style
# attribute is an inline style the CSP blocks: a violation the app itself never causes. The app's pages have
# no style attributes (their CSP would block them), so every empty one is a leftover of the checks.
_REMOVE_EMPTY_STYLES = """() => {
  for (const el of document.querySelectorAll('[style=""]')) el.removeAttribute('style');
}"""


# --- axe ----------------------------------------------------------------------------------------------------

_AXE_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary, html: n.html})),
  }));
}"""


def axe_violations(page: Any, base_url: str) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations on the current page.

    axe is loaded as a same-origin <script src>, which the app's CSP (script-src 'self') allows; the URL is
    answered by the browser context's route, never by Plenary.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(url=base_url + AXE_PATH)
    return page.evaluate(_AXE_RUN, AXE_TAGS)


def format_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node['html'][:200]}")
            lines.extend(f"      {line}" for line in (node["summary"] or "").splitlines())
    return "\n".join(lines)
