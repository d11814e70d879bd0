"""Long discussions stay fast: a page of comments takes the same number of SQL statements whether the
proposal has 5 comments, 200 or 5,000 (no N+1: authors, endorsement counts, "I endorsed", replies and earlier
versions are loaded for a whole page at once)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from app.comments.models import CommentRevision, Endorsement
from app.db import utcnow
from tests.factories import make_comment, make_member, make_proposal

HX = {"HX-Request": "true"}


@contextmanager
def statements(db) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def discussion(db, n: int, reader_id: int, admin_id: int) -> int:  # type: ignore[no-untyped-def]
    """A proposal with `n` top-level comments shaped alike: every one has two replies (one edited, one
    endorsed by the reader), an endorsement by the reader and an earlier version; plus an official response
    with a reply."""
    with db.begin() as s:
        p = make_proposal(s, state="open")
        authors = [make_member(s) for _ in range(5)]
        admin = s.get(type(authors[0]), admin_id)
        official = make_comment(s, p, admin, body="We hear you.", response_status="review")
        make_comment(s, p, authors[0], body="Thanks.", parent=official)
        for i in range(n):
            c = make_comment(s, p, authors[i % 5], body=f"Comment **{i}**", stance=("for", "against", None)[i % 3])
            first = make_comment(s, p, authors[(i + 1) % 5], body=f"Reply to {i}", parent=c)
            make_comment(s, p, authors[(i + 2) % 5], body=f"Second reply to {i}", parent=c)
            for target in (c, first):
                s.add(Endorsement(comment_id=target.id, member_id=reader_id))
                target.endorsement_count += 1
            for target in (c, first):
                s.add(CommentRevision(comment_id=target.id, body_md="Earlier", written_at=utcnow()))
                target.edited_at = utcnow()
        return p.id


URLS = [
    ("/proposals/{pid}", {}),
    ("/proposals/{pid}/comments", {}),
    ("/proposals/{pid}/comments?sort=endorsed", HX),
    ("/proposals/{pid}/comments?sort=oldest", HX),
    ("/proposals/{pid}/arguments", {}),
]


@pytest.mark.parametrize("who", ["member", "admin"])
def test_statements_do_not_grow_with_the_discussion(request, db, member, admin, who):
    client = request.getfixturevalue(f"{who}_client")
    small = discussion(db, 5, client.member.id, admin.id)
    large = discussion(db, 200, client.member.id, admin.id)
    for url, headers in URLS:
        counts = []
        for pid in (small, large):
            client.get(url.format(pid=pid), headers=headers)  # warm: the session's last-seen touch, caches
            with statements(db) as seen:
                r = client.get(url.format(pid=pid), headers=headers)
            assert r.status_code == 200
            counts.append(len(seen))
        assert counts[0] == counts[1], (url, counts)
    # The large page really showed a full batch, with everything the statements had to load.
    page = client.get(f"/proposals/{large}").text
    assert page.count('class="comment-body"') >= 50 * 3 and "including yours" in page
    assert ("Earlier versions" in page) == (who == "admin")


def test_show_more_costs_the_same_deep_in_the_list(member_client, db, member, admin):
    pid = discussion(db, 200, member.id, admin.id)
    from bs4 import BeautifulSoup

    link = BeautifulSoup(member_client.get(f"/proposals/{pid}/comments").text, "html.parser") \
        .select_one("#comment-list p.show-more a")["href"]
    counts = []
    while link:
        with statements(db) as seen:
            r = member_client.get(link, headers=HX)
        counts.append(len(seen))
        more = BeautifulSoup(r.text, "html.parser").select_one("p.show-more a")
        link = more["href"] if more else None
    assert len(counts) == 3 and len(set(counts)) == 1, counts


def test_five_thousand_comments_cost_what_five_do(member_client, db, member):
    """At full size: 5,000 comments (a fifth of them replies) against 5, the same statements for every page."""
    from sqlalchemy import insert, select

    from app.comments.models import Comment
    from app.comments.services import recount

    def bulk(n: int) -> int:
        with db.begin() as s:
            p = make_proposal(s, state="open")
            authors = [make_member(s).id for _ in range(5)]
            now = utcnow()
            top = n - n // 5
            s.execute(insert(Comment), [
                {"proposal_id": p.id, "author_id": authors[i % 5], "kind": "comment", "paragraph": 0,
                 "stance": ("for", "against", None)[i % 3], "body_md": f"Comment {i}", "created_at": now,
                 "endorsement_count": i % 7, "hidden_reason": ""} for i in range(top)])
            parents = list(s.scalars(select(Comment.id).where(Comment.proposal_id == p.id)))
            s.execute(insert(Comment), [
                {"proposal_id": p.id, "author_id": authors[i % 5], "kind": "reply", "paragraph": 0,
                 "parent_id": parents[i % len(parents)], "body_md": f"Reply {i}", "created_at": now,
                 "endorsement_count": 0, "hidden_reason": ""} for i in range(n - top)])
            recount(s, p.id)
            return p.id

    small, large = bulk(5), bulk(5_000)
    for url, headers in URLS:
        counts = []
        for pid in (small, large):
            member_client.get(url.format(pid=pid), headers=headers)
            with statements(db) as seen:
                r = member_client.get(url.format(pid=pid), headers=headers)
            assert r.status_code == 200
            counts.append(len(seen))
        assert counts[0] == counts[1], (url, counts)
    page = member_client.get(f"/proposals/{large}").text
    assert page.count('class="comment-body"') >= 50 and "5,000 comments" in page
