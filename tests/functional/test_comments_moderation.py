"""Admins and comments: official responses, hiding and restoring, keeping flagged comments, blocks, closing
comments, the moderation page; and that a hidden comment's text reaches no member by any route."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from app.comments import services
from app.comments.models import Comment, CommentBlock, CommentCount, Flag, Notification
from app.members.models import AuditEvent
from tests.factories import make_comment, make_member, make_proposal

HX = {"HX-Request": "true"}
SECRET = "The treasurer's home address is 12 Elm Street"


def soup(r) -> BeautifulSoup:  # type: ignore[no-untyped-def]
    return BeautifulSoup(r.text, "html.parser")


def actions(db) -> list[str]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def get(db, cid: int) -> Comment:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return s.get_one(Comment, cid)


@pytest.fixture
def proposal(db, member, admin):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return make_proposal(s, state="open", created_by=admin.id)


# --- official responses ---------------------------------------------------------------------------------------

def test_official_response_to_the_proposal_is_pinned_with_its_status(admin_client, member_client, db, proposal,
                                                                     member):
    with db.begin() as s:
        make_comment(s, proposal, member, body="Please paint it blue instead.")
    admin_page = soup(admin_client.get(f"/proposals/{proposal.id}"))
    select_ = admin_page.find("select", attrs={"name": "response_status"})
    assert [o["value"] for o in select_.find_all("option")] == ["", "review", "accepted", "changed", "declined"]
    r = admin_client.form(f"/proposals/{proposal.id}/comments",
                          {"body": "We changed the colour to blue.", "response_status": "changed"}, headers=HX)
    assert r.status_code == 200 and soup(r).find(attrs={"data-hx-swap-oob": "afterbegin:#pinned-list"})
    page = soup(member_client.get(f"/proposals/{proposal.id}"))
    pinned = page.find(id="pinned-list").find("article")
    assert "official" in pinned["class"]
    assert pinned.find(class_="official-badge").text == "Official response: Changed the proposal"
    assert page.find(id="feedback-status").strong.text == "Changed the proposal"
    assert pinned["id"] not in [a["id"] for a in page.find(id="comment-list").select("article")]
    assert "comment.respond" in actions(db)


def test_members_cannot_post_official_responses(member_client, db, proposal):
    r = member_client.form(f"/proposals/{proposal.id}/comments", {"body": "Official!", "response_status": "accepted"})
    assert r.status_code == 403
    with db.read() as s:
        assert s.scalar(select(Comment.id)) is None
    assert soup(member_client.get(f"/proposals/{proposal.id}")).find(attrs={"name": "response_status"}) is None


def test_unknown_status_refused(admin_client, proposal):
    r = admin_client.form(f"/proposals/{proposal.id}/comments", {"body": "x", "response_status": "maybe"})
    assert r.status_code == 400


def test_official_reply_is_pinned_in_its_thread_and_notifies_the_author(admin_client, member_client, db,
                                                                          proposal, member, admin):
    with db.begin() as s:
        top = make_comment(s, proposal, member, body="Can we get a bike rack?")
        for i in range(5):
            make_comment(s, proposal, admin, body=f"Reply {i}", parent=top)
    r = admin_client.form(f"/proposals/{proposal.id}/comments",
                          {"body": "Yes, in spring.", "parent_id": str(top.id), "response_status": "accepted"})
    assert r.status_code == 303
    with db.read() as s:
        official = s.scalar(select(Comment).where(Comment.response_status == "accepted"))
        notes = s.execute(select(Notification.member_id, Notification.kind)).all()
    assert notes == [(member.id, "response")]
    thread = soup(member_client.get(f"/proposals/{proposal.id}")).find(id=f"replies-{top.id}")
    # Six replies: the thread is collapsed, but the official answer shows.
    assert [a["id"] for a in thread.select("article")] == [f"comment-{official.id}"]
    assert thread.select_one("p.show-more a").text.startswith("Show all 6 replies")


def test_admins_respond_after_close_and_when_comments_are_closed(admin_client, db, settings, proposal):
    from app.voting.services import close_proposal

    assert admin_client.form(f"/proposals/{proposal.id}/comments/close").status_code == 303
    assert admin_client.form(f"/proposals/{proposal.id}/comments", {"body": "Ordinary"}).status_code == 409
    assert admin_client.form(f"/proposals/{proposal.id}/comments",
                             {"body": "Under review", "response_status": "review"}).status_code == 303
    with db.begin() as s:
        close_proposal(s, settings, proposal.id, actor_id=None)
    page = soup(admin_client.get(f"/proposals/{proposal.id}"))
    options = page.find("select", attrs={"name": "response_status"}).find_all("option")
    assert "" not in [o["value"] for o in options]  # only official responses can be posted now
    assert admin_client.form(f"/proposals/{proposal.id}/comments",
                             {"body": "Declined: the budget is spent.", "response_status": "declined"}
                             ).status_code == 303


# --- hiding ---------------------------------------------------------------------------------------------------

@pytest.fixture
def hidden(db, proposal, member, admin):  # type: ignore[no-untyped-def]
    """A comment by the member, with a reply, hidden by the admin; and its flag, resolved by hiding."""
    from app.middleware import CurrentMember

    with db.begin() as s:
        c = make_comment(s, proposal, member, body=SECRET, stance="against")
        make_comment(s, proposal, admin, body="A fine reply", parent=c)
        other = make_member(s, name="Fay Flagger")
        s.add(Flag(comment_id=c.id, member_id=other.id, reason="Doxxing"))
    from app.comments import moderation

    with db.begin() as s:
        moderation.hide(s, CurrentMember(id=admin.id, name="", email="", role="admin", session_id=0), c.id,
                        reason="Personal information")
    return c


def test_hiding_needs_a_reason_and_is_audited(admin_client, db, proposal, member):
    with db.begin() as s:
        c = make_comment(s, proposal, member, body="Off topic")
    assert admin_client.form(f"/comments/{c.id}/hide", {"reason": " "}).status_code == 400
    r = admin_client.form(f"/comments/{c.id}/hide", {"reason": "Off topic", "next": f"/comments/{c.id}"},
                          headers=HX)
    assert r.status_code == 200
    article = soup(r).find("article", id=f"comment-{c.id}")
    assert "Off topic" in article.find(class_="warning").text and article.find(class_="comment-body")
    assert article.find("form", action=f"/comments/{c.id}/restore").button.text.startswith("Restore")
    assert actions(db)[-1] == "comment.hide"
    assert admin_client.form(f"/comments/{c.id}/hide", {"reason": "Again"}).status_code == 409
    r = admin_client.form(f"/comments/{c.id}/restore", {"next": f"/comments/{c.id}#comment-{c.id}"})
    assert r.status_code == 303 and r.headers["location"] == f"/comments/{c.id}#comment-{c.id}"
    assert get(db, c.id).hidden_at is None and actions(db)[-1] == "comment.restore"
    assert admin_client.form(f"/comments/{c.id}/restore").status_code == 409


def test_members_cannot_moderate(member_client, db, proposal, admin):
    with db.begin() as s:
        c = make_comment(s, proposal, admin)
    for path, data in [(f"/comments/{c.id}/hide", {"reason": "x"}), (f"/comments/{c.id}/restore", {}),
                       (f"/comments/{c.id}/keep", {}), ("/admin/moderation/blocks", {"email": "x", "days": "1"}),
                       (f"/proposals/{proposal.id}/comments/close", {}),
                       (f"/proposals/{proposal.id}/comments/reopen", {})]:
        assert member_client.form(path, data).status_code == 403, path
    assert member_client.get("/admin/moderation").status_code == 403
    assert get(db, c.id).hidden_at is None


def test_members_see_the_reason_never_the_text(member_client, db, proposal, hidden):
    c = hidden
    urls = [
        f"/proposals/{proposal.id}", f"/proposals/{proposal.id}/comments",
        f"/proposals/{proposal.id}/comments?sort=endorsed", f"/proposals/{proposal.id}/comments?sort=oldest",
        f"/proposals/{proposal.id}/comments?stance=against", f"/proposals/{proposal.id}/arguments",
        f"/comments/{c.id}", f"/comments/{c.id}/replies",
    ]
    for url in urls:
        for headers in ({}, HX):
            r = member_client.get(url, headers=headers)
            assert r.status_code == 200, url
            assert SECRET not in r.text and "12 Elm" not in r.text, (url, headers)
    page = soup(member_client.get(f"/proposals/{proposal.id}"))
    article = page.find(id=f"comment-{c.id}")
    assert article.find(class_="comment-gone").text == "Comment hidden by a moderator"
    assert "Personal information" in article.text and "Mia Member" not in article.find(class_="comment-gone").text
    assert article.find(class_="stance") is None and article.find("footer", recursive=False) is None
    assert "A fine reply" in article.text  # its replies stay
    assert soup(member_client.get(f"/proposals/{proposal.id}/arguments")).find(id="side-against").select(
        "article") == []
    # The routes that would carry the text back (the edit form above all) refuse.
    for url in (f"/comments/{c.id}/edit", f"/comments/{c.id}/reply", f"/comments/{c.id}/flag"):
        for headers in ({}, HX):
            r = member_client.get(url, headers=headers)
            assert r.status_code == 409 and SECRET not in r.text, url
    for url, data in [(f"/comments/{c.id}/edit", {"body": "new"}), (f"/comments/{c.id}/endorse", {"endorse": "1"}),
                      (f"/comments/{c.id}/delete", {})]:
        r = member_client.form(url, data, headers=HX)
        assert r.status_code == 409 and SECRET not in r.text, url
    assert get(db, c.id).body_md == SECRET
    # Replying to it by posting straight to the proposal's comments (no form needed) is refused too.
    replies_before = reply_count(db, c.id)
    for headers in ({}, HX):
        r = member_client.form(f"/proposals/{proposal.id}/comments", {"body": "Me too", "parent_id": str(c.id)},
                               headers=headers)
        assert r.status_code == 409 and SECRET not in r.text, headers
    assert reply_count(db, c.id) == replies_before


def reply_count(db, comment_id: int) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Comment).where(Comment.parent_id == comment_id)) or 0


def test_admins_still_read_a_hidden_comment(admin_client, proposal, hidden):
    article = soup(admin_client.get(f"/proposals/{proposal.id}")).find(id=f"comment-{hidden.id}")
    assert SECRET in article.find(class_="comment-body").text
    assert "Personal information" in article.find(class_="warning").text


def test_hidden_comments_leave_the_counts(member_client, db, proposal, hidden):
    page = soup(member_client.get(f"/proposals/{proposal.id}"))
    assert page.find(id="comment-total").text == "1 comment"  # the reply
    assert_counts_match(db, proposal.id)


# --- the queue ------------------------------------------------------------------------------------------------

def test_queue_lists_flags_and_keep_clears_them(admin_client, member_client, db, proposal, admin):
    with db.begin() as s:
        c = make_comment(s, proposal, admin, body="Flag me")
    member_client.form(f"/comments/{c.id}/flag", {"reason": "It is wrong"})
    page = soup(admin_client.get("/admin/moderation"))
    item = page.find(id=f"queue-{c.id}")
    assert "It is wrong" in item.find(class_="flags").text and "Mia Member" in item.find(class_="flags").text
    assert "1 open flag" in page.text
    r = admin_client.form(f"/comments/{c.id}/keep", {"next": "/admin/moderation"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/moderation"
    page = soup(admin_client.get("/admin/moderation"))
    assert page.find(id=f"queue-{c.id}") is None and page.find(id="queue-empty")
    with db.read() as s:
        assert s.scalar(select(Flag.resolution)) == "kept"
    assert actions(db)[-1] == "comment.keep"
    assert admin_client.form(f"/comments/{c.id}/keep").status_code == 409


def test_hiding_from_the_queue_resolves_the_flags(admin_client, db, proposal, hidden):
    with db.read() as s:
        assert s.scalar(select(Flag.resolution)) == "hidden"
    page = soup(admin_client.get("/admin/moderation"))
    assert page.find(id=f"queue-{hidden.id}") is None
    assert "Personal information" in page.find(id=f"hidden-{hidden.id}").text


def test_moderation_link_for_admins_only(admin_client, member_client):
    assert soup(admin_client.get("/")).find("a", href="/admin/moderation").text == "Moderation"
    assert soup(member_client.get("/")).find("a", href="/admin/moderation") is None


# --- blocks ---------------------------------------------------------------------------------------------------

def test_blocked_member_cannot_comment_until_lifted(admin_client, member_client, db, proposal, member, admin):
    with db.begin() as s:
        c = make_comment(s, proposal, admin)
        mine = make_comment(s, proposal, member, body="Before the block")
    r = admin_client.form("/admin/moderation/blocks", {"email": member.email, "days": "7", "reason": "Cool off",
                                                       "next": "/admin/moderation"})
    assert r.status_code == 303 and actions(db)[-1] == "comment.block"
    refused = member_client.form(f"/proposals/{proposal.id}/comments", {"body": "Let me in"})
    assert refused.status_code == 403 and "Cool off" in refused.text
    assert member_client.form(f"/proposals/{proposal.id}/comments",
                              {"body": "Reply", "parent_id": str(c.id)}).status_code == 403
    assert member_client.form(f"/comments/{mine.id}/edit", {"body": "Edited"}).status_code == 403
    page = soup(member_client.get(f"/proposals/{proposal.id}"))
    assert "Cool off" in page.find(id="comments-blocked").text and page.find(id="comment-form-main") is None
    # Reading, endorsing and deleting one's own stay open.
    assert member_client.form(f"/comments/{c.id}/endorse", {"endorse": "1"}).status_code == 303
    with db.read() as s:
        block_id = s.scalar(select(CommentBlock.id))
    assert f"block-{block_id}" in admin_client.get("/admin/moderation").text
    assert admin_client.form(f"/admin/moderation/blocks/{block_id}/lift").status_code == 303
    assert actions(db)[-1] == "comment.unblock"
    assert member_client.form(f"/proposals/{proposal.id}/comments", {"body": "Back"}).status_code == 303
    assert admin_client.form(f"/admin/moderation/blocks/{block_id}/lift").status_code == 409


def test_block_from_a_flagged_comment_and_its_checks(admin_client, db, member, admin):
    ok = {"member_id": str(member.id), "days": "3", "reason": "Spam"}
    assert admin_client.form("/admin/moderation/blocks", ok).status_code == 303
    assert admin_client.form("/admin/moderation/blocks", {**ok, "days": "0"}).status_code == 400
    assert admin_client.form("/admin/moderation/blocks", {**ok, "days": "x"}).status_code == 400
    assert admin_client.form("/admin/moderation/blocks", {**ok, "reason": ""}).status_code == 400
    assert admin_client.form("/admin/moderation/blocks", {**ok, "member_id": str(admin.id)}).status_code == 409
    assert admin_client.form("/admin/moderation/blocks", {"email": "nobody@example.org", "days": "1",
                                                          "reason": "x"}).status_code == 404
    with db.read() as s:
        assert [b.member_id for b in s.scalars(select(CommentBlock))] == [member.id]


def test_blocks_end_by_themselves(member_client, db, proposal, member, admin):
    import datetime as dt

    from freezegun import freeze_time

    from app.db import utcnow

    with db.begin() as s:
        s.add(CommentBlock(member_id=member.id, until=utcnow() + dt.timedelta(days=1), reason="A day off",
                           created_by=admin.id))
    assert member_client.form(f"/proposals/{proposal.id}/comments", {"body": "Now?"}).status_code == 403
    with freeze_time(utcnow() + dt.timedelta(days=1, minutes=1)):
        assert member_client.form(f"/proposals/{proposal.id}/comments", {"body": "Now."}).status_code == 303


# --- closing comments -----------------------------------------------------------------------------------------

def test_closing_comments_keeps_them_readable(admin_client, member_client, db, proposal, admin):
    with db.begin() as s:
        c = make_comment(s, proposal, admin, body="Still here")
    r = admin_client.form(f"/proposals/{proposal.id}/comments/close")
    assert r.status_code == 303 and r.headers["location"] == f"/proposals/{proposal.id}#comments"
    assert actions(db)[-1] == "comments.close"
    assert admin_client.form(f"/proposals/{proposal.id}/comments/close").status_code == 409
    page = soup(member_client.get(f"/proposals/{proposal.id}"))
    assert "An admin has closed comments" in page.find(id="comments-closed").text
    assert "Still here" in page.find(id=f"comment-{c.id}").text and page.find(id="comment-form-main") is None
    assert member_client.form(f"/proposals/{proposal.id}/comments", {"body": "Hello?"}).status_code == 409
    assert member_client.form(f"/comments/{c.id}/endorse", {"endorse": "1"}).status_code == 409
    assert soup(admin_client.get(f"/proposals/{proposal.id}")).find(id="comments-open-form").button.text == \
        "Reopen comments"
    assert admin_client.form(f"/proposals/{proposal.id}/comments/reopen").status_code == 303
    assert actions(db)[-1] == "comments.reopen"
    assert member_client.form(f"/proposals/{proposal.id}/comments", {"body": "Hello!"}).status_code == 303


# --- counts stay right ----------------------------------------------------------------------------------------

def assert_counts_match(db, proposal_id: int) -> None:  # type: ignore[no-untyped-def]
    with db.read() as s:
        kept = sorted((c.paragraph, c.stance, c.n) for c in s.scalars(
            select(CommentCount).where(CommentCount.proposal_id == proposal_id)) if c.n)
    with db.begin() as s:
        services.recount(s, proposal_id)
        s.flush()
        fresh = sorted((c.paragraph, c.stance, c.n) for c in s.scalars(
            select(CommentCount).where(CommentCount.proposal_id == proposal_id)))
        s.rollback()
    assert kept == fresh


def test_counts_follow_every_change(admin_client, member_client, db, proposal, member, admin):
    pid = proposal.id
    for stance in ("for", "for", "against", ""):
        member_client.form(f"/proposals/{pid}/comments", {"body": "x", "stance": stance})
    with db.read() as s:
        first, second, third, fourth = s.scalars(select(Comment.id).order_by(Comment.id)).all()
    member_client.form(f"/proposals/{pid}/comments", {"body": "reply", "parent_id": str(first)})
    member_client.form(f"/comments/{second}/edit", {"body": "changed my mind", "stance": "against"})
    member_client.form(f"/comments/{first}/delete")  # has a reply: stays as "comment deleted"
    member_client.form(f"/comments/{fourth}/delete")
    admin_client.form(f"/comments/{third}/hide", {"reason": "No"})
    assert_counts_match(db, pid)
    page = soup(member_client.get(f"/proposals/{pid}"))
    assert page.find(id="comment-total").text == "2 comments"  # the edited one and the reply
    assert "against (1)" in page.find("a", href=f"/proposals/{pid}/arguments").text
    admin_client.form(f"/comments/{third}/restore")
    assert_counts_match(db, pid)
