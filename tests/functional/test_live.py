"""Live updates over Server-Sent Events, through a real server (uvicorn on a socket), on SQLite and PostgreSQL.

The stream is authorized like the proposal's page, carries only the names of what changed, and sends a tally
signal only to members who may see the tally now. What a page then fetches is checked here too: new comments
(hidden ones without their text) and the tally fragment.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest
from bs4 import BeautifulSoup

from app.members.auth import start_session
from tests.factories import make_group, make_member, make_proposal
from tests.live import send
from tests.sse import EventStream


@dataclass
class Person:
    id: int
    token: str


def person(s, settings, **kwargs) -> Person:  # type: ignore[no-untyped-def]
    m = make_member(s, **kwargs)
    return Person(m.id, start_session(s, settings, m, ip="127.0.0.1", user_agent="test"))


@pytest.fixture
def people(db, settings, org):  # type: ignore[no-untyped-def]
    """An admin and three members, each signed in."""
    with db.begin() as s:
        return {
            "admin": person(s, settings, role="admin", name="Ada Admin"),
            "ann": person(s, settings, name="Ann Reader"),
            "bob": person(s, settings, name="Bob Writer"),
            "cy": person(s, settings, name="Cy Voter"),
        }


def proposal(db, **kwargs) -> int:  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return make_proposal(s, state=kwargs.pop("state", "open"), **kwargs).id


def events_path(pid: int) -> str:
    return f"/proposals/{pid}/events"


def comment(port: int, who: Person, pid: int, body: str) -> None:
    status, text = send(port, "POST", f"/proposals/{pid}/comments", who.token, {"body": body})
    assert status == 200, text


def vote(port: int, who: Person, pid: int, choice: str = "yes") -> None:
    status, text = send(port, "POST", f"/proposals/{pid}/vote", who.token, {"choice": choice})
    assert status == 200, text


def live_cursor(port: int, who: Person, pid: int) -> str:
    status, page = send(port, "GET", f"/proposals/{pid}", who.token, htmx=False)
    assert status == 200
    hook = BeautifulSoup(page, "html.parser").find(id="comments-live")
    assert hook is not None, "an open proposal's page has the live comments hook"
    return str(hook["data-hx-get"])


def test_the_stream_is_authorized_like_the_page(db, settings, live_server, people):
    open_pid = proposal(db, secret=False, visibility="live")
    draft_pid = proposal(db, state="draft")
    with db.begin() as s:
        board = make_group(s, name="Board")
        board_pid = make_proposal(s, state="open", groups=(board,)).id

    with EventStream(live_server, events_path(open_pid)) as anonymous:
        assert anonymous.status == 403
    for pid in (draft_pid, board_pid, 999_999):
        with EventStream(live_server, events_path(pid), session_token=people["ann"].token) as refused:
            assert refused.status == 404, pid
    # What the page refuses, its fragments refuse too.
    for path in (f"/proposals/{board_pid}/tally", f"/proposals/{board_pid}/comments/new?after=0"):
        assert send(live_server, "GET", path, people["ann"].token)[0] == 404, path

    with EventStream(live_server, events_path(open_pid), session_token=people["ann"].token) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers.get("x-accel-buffering") == "no"  # nginx passes it through unbuffered
        opening = stream.next_block()
        assert opening is not None and opening.id and opening.retry and opening.retry >= 5000
    # The admin follows a draft they are preparing.
    with EventStream(live_server, events_path(draft_pid), session_token=people["admin"].token) as admin:
        assert admin.status == 200


def test_a_comment_posted_over_http_reaches_an_open_page(db, settings, live_server, people):
    pid = proposal(db)
    other = proposal(db)
    ann, bob = people["ann"], people["bob"]
    news_url = live_cursor(live_server, ann, pid)
    with EventStream(live_server, events_path(pid), session_token=ann.token) as stream, \
            EventStream(live_server, events_path(other), session_token=ann.token) as elsewhere:
        stream.next_block()
        elsewhere.next_block()
        comment(live_server, bob, pid, "Let us **paint** it blue.")
        event = stream.next_event()
        assert event is not None and (event.event, event.data) == ("comment", str(pid))
        assert b"paint" not in stream.raw  # the event names what changed; the page fetches the rest

        status, fragment = send(live_server, "GET", news_url, ann.token)
        assert status == 200
        soup = BeautifulSoup(fragment, "html.parser")
        new = soup.select("[data-hx-swap-oob^='afterbegin:#comment-list'] article.comment")
        assert len(new) == 1 and "Bob Writer" in new[0].text and new[0].find("strong").text == "paint"
        assert soup.find(id="comment-total").text == "1 comment"
        hook = soup.find(id="comments-live")
        assert hook["data-hx-trigger"] == "sse:comment" and hook["data-hx-get"].startswith(news_url.split("?")[0])

        # A reply goes to its thread (moved there by the page's script when the thread is on the page).
        top = int(new[0]["id"].removeprefix("comment-"))
        status, _ = send(live_server, "POST", f"/proposals/{pid}/comments", bob.token,
                         {"body": "And the doors.", "parent_id": str(top)})
        assert status == 200
        stream.wait_for("comment")
        soup = BeautifulSoup(send(live_server, "GET", hook["data-hx-get"], ann.token)[1], "html.parser")
        reply = soup.select_one(f"[data-reply-to='{top}'] article.comment")
        assert reply is not None and "And the doors." in reply.text

        # The other proposal's page heard nothing: a comment there comes first.
        comment(live_server, bob, other, "Meanwhile, elsewhere.")
        assert elsewhere.wait_for("comment") == ["comment"]

    # Without htmx, the fragment's address is the page itself.
    status, _ = send(live_server, "GET", news_url, ann.token, htmx=False)
    assert status == 303


def test_hidden_comments_never_travel_through_the_live_update(db, settings, live_server, people):
    pid = proposal(db)
    ann, bob, admin = people["ann"], people["bob"], people["admin"]
    news_url = live_cursor(live_server, ann, pid)
    with EventStream(live_server, events_path(pid), session_token=ann.token) as stream:
        stream.next_block()
        comment(live_server, bob, pid, "Whisper: the treasurer is Zyxwvut.")
        stream.wait_for("comment")
        with db.read() as s:
            from sqlalchemy import select

            from app.comments.models import Comment

            cid = s.scalar(select(Comment.id).where(Comment.proposal_id == pid))
        status, _ = send(live_server, "POST", f"/comments/{cid}/hide", admin.token, {"reason": "Personal data"})
        assert status in (200, 303)
        status, fragment = send(live_server, "GET", news_url, ann.token)
        assert status == 200
        assert "Zyxwvut" not in fragment and "Bob Writer" not in fragment
        assert "Comment hidden by a moderator" in fragment and "Personal data" in fragment
        # Another comment, so the stream has carried everything there was to carry.
        comment(live_server, bob, pid, "Sorry.")
        stream.wait_for("comment")
        assert b"Zyxwvut" not in stream.raw
    # Admins still see what was hidden, as on the page.
    assert "Zyxwvut" in send(live_server, "GET", news_url, admin.token)[1]


def _barrier(port: int, stream: EventStream, who: Person, pid: int) -> list[str]:
    """Everything the stream had to say about what happened before this returns: post a comment, read up to
    its event, and again (an event of the same moment may come in the same batch, right after the first)."""
    seen = []
    for text in ("First barrier comment.", "Second barrier comment."):
        comment(port, who, pid, text)
        seen += stream.wait_for("comment")
    return seen


def test_tally_signals_only_where_the_tally_is_visible(db, settings, live_server, people):
    ann, bob, cy = people["ann"], people["bob"], people["cy"]
    live_pid = proposal(db, secret=False, visibility="live")
    secret_pid = proposal(db, secret=True, visibility="live")
    after_vote_pid = proposal(db, secret=False, visibility="after_vote")
    after_close_pid = proposal(db, secret=False, visibility="after_close")

    # Shown live: a ballot cast by someone else updates the reader's page.
    with EventStream(live_server, events_path(live_pid), session_token=ann.token) as stream:
        stream.next_block()
        vote(live_server, bob, live_pid, "yes")
        assert stream.wait_for("tally") == ["tally"]
        status, fragment = send(live_server, "GET", f"/proposals/{live_pid}/tally", ann.token)
        assert status == 200 and "Tally so far" in fragment and "1 of" in fragment

    # Never for a secret ballot, nor before close when results wait for it.
    for pid in (secret_pid, after_close_pid):
        with EventStream(live_server, events_path(pid), session_token=ann.token) as stream:
            stream.next_block()
            vote(live_server, bob, pid, "no")
            vote(live_server, ann, pid, "yes")
            assert "tally" not in _barrier(live_server, stream, cy, pid), pid
            status, fragment = send(live_server, "GET", f"/proposals/{pid}/tally", ann.token)
            assert status == 200 and "Tally so far" not in fragment

    # "After you vote": nothing until the reader has voted, then every ballot.
    with EventStream(live_server, events_path(after_vote_pid), session_token=ann.token) as stream:
        stream.next_block()
        vote(live_server, bob, after_vote_pid, "no")
        assert "tally" not in _barrier(live_server, stream, cy, after_vote_pid)
        assert "Tally so far" not in send(live_server, "GET", f"/proposals/{after_vote_pid}/tally", ann.token)[1]
        vote(live_server, ann, after_vote_pid, "yes")
        stream.wait_for("tally")
        vote(live_server, cy, after_vote_pid, "yes")
        stream.wait_for("tally")
        assert "Tally so far" in send(live_server, "GET", f"/proposals/{after_vote_pid}/tally", ann.token)[1]


def test_closing_shows_everyone_the_result_and_ends_the_stream(db, settings, live_server, people):
    pid = proposal(db, secret=True)
    ann, bob, admin = people["ann"], people["bob"], people["admin"]
    vote(live_server, bob, pid, "yes")
    with EventStream(live_server, events_path(pid), session_token=ann.token) as stream:
        stream.next_block()
        status, _ = send(live_server, "POST", f"/admin/proposals/{pid}/close", admin.token,
                         {"reason": "Everyone has voted"})
        assert status == 303
        assert stream.wait_for("closed") == ["tally", "closed"]
        assert stream.next_block() is None  # the stream ends; the page closes its EventSource on "closed"
    status, fragment = send(live_server, "GET", f"/proposals/{pid}/tally", ann.token)
    assert status == 200 and "Result" in fragment and "data-hx-trigger" not in fragment
    # A page opened on a closed proposal has no stream; one that connects anyway is told at once.
    with EventStream(live_server, events_path(pid), session_token=ann.token) as late:
        assert late.wait_for("closed") == ["tally", "closed"]


def test_a_reconnecting_page_is_told_to_fetch_everything_again(db, settings, live_server, people):
    pid = proposal(db, secret=False, visibility="live")
    ann = people["ann"]
    with EventStream(live_server, events_path(pid), session_token=ann.token, last_event_id="live") as stream:
        assert stream.wait_for("tally") == ["comment", "tally"]


def test_the_page_loads_the_extension_only_while_voting_is_open(db, settings, live_server, people):
    open_pid = proposal(db)
    closed_pid = proposal(db)
    status, _ = send(live_server, "POST", f"/admin/proposals/{closed_pid}/close", people["admin"].token,
                     {"reason": "Done"})
    assert status == 303

    status, page = send(live_server, "GET", f"/proposals/{open_pid}", people["ann"].token, htmx=False)
    soup = BeautifulSoup(page, "html.parser")
    wrapper = soup.find(id="proposal-page")
    assert wrapper["data-hx-ext"] == "sse" and wrapper["data-sse-connect"] == events_path(open_pid)
    assert wrapper["data-sse-close"] == "closed"
    scripts = [tag["src"] for tag in soup.find_all("script", src=True)]
    assert any(re.search(r"/static/vendor/htmx-ext-sse-2\.2\.4\.min\.js$", src) for src in scripts)
    assert any(src.endswith("/static/live.js") for src in scripts)
    assert soup.find(id="live-tally")["data-hx-trigger"] == "sse:tally"
    assert soup.find(id="comments-live")["data-hx-trigger"] == "sse:comment"
    assert not soup.find_all("script", src=False), "no inline script (the CSP forbids it)"

    status, page = send(live_server, "GET", f"/proposals/{closed_pid}", people["ann"].token, htmx=False)
    soup = BeautifulSoup(page, "html.parser")
    assert not soup.find(id="proposal-page").get("data-sse-connect")
    assert soup.find(id="comments-live") is None
    assert not any("htmx-ext-sse" in tag["src"] for tag in soup.find_all("script", src=True))


def test_a_member_cannot_open_streams_without_end(db, settings, app, live_server, people, monkeypatch):
    from app import live

    monkeypatch.setattr(live, "MAX_STREAMS_PER_MEMBER", 2)
    pid = proposal(db)
    ann = people["ann"]
    with EventStream(live_server, events_path(pid), session_token=ann.token) as first, \
            EventStream(live_server, events_path(pid), session_token=ann.token) as second:
        first.next_block()
        second.next_block()
        with EventStream(live_server, events_path(pid), session_token=ann.token) as third:
            assert third.status == 429
        with EventStream(live_server, events_path(pid), session_token=people["bob"].token) as other:
            assert other.status == 200  # per member
    # Closed streams free their places (once the server has seen them go).
    deadline = time.monotonic() + 10
    while app.state.live.streams_of(ann.id):
        assert time.monotonic() < deadline, "closed streams still counted"
        time.sleep(0.02)
    with EventStream(live_server, events_path(pid), session_token=ann.token) as again:
        assert again.status == 200
