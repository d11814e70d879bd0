"""OWASP filter-evasion payloads and Markdown tricks through every way text becomes a comment (a comment, a
reply, an edit, a paragraph comment), checked on the pages that show them."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from app.comments import services
from app.comments.models import Comment
from tests.factories import make_member, make_proposal
from tests.unit.test_markdown import PAYLOADS, assert_harmless, scheme_ok

HX = {"HX-Request": "true"}
OWN_SCRIPTS = {"/static/vendor/htmx-2.0.11.min.js", "/static/comments.js", "/static/vendor/htmx-ext-sse-2.2.4.min.js",
               "/static/live.js"}
SWAP_ATTRS = ("data-hx-", "hx-")


@pytest.fixture(autouse=True)
def _no_rate_limit(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(services, "RATE_LIMIT", 10_000)


def assert_page_harmless(html: str) -> None:
    page = BeautifulSoup(html, "html.parser")
    for script in page.find_all("script"):
        assert script.get("src") in OWN_SCRIPTS and not script.string, script
    for tag in page.find_all(True):
        assert tag.name not in {"iframe", "object", "embed", "img", "svg", "math", "style", "base", "frame"}, tag
        if tag.name in {"meta", "link"}:
            assert tag.find_parent("head") is not None, tag
        for attr, value in tag.attrs.items():
            assert not attr.lower().startswith("on"), tag
            if attr in {"href", "src", "action", "formaction", "data-hx-get", "data-hx-post"}:
                assert scheme_ok(value if isinstance(value, str) else " ".join(value)), tag
    for body in page.select(".comment-body, .revision"):
        assert_harmless(str(body.decode_contents()))
        for tag in body.find_all(True):
            assert not any(a.startswith(SWAP_ATTRS) for a in tag.attrs), tag  # no htmx attributes from members


def bodies(db, **where) -> list[str]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        q = select(Comment.body_md).order_by(Comment.id)
        for k, v in where.items():
            q = q.where(getattr(Comment, k) == v)
        return list(s.scalars(q))


def test_payloads_as_comments(member_client, db, member):
    with db.begin() as s:
        p = make_proposal(s, state="open")
    for payload in PAYLOADS:
        assert member_client.form(f"/proposals/{p.id}/comments", {"body": payload}).status_code in (303, 400)
    r = member_client.form(f"/proposals/{p.id}/comments", {"body": PAYLOADS[0]}, headers=HX)
    assert_page_harmless(r.text)
    assert len(bodies(db)) >= len(PAYLOADS) - 3  # a few are all markup and have no readable text
    page = member_client.get(f"/proposals/{p.id}")
    assert_page_harmless(page.text)
    shown = BeautifulSoup(page.text, "html.parser").select("#comment-list article")
    assert len(shown) == min(50, len(bodies(db)))
    assert_page_harmless(member_client.get(f"/proposals/{p.id}/comments?sort=oldest").text)


def test_payloads_as_replies(member_client, admin_client, db, member):
    with db.begin() as s:
        p = make_proposal(s, state="open")
    admin_client.form(f"/proposals/{p.id}/comments", {"body": "Top"})
    with db.read() as s:
        top = s.scalar(select(Comment.id))
    for payload in PAYLOADS:
        member_client.form(f"/proposals/{p.id}/comments", {"body": payload, "parent_id": str(top)})
    for url in (f"/comments/{top}", f"/comments/{top}/replies"):
        assert_page_harmless(member_client.get(url).text)
        assert_page_harmless(member_client.get(url, headers=HX).text)
    assert_page_harmless(admin_client.get(f"/proposals/{p.id}").text)


def test_payloads_as_edits(member_client, admin_client, db, member):
    with db.begin() as s:
        p = make_proposal(s, state="open")
    for _ in PAYLOADS:
        member_client.form(f"/proposals/{p.id}/comments", {"body": "Plain words"})
    with db.read() as s:
        ids = list(s.scalars(select(Comment.id).order_by(Comment.id)))
    for cid, payload in zip(ids, PAYLOADS, strict=True):
        r = member_client.form(f"/comments/{cid}/edit", {"body": payload}, headers=HX)
        assert r.status_code in (200, 400)
        assert_page_harmless(r.text)
    assert_page_harmless(member_client.get(f"/proposals/{p.id}").text)
    # Admins also see the earlier versions.
    for cid in ids[:10]:
        member_client.form(f"/comments/{cid}/edit", {"body": "Plain again"})
    assert_page_harmless(admin_client.get(f"/proposals/{p.id}/comments?sort=oldest").text)


def test_payloads_as_paragraph_comments(member_client, db, member):
    with db.begin() as s:
        p = make_proposal(s, state="open", kind="policy", proposed_text="One.\n\n<script>alert(1)</script>")
    for payload in PAYLOADS:
        member_client.form(f"/proposals/{p.id}/comments", {"body": payload, "paragraph": "2"})
    assert bodies(db, paragraph=2)
    page = member_client.get(f"/proposals/{p.id}/comments?paragraph=2")
    assert_page_harmless(page.text)
    assert_page_harmless(member_client.get(f"/proposals/{p.id}").text)


def test_names_and_reasons_are_text(admin_client, member_client, db, org):
    evil = '<img src=x onerror=alert(1)>"><script>alert(2)</script>'
    with db.begin() as s:
        author = make_member(s, name=evil)
        p = make_proposal(s, state="open")
        c = Comment(proposal_id=p.id, author_id=author.id, body_md=f"Hi @{evil}", stance="for")
        s.add(c)
    admin_client.form(f"/comments/{c.id}/hide", {"reason": evil})
    member_client.form(f"/comments/{c.id}/flag", {"reason": evil})
    for client in (admin_client, member_client):
        assert_page_harmless(client.get(f"/proposals/{p.id}").text)
    assert_page_harmless(admin_client.get("/admin/moderation").text)
