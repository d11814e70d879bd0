"""The whole loop with a real SMTP server: an action queues mail, the sender delivers it, the link in the
received message works."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import re

from app.mail.sender import drain_once
from app.main import create_app
from tests.conftest import Client


def deliver(settings, db) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own (see test_jobs.run)
        while pool.submit(asyncio.run, drain_once(settings, db)).result(timeout=60):
            pass


def received_link(sink, address: str, path: str) -> str:
    [msg] = sink.to(address)
    body = msg.message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(r"http://testserver(" + re.escape(path) + r"[A-Za-z0-9_\-]+)", body)
    assert match, body
    return match.group(1)


def test_invitation_and_sign_in_link_arrive_and_work(settings, db, admin, smtp_sink):
    mail = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")
    app = create_app(mail, db=db)
    with Client(app, base_url="http://testserver") as boss:
        boss.sign_in(admin.email)
        assert boss.form("/admin/members/invite", {"name": "Noor", "email": "noor@example.org"}).status_code == 303
    deliver(mail, db)
    invitation = smtp_sink.to("noor@example.org")[0].message
    assert invitation["Subject"] and invitation["Message-ID"] and invitation["Date"]
    assert invitation.get_body(preferencelist=("html",)) is not None
    with Client(app, base_url="http://testserver") as noor:
        path = received_link(smtp_sink, "noor@example.org", "/invite/")
        assert noor.form(path, {"choice": "links"}).status_code == 303
        assert "Welcome, Noor" in noor.get("/").text
        noor.form("/signout")
        smtp_sink.clear()
        noor.form("/signin/link", {"email": "noor@example.org"})
        deliver(mail, db)
        path = received_link(smtp_sink, "noor@example.org", "/signin/link/")
        assert noor.get(path).status_code == 200
        assert noor.form(path).status_code == 303
        assert "Welcome, Noor" in noor.get("/").text
