"""The `plenary` command: migrate, setup-link, create-admin, demo (on a fresh SQLite file)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, text

from app.cli import main


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PLENARY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PLENARY_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("PLENARY_BASE_URL", "http://127.0.0.1:8123")
    monkeypatch.delenv("PLENARY_ENV", raising=False)
    return f"sqlite:///{tmp_path}/cli.db"


def scalar(url: str, sql: str):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_migrate_then_setup_link(env, capsys):
    assert main(["migrate"]) == 0
    assert main(["setup-link"]) == 0
    link = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"http://127\.0\.0\.1:8123/setup/[A-Za-z0-9_\-]{43}", link)
    assert scalar(env, "SELECT count(*) FROM auth_tokens WHERE purpose = 'setup'") == 1


def test_create_admin_and_no_more_setup_links(env, capsys):
    assert main(["create-admin", "Boss@Example.org", "--name", "Boss", "--org", "Union"]) == 0
    out = capsys.readouterr().out
    assert "Admin boss@example.org is ready. Password: " in out
    assert scalar(env, "SELECT role FROM members WHERE email = 'boss@example.org'") == "admin"
    assert main(["setup-link"]) == 1
    assert main(["create-admin", "not-an-address"]) == 2
    assert main(["create-admin", "x@example.org", "--password", "short"]) == 2


def test_demo_fills_an_empty_database_once(env, capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Sign in as admin@example.org with the password: \S{12,}", out)
    assert scalar(env, "SELECT count(*) FROM members") == 40
    assert scalar(env, "SELECT count(*) FROM groups") == 3
    assert scalar(env, "SELECT name FROM organizations") == "Riverside Community Association"
    assert main(["demo"]) == 1


def test_bad_configuration_is_reported(env, monkeypatch, capsys):
    monkeypatch.setenv("PLENARY_RATE_LIMIT", "lots")
    with pytest.raises(SystemExit) as exc:
        main(["migrate"])
    assert exc.value.code == 2
    assert "PLENARY_RATE_LIMIT" in capsys.readouterr().err


def test_inbound_serves_smtp_until_stopped(env, tmp_path):
    """`plenary inbound` as its own process: it listens where told, refuses an address that is not a reply
    address at RCPT, and stops on a signal (only the process this test started is stopped, by its id)."""
    import os
    import signal
    import smtplib
    import socket
    import subprocess
    import sys
    import time

    assert main(["migrate"]) == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    child_env = {**os.environ, "PLENARY_REPLY_DOMAIN": "replies.example.org"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "inbound", "--host", "127.0.0.1", "--port", str(port)],
                            env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
        with smtp:
            smtp.ehlo()
            assert smtp.mail("someone@example.org")[0] == 250
            code, text = smtp.rcpt("postmaster@replies.example.org")
            assert code == 550 and b"5.1.1" in text  # no relaying, nothing but reply addresses
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"Inbound SMTP on 127.0.0.1:{port}" in out


@pytest.mark.parametrize("value", ["0", "-5", "soon", "999999999"])
def test_worker_refuses_a_lease_that_is_no_duration(value, capsys):
    from app.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["worker", "--job-lease", value])
    assert exc.value.code == 2
    assert "--job-lease" in capsys.readouterr().err
    assert build_parser().parse_args(["worker", "--job-lease", "45"]).job_lease == 45.0
