"""Members' comments through HTTP: posting (with and without htmx), replies, paragraphs, edits, deletes,
endorsements, flags, mentions, limits, and every refusal."""

from __future__ import annotations

import datetime as dt

import pytest
from bs4 import BeautifulSoup
from freezegun import freeze_time
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.comments.models import Comment, CommentRevision, Endorsement, Flag, Notification
from app.db import utcnow
from tests.conftest import PASSWORD, Client
from tests.factories import make_comment, make_group, make_member, make_proposal

HX = {"HX-Request": "true"}
POLICY = "Rent is due on the fifth.\n\nLate fees are capped at 5%.\n\nThe board reviews this yearly."


def soup(r) -> BeautifulSoup:  # type: ignore[no-untyped-def]
    return BeautifulSoup(r.text, "html.parser")


def post(client: Client, pid: int, body: str = "I agree with this.", htmx: bool = False, **fields: object):
    return client.form(f"/proposals/{pid}/comments", {"body": body, **fields}, headers=HX if htmx else {})


def count(db, model=Comment, **where) -> int:  # type: ignore[no-untyped-def]
    with db.read() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


def get(db, cid: int) -> Comment | None:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return s.get(Comment, cid)


def article_ids(page: BeautifulSoup, within: str | None = None) -> list[int]:
    root = page.select_one(within) if within else page
    assert root is not None, within
    return [int(a["id"].removeprefix("comment-")) for a in root.select("article.comment")]


def last_id(db) -> int:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return s.scalar(select(func.max(Comment.id)))


@pytest.fixture
def proposal(db, member, admin):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return make_proposal(s, state="open", created_by=admin.id)


@pytest.fixture
def policy(db, member, admin):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return make_proposal(s, state="open", kind="policy", current_text="Rent is due on the first.",
                             proposed_text=POLICY)


@pytest.fixture
def other(app, db, org):  # type: ignore[no-untyped-def]
    """A second signed-in member."""
    with db.begin() as s:
        m = make_member(s, email="olu@example.org", name="Olu Other", password=PASSWORD)
    with Client(app, base_url="http://testserver") as c:
        c.sign_in(m.email)
        c.member = m
        yield c


# --- posting --------------------------------------------------------------------------------------------------

def test_post_without_javascript_redirects_to_the_comment(member_client, db, proposal):
    r = post(member_client, proposal.id, "I **agree**, and [here is why](https://example.org/why).", stance="for")
    cid = last_id(db)
    assert r.status_code == 303 and r.headers["location"] == f"/proposals/{proposal.id}#comment-{cid}"
    page = soup(member_client.get(r.headers["location"]))
    comment = page.find(id=f"comment-{cid}")
    assert comment.find("strong").text == "agree"
    assert comment.find("a", href="https://example.org/why")["rel"] == ["nofollow", "noopener"]
    assert comment.find(class_="stance").text == "For the proposal"
    assert comment.find(id=f"comment-{cid}-h").text.strip() == "Mia Member"
    assert page.find(id="comment-total").text == "1 comment"
    assert "Your comment is posted." in page.find(class_="flash").text


def test_post_with_htmx_inserts_the_comment_and_clears_the_form(member_client, db, proposal):
    r = post(member_client, proposal.id, "Posted in place.", htmx=True)
    assert r.status_code == 200 and "<html" not in r.text and r.headers["vary"] == "HX-Request"
    page = soup(r)
    cid = last_id(db)
    form = page.find("form", id="comment-form-main")
    assert form.find("textarea").text == ""  # a blank form replaces the one sent
    oob = page.find(attrs={"data-hx-swap-oob": "afterbegin:#comment-list"})
    assert oob.find("article", id=f"comment-{cid}").find(class_="comment-body").text.strip() == "Posted in place."
    assert page.find(id="comment-total")["data-hx-swap-oob"] == "true"


def test_proposal_page_shows_the_comments_section_with_a_labelled_form(member_client, proposal):
    page = soup(member_client.get(f"/proposals/{proposal.id}"))
    section = page.find("section", id="comments")
    assert section["aria-labelledby"] == "comments-h" and section.find(id="comments-h")
    textarea = section.find("textarea", attrs={"name": "body"})
    assert section.find("label", attrs={"for": textarea["id"]}).text == "Your comment"
    assert textarea["maxlength"] == "10000" and textarea["data-counter"] == "count-main"
    assert set(textarea["aria-describedby"].split()) == {"h-body-main", "count-main"}
    assert section.find("legend").text.startswith("Your position")
    assert page.find("script", src="/static/comments.js").has_attr("defer")
    assert section.find(class_="no-comments")


def test_no_comments_section_before_voting_opens(admin_client, db, admin):
    with db.begin() as s:
        draft = make_proposal(s)
    assert soup(admin_client.get(f"/proposals/{draft.id}")).find(id="comments") is None
    assert post(admin_client, draft.id).status_code == 409


def test_length_limit_is_enforced_by_the_server(member_client, db, proposal):
    r = post(member_client, proposal.id, "x" * 10_001)
    assert r.status_code == 400 and "10,001 characters" in r.text
    assert soup(r).find("textarea").text == "x" * 10_001  # the text comes back to be shortened
    # Browsers send line breaks as CRLF; they count as one character, as in the browser's own maxlength.
    assert post(member_client, proposal.id, ("x" * 99 + "\r\n") * 100).status_code == 303
    assert post(member_client, proposal.id, "   ").status_code == 400
    assert count(db) == 1


def test_refused_post_with_htmx_returns_the_form_with_the_text(member_client, db, proposal):
    r = post(member_client, proposal.id, "y" * 10_500, htmx=True)
    assert r.status_code == 400 and "<html" not in r.text
    form = soup(r).find("form", id="comment-form-main")
    assert form.find(role="alert") and form.find("textarea").text == "y" * 10_500
    assert form.find("textarea")["aria-invalid"] == "true"


def test_rate_limit_ten_a_minute(member_client, db, proposal):
    for i in range(10):
        assert post(member_client, proposal.id, f"Comment {i}").status_code == 303
    r = post(member_client, proposal.id, "The eleventh", htmx=True)
    assert r.status_code == 429 and "10 comments in the last minute" in r.text
    assert soup(r).find("textarea").text == "The eleventh"
    assert post(member_client, proposal.id, "The twelfth").status_code == 429
    assert count(db) == 10
    with freeze_time(utcnow() + dt.timedelta(seconds=61)):
        assert post(member_client, proposal.id, "A minute later").status_code == 303


def test_stance_must_be_one_of_three(member_client, db, proposal):
    assert post(member_client, proposal.id, stance="maybe").status_code == 400
    for stance in ("for", "against", "neutral", ""):
        assert post(member_client, proposal.id, stance=stance).status_code == 303
    with db.read() as s:
        assert sorted(s.scalars(select(Comment.stance)), key=str) == sorted(["for", "against", "neutral", None],
                                                                             key=str)


# --- replies --------------------------------------------------------------------------------------------------

def test_replies_are_one_level_deep(member_client, other, db, proposal, member):
    with db.begin() as s:
        top = make_comment(s, proposal, member, body="Top")
    r = other.form(f"/proposals/{proposal.id}/comments", {"body": "A reply", "parent_id": str(top.id)}, headers=HX)
    assert r.status_code == 200
    reply_id = last_id(db)
    oob = soup(r).find(attrs={"data-hx-swap-oob": f"beforeend:#replies-{top.id}"})
    assert oob.find("article", id=f"comment-{reply_id}")
    assert soup(r).find("form", id=f"comment-form-r{top.id}")  # a blank reply form
    # A reply to a reply joins the same thread, without JavaScript too.
    r = member_client.form(f"/proposals/{proposal.id}/comments", {"body": "Re: re", "parent_id": str(reply_id)})
    second = last_id(db)
    assert get(db, second).parent_id == top.id
    assert r.headers["location"] == f"/comments/{top.id}/replies?after={second - 1}#comment-{second}"
    page = soup(member_client.get(r.headers["location"]))
    assert page.find("article", id=f"comment-{second}") and page.find("h1")
    detail = soup(member_client.get(f"/proposals/{proposal.id}"))
    assert article_ids(detail, f"#replies-{top.id}") == [reply_id, second]
    assert detail.find(id=f"comment-{reply_id}").find("h4")  # replies sit one heading level below


def test_reply_form_as_page_and_fragment(member_client, db, proposal, admin):
    with db.begin() as s:
        top = make_comment(s, proposal, admin, body="Top")
    page = member_client.get(f"/comments/{top.id}/reply")
    assert page.status_code == 200 and "<html" in page.text
    assert soup(page).find("article", id=f"comment-{top.id}")
    fragment = member_client.get(f"/comments/{top.id}/reply", headers=HX)
    form = soup(fragment).find("form", id=f"comment-form-r{top.id}")
    assert "<html" not in fragment.text and form.find("input", attrs={"name": "parent_id"})["value"] == str(top.id)
    assert form.find(attrs={"name": "stance"}) is None  # positions belong to top-level comments


def test_long_threads_collapse_and_page_their_replies(member_client, db, proposal, member, admin):
    with db.begin() as s:
        top = make_comment(s, proposal, admin, body="Top")
        replies = [make_comment(s, proposal, member, body=f"Reply {i}", parent=top).id for i in range(60)]
    detail = soup(member_client.get(f"/proposals/{proposal.id}"))
    thread = detail.find(id=f"replies-{top.id}")
    assert thread.select("article.comment") == []
    link = thread.select_one("p.show-more a")
    assert link.text.startswith("Show all 60 replies")
    assert link["href"] == f"/comments/{top.id}/replies" and link["data-hx-target"] == f"#replies-{top.id}"
    first = member_client.get(link["href"], headers=HX)
    assert "<html" not in first.text and article_ids(soup(first)) == replies[:50]
    more = soup(first).select_one("p.show-more a")
    assert more["href"] == f"/comments/{top.id}/replies?after={replies[49]}"
    second = member_client.get(more["href"], headers=HX)
    assert article_ids(soup(second)) == replies[50:] and soup(second).select_one("p.show-more") is None
    # Without JavaScript the same links are pages: the thread, in batches.
    page = soup(member_client.get(link["href"]))
    assert page.find("h1") and article_ids(page, f"#replies-{top.id}") == replies[:50]
    assert page.select_one(f"#replies-{top.id} p.show-more a")["href"] == more["href"]


def test_short_threads_show_their_replies(member_client, db, proposal, member, admin):
    with db.begin() as s:
        top = make_comment(s, proposal, admin, body="Top")
        ids = [make_comment(s, proposal, member, body=f"Reply {i}", parent=top).id for i in range(3)]
    detail = soup(member_client.get(f"/proposals/{proposal.id}"))
    assert article_ids(detail, f"#replies-{top.id}") == ids
    assert detail.find(id=f"replies-{top.id}").select_one("p.show-more") is None


# --- pages of comments ----------------------------------------------------------------------------------------

def test_comments_come_in_batches_of_fifty_with_show_more(member_client, db, proposal, admin):
    with db.begin() as s:
        ids = [make_comment(s, proposal, admin, body=f"Comment {i}").id for i in range(120)]
    detail = soup(member_client.get(f"/proposals/{proposal.id}"))
    assert article_ids(detail, "#comment-list") == ids[::-1][:50]  # newest first
    assert detail.find(id="comment-total").text == "120 comments"
    seen = article_ids(detail, "#comment-list")
    link = detail.select_one("#comment-list p.show-more a")
    while link is not None:
        assert link["data-hx-target"] == "closest p"
        fragment = member_client.get(link["href"], headers=HX)
        assert fragment.status_code == 200 and "<html" not in fragment.text
        page = member_client.get(link["href"])
        assert "<html" in page.text and article_ids(soup(page), "#comment-list") == article_ids(soup(fragment))
        seen += article_ids(soup(fragment))
        link = soup(fragment).select_one("p.show-more a")
    assert seen == ids[::-1]


@pytest.mark.parametrize("sort", ["oldest", "endorsed"])
def test_every_sort_pages_through_every_comment_once(member_client, db, proposal, admin, sort):
    with db.begin() as s:
        comments = [make_comment(s, proposal, admin, body=f"Comment {i}") for i in range(130)]
        for i, c in enumerate(comments):
            c.endorsement_count = i % 7  # many ties: the cursor must still be exact
    r = member_client.get(f"/proposals/{proposal.id}/comments?sort={sort}")
    page = soup(r)
    assert page.find("a", attrs={"aria-current": "true"}).text.startswith({"oldest": "Oldest",
                                                                           "endorsed": "Most"}[sort])
    seen = article_ids(page, "#comment-list")
    link = page.select_one("#comment-list p.show-more a")
    while link is not None:
        fragment = soup(member_client.get(link["href"], headers=HX))
        seen += article_ids(fragment)
        link = fragment.select_one("p.show-more a")
    ids = [c.id for c in comments]
    if sort == "oldest":
        assert seen == ids
    else:
        assert seen == [c.id for c in sorted(comments, key=lambda c: (-c.endorsement_count, -c.id))]


def test_a_bad_cursor_means_the_first_page(member_client, db, proposal, admin):
    with db.begin() as s:
        make_comment(s, proposal, admin)
    for after in ("abc", "1.2.3", "-1", "9" * 40):
        assert member_client.get(f"/proposals/{proposal.id}/comments?after={after}&sort=zzz").status_code == 200


def test_arguments_for_and_against_side_by_side(member_client, db, proposal, admin):
    with db.begin() as s:
        pro = make_comment(s, proposal, admin, body="Cheaper", stance="for")
        con = make_comment(s, proposal, admin, body="Ugly", stance="against")
        make_comment(s, proposal, admin, body="Hmm", stance="neutral")
    detail = soup(member_client.get(f"/proposals/{proposal.id}"))
    link = detail.find("a", href=f"/proposals/{proposal.id}/arguments")
    assert link.text.strip() == "Arguments for (1) and against (1), side by side"
    page = soup(member_client.get(link["href"]))
    assert article_ids(page, "#side-for") == [pro.id] and article_ids(page, "#side-against") == [con.id]
    assert page.find(id="side-for-h").text == "For the proposal (1)"


# --- paragraphs of a policy change ----------------------------------------------------------------------------

def test_each_paragraph_has_its_own_thread(member_client, db, policy):
    r = post(member_client, policy.id, "Five percent is too much.", paragraph="2")
    cid = last_id(db)
    assert r.headers["location"] == f"/proposals/{policy.id}/comments?paragraph=2#comment-{cid}"
    detail = soup(member_client.get(f"/proposals/{policy.id}"))
    paragraphs = detail.find(id="proposed-text").select(".paragraph")
    assert [p.p.text for p in paragraphs] == POLICY.split("\n\n")
    assert detail.find(id="paragraph-2").find("a").text == "1 comment on paragraph 2"
    assert detail.find(id="paragraph-1").find("a").text == "Comment on paragraph 1"
    assert cid not in article_ids(detail, "#comment-list")  # feedback on clause 2 stays on clause 2
    thread = soup(member_client.get(f"/proposals/{policy.id}/comments?paragraph=2"))
    assert thread.find(id="paragraph-text").text == "Late fees are capped at 5%."
    assert article_ids(thread, "#comment-list-p2") == [cid]
    assert thread.find("input", attrs={"name": "paragraph"})["value"] == "2"
    r = post(member_client, policy.id, "And in place?", paragraph="2", htmx=True)
    assert soup(r).find(attrs={"data-hx-swap-oob": "afterbegin:#comment-list-p2"})


def test_paragraph_numbers_are_checked(member_client, db, policy, proposal):
    assert post(member_client, policy.id, paragraph="4").status_code == 404
    assert post(member_client, proposal.id, paragraph="1").status_code == 404  # not a policy change
    assert member_client.get(f"/proposals/{policy.id}/comments?paragraph=9").status_code == 404
    assert count(db) == 0


def test_a_reply_stays_on_its_paragraph(member_client, db, policy, admin):
    with db.begin() as s:
        top = make_comment(s, policy, admin, paragraph=3)
    post(member_client, policy.id, "Reply", parent_id=str(top.id), paragraph="1")
    assert get(db, last_id(db)).paragraph == 3


# --- editing --------------------------------------------------------------------------------------------------

def test_edit_within_thirty_minutes(member_client, admin_client, db, proposal, member):
    with db.begin() as s:
        c = make_comment(s, proposal, member, body="Frist!", stance="for")
    form_page = member_client.get(f"/comments/{c.id}/edit")
    assert form_page.status_code == 200 and "<html" in form_page.text
    assert soup(form_page).find("textarea").text == "Frist!"
    fragment = member_client.get(f"/comments/{c.id}/edit", headers=HX)
    assert "<html" not in fragment.text and soup(fragment).find("form", id=f"comment-form-e{c.id}")
    with freeze_time(utcnow() + dt.timedelta(minutes=29)):
        r = member_client.form(f"/comments/{c.id}/edit", {"body": "First!", "stance": "against"}, headers=HX)
    assert r.status_code == 200 and "<html" not in r.text
    article = soup(r).find("article", id=f"comment-{c.id}")
    assert article.find(class_="comment-body").text.strip() == "First!" and article.find(class_="edited")
    after = get(db, c.id)
    assert (after.body_md, after.stance, after.edited_at is not None) == ("First!", "against", True)
    with db.read() as s:
        assert [r.body_md for r in s.scalars(select(CommentRevision))] == ["Frist!"]
    # Earlier versions are for admins.
    assert soup(admin_client.get(f"/comments/{c.id}")).find(class_="revisions").find(class_="revision")
    assert soup(member_client.get(f"/comments/{c.id}")).find(class_="revisions") is None
    r = member_client.form(f"/comments/{c.id}/edit", {"body": "First, again."})
    assert r.status_code == 303 and r.headers["location"] == f"/comments/{c.id}#comment-{c.id}"


def test_edit_after_thirty_minutes_is_refused(member_client, db, proposal, member):
    with db.begin() as s:
        c = make_comment(s, proposal, member, body="Original")
    with freeze_time(utcnow() + dt.timedelta(minutes=31)):
        r = member_client.form(f"/comments/{c.id}/edit", {"body": "Changed"})
        assert r.status_code == 409 and "30 minutes" in r.text
        assert member_client.get(f"/comments/{c.id}/edit").status_code == 409
        page = soup(member_client.get(f"/proposals/{proposal.id}"))
        assert page.find(id=f"comment-{c.id}").find("a", href=f"/comments/{c.id}/edit") is None
    assert get(db, c.id).body_md == "Original"


def test_editing_someone_elses_comment_is_refused(member_client, admin_client, db, proposal, admin, member):
    with db.begin() as s:
        theirs = make_comment(s, proposal, admin, body="Admin's words")
        mine = make_comment(s, proposal, member, body="Mia's words")
    assert member_client.form(f"/comments/{theirs.id}/edit", {"body": "Hacked"}).status_code == 403
    assert member_client.get(f"/comments/{theirs.id}/edit").status_code == 403
    assert admin_client.form(f"/comments/{mine.id}/edit", {"body": "Hacked"}).status_code == 403
    assert (get(db, theirs.id).body_md, get(db, mine.id).body_md) == ("Admin's words", "Mia's words")


def test_cancelling_an_edit_returns_the_comment(member_client, db, proposal, member):
    with db.begin() as s:
        c = make_comment(s, proposal, member, body="Unchanged")
    fragment = member_client.get(f"/comments/{c.id}", headers=HX)
    assert "<html" not in fragment.text and soup(fragment).find("article", id=f"comment-{c.id}")
    page = member_client.get(f"/comments/{c.id}")
    assert "<html" in page.text and soup(page).find("h1").text == "Comment by Mia Member"


# --- deleting -------------------------------------------------------------------------------------------------

def test_delete_without_replies_removes_the_comment(member_client, db, proposal, member):
    with db.begin() as s:
        c = make_comment(s, proposal, member, body="Oops")
    r = member_client.form(f"/comments/{c.id}/delete", headers=HX)
    assert r.status_code == 200 and r.text == ""
    assert get(db, c.id) is None
    with db.begin() as s:
        c = make_comment(s, proposal, member, body="Oops again")
    r = member_client.form(f"/comments/{c.id}/delete")
    assert r.status_code == 303 and r.headers["location"] == f"/proposals/{proposal.id}#comments"


def test_delete_with_replies_leaves_comment_deleted(member_client, other, db, proposal, member):
    with db.begin() as s:
        c = make_comment(s, proposal, member, body="Secret plans", stance="for")
        reply = make_comment(s, proposal, other.member, body="Interesting", parent=c)
    r = member_client.form(f"/comments/{c.id}/delete", headers=HX)
    article = soup(r).find("article", id=f"comment-{c.id}")
    assert article.find(class_="comment-gone").text == "Comment deleted"
    assert article.find("article", id=f"comment-{reply.id}")
    gone = get(db, c.id)
    assert (gone.body_md, gone.stance, gone.deleted_at is not None) == ("", None, True)
    detail = member_client.get(f"/proposals/{proposal.id}")
    assert "Secret plans" not in detail.text and "Mia Member" not in soup(detail).find(id=f"comment-{c.id}").h3.text
    assert member_client.form(f"/comments/{c.id}/delete").status_code == 409
    # When its last reply goes, the placeholder goes too.
    assert other.form(f"/comments/{reply.id}/delete").status_code == 303
    assert get(db, c.id) is None


def test_deleting_someone_elses_comment_is_refused(other, db, proposal, member):
    with db.begin() as s:
        c = make_comment(s, proposal, member)
    assert other.form(f"/comments/{c.id}/delete").status_code == 403
    assert other.form(f"/comments/{c.id}/delete", headers=HX).status_code == 403
    assert get(db, c.id) is not None


def test_members_can_delete_their_comments_after_voting_closes(member_client, db, settings, proposal, member):
    from app.voting.services import close_proposal

    with db.begin() as s:
        c = make_comment(s, proposal, member)
        close_proposal(s, settings, proposal.id, actor_id=None)
    assert member_client.form(f"/comments/{c.id}/delete").status_code == 303


# --- endorsing ------------------------------------------------------------------------------------------------

def test_endorse_once_and_take_it_back(member_client, db, proposal, admin):
    with db.begin() as s:
        c = make_comment(s, proposal, admin)
    r = member_client.form(f"/comments/{c.id}/endorse", {"endorse": "1"}, headers=HX)
    assert r.status_code == 200 and "<html" not in r.text
    button = soup(r).find("button")
    assert button["aria-pressed"] == "true" and "Endorse comment by Ada Admin" in button.text
    assert soup(r).find(class_="endorse-count").text == "1 endorsement, including yours"
    again = member_client.form(f"/comments/{c.id}/endorse", {"endorse": "1"}, headers=HX)
    assert again.status_code == 409 and "already" in soup(again).find(role="alert").text
    assert get(db, c.id).endorsement_count == 1 and count(db, Endorsement) == 1
    r = member_client.form(f"/comments/{c.id}/endorse", {"endorse": "0"})
    assert r.status_code == 303 and r.headers["location"] == f"/comments/{c.id}#comment-{c.id}"
    assert get(db, c.id).endorsement_count == 0 and count(db, Endorsement) == 0
    assert member_client.form(f"/comments/{c.id}/endorse", {"endorse": "0"}).status_code == 409
    assert get(db, c.id).endorsement_count == 0


def test_one_endorsement_per_member_is_a_database_rule(db, proposal, admin, member):
    with db.begin() as s:
        c = make_comment(s, proposal, admin)
        s.add(Endorsement(comment_id=c.id, member_id=member.id))
    with pytest.raises(IntegrityError), db.begin() as s:
        s.add(Endorsement(comment_id=c.id, member_id=member.id))


def test_no_endorsing_ones_own_comment(member_client, db, proposal, member):
    with db.begin() as s:
        c = make_comment(s, proposal, member)
    assert member_client.form(f"/comments/{c.id}/endorse", {"endorse": "1"}).status_code == 409
    assert soup(member_client.get(f"/proposals/{proposal.id}")).find(id=f"endorse-{c.id}").name == "span"


def test_most_endorsed_first(member_client, other, app, db, proposal, admin):
    with db.begin() as s:
        a, b, c = (make_comment(s, proposal, admin, body=x) for x in "abc")
    for client in (member_client, other):
        client.form(f"/comments/{b.id}/endorse", {"endorse": "1"})
    member_client.form(f"/comments/{c.id}/endorse", {"endorse": "1"})
    page = soup(member_client.get(f"/proposals/{proposal.id}/comments?sort=endorsed"))
    assert article_ids(page, "#comment-list") == [b.id, c.id, a.id]
    assert page.find(id=f"endorse-{b.id}").find(class_="endorse-count").text == "2 endorsements, including yours"


# --- flags ----------------------------------------------------------------------------------------------------

def test_flag_a_comment(member_client, admin_client, db, proposal, admin):
    with db.begin() as s:
        c = make_comment(s, proposal, admin, body="Rude words")
    page = member_client.get(f"/comments/{c.id}/flag")
    assert page.status_code == 200 and soup(page).find("h1").text == "Flag a comment for the admins"
    fragment = member_client.get(f"/comments/{c.id}/flag", headers=HX)
    form = soup(fragment).find(id=f"flag-{c.id}")
    assert "<html" not in fragment.text and form.find("label", attrs={"for": f"f-reason-{c.id}"})
    assert member_client.form(f"/comments/{c.id}/flag", {"reason": " "}, headers=HX).status_code == 400
    r = member_client.form(f"/comments/{c.id}/flag", {"reason": "Personal attack"}, headers=HX)
    assert r.status_code == 200 and "An admin will look at this comment" in soup(r).find(role="status").text
    again = member_client.form(f"/comments/{c.id}/flag", {"reason": "Again"})
    assert again.status_code == 409 and "already flagged" in again.text
    with db.read() as s:
        assert [(f.member_id, f.reason) for f in s.scalars(select(Flag))] == [(member_client.member.id,
                                                                               "Personal attack")]
    queue = soup(admin_client.get("/admin/moderation"))
    assert "Personal attack" in queue.find(id=f"queue-{c.id}").text


def test_flag_without_javascript_redirects_back(member_client, db, proposal, admin, member):
    with db.begin() as s:
        c = make_comment(s, proposal, admin)
        mine = make_comment(s, proposal, member)
    r = member_client.form(f"/comments/{c.id}/flag", {"reason": "Spam"})
    assert r.status_code == 303 and r.headers["location"] == f"/comments/{c.id}#comment-{c.id}"
    assert member_client.form(f"/comments/{mine.id}/flag", {"reason": "Mine"}).status_code == 409
    assert member_client.get(f"/comments/{mine.id}/flag").status_code == 409


# --- mentions -------------------------------------------------------------------------------------------------

def test_mentions_notify_the_one_member_named(member_client, db, org, admin, member):
    with db.begin() as s:
        board = make_group(s, name="Board")
        zoe = make_member(s, name="Zoë van Dijk", groups=(board,))
        elodie = make_member(s, name="Élodie Brun", groups=(board,))  # a first letter SQL's lower() can't fold
        make_member(s, name="Ann Lee", groups=(board,))
        make_member(s, name="Ann  Lee", groups=(board,))  # two members answer to @Ann_Lee
        outsider = make_member(s, name="Olu Outside")
        gone = make_member(s, name="Dee Parted", status="deactivated", groups=(board,))
        s.add_all([])
        from app.members.models import GroupMembership

        s.add(GroupMembership(group_id=board.id, member_id=member.id))
        p = make_proposal(s, state="open", groups=(board,))
    body = ("Thanks @Zoë_van_Dijk, and @ZOËVANDIJK again. @Ann_Lee? @Olu_Outside @Dee_Parted @nobody "
            "@Mia_Member mia@example.org `@Ada_Admin` @Ada_Admin.")
    assert post(member_client, p.id, body).status_code == 303
    with db.read() as s:
        rows = s.execute(select(Notification.member_id, Notification.kind, Notification.actor_id)).all()
    assert sorted(rows) == sorted([(zoe.id, "mention", member.id), (admin.id, "mention", member.id)])
    assert outsider.id not in [r[0] for r in rows] and gone.id not in [r[0] for r in rows]
    # An edit that adds a mention adds its notification, once.
    cid = last_id(db)
    member_client.form(f"/comments/{cid}/edit", {"body": body + " Also @Mia_Member and @Zoë_van_Dijk."})
    assert count(db, Notification) == 2
    assert post(member_client, p.id, "Over to you, @élodie_brun.").status_code == 303
    with db.read() as s:
        assert s.scalar(select(Notification.member_id).where(Notification.comment_id == last_id(db))) == elodie.id


# --- who may do what ------------------------------------------------------------------------------------------

def routes_for(pid: int, cid: int) -> list[tuple[str, str]]:
    return [
        ("GET", f"/proposals/{pid}/comments"), ("POST", f"/proposals/{pid}/comments"),
        ("GET", f"/proposals/{pid}/arguments"), ("GET", f"/comments/{cid}"), ("GET", f"/comments/{cid}/replies"),
        ("GET", f"/comments/{cid}/reply"), ("GET", f"/comments/{cid}/edit"), ("POST", f"/comments/{cid}/edit"),
        ("POST", f"/comments/{cid}/delete"), ("POST", f"/comments/{cid}/endorse"),
        ("GET", f"/comments/{cid}/flag"), ("POST", f"/comments/{cid}/flag"),
    ]


def test_signed_out_visitors_are_sent_to_sign_in(client, db, proposal, admin):
    with db.begin() as s:
        c = make_comment(s, proposal, admin)
    for method, path in routes_for(proposal.id, c.id):
        data = {"csrf_token": client.csrf(), "body": "x", "reason": "x"} if method == "POST" else None
        r = client.request(method, path, data=data, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/signin?next="), (method, path)
        r = client.request(method, path, data=data, headers=HX, follow_redirects=False)
        assert r.status_code == 204 and r.headers["HX-Redirect"].startswith("/signin"), (method, path)
    assert count(db) == 1


def test_members_who_cannot_see_the_proposal_get_not_found(member_client, db, admin):
    with db.begin() as s:
        board = make_group(s, name="Board")
        hidden = make_proposal(s, state="open", groups=(board,))
        c = make_comment(s, hidden, admin, body="Board only")
    for method, path in routes_for(hidden.id, c.id):
        r = member_client.request(method, path, data={"csrf_token": member_client.csrf(), "body": "x",
                                                      "reason": "x", "endorse": "1"}, follow_redirects=False)
        assert r.status_code == 404, (method, path, r.status_code)
        assert "Board only" not in r.text
    assert member_client.get("/comments/999999").status_code == 404
    assert member_client.get("/proposals/999999/comments").status_code == 404
    assert count(db) == 1


def test_a_reply_must_belong_to_the_same_proposal(member_client, db, proposal, admin):
    with db.begin() as s:
        elsewhere = make_proposal(s, state="open", title="Elsewhere")
        c = make_comment(s, elsewhere, admin)
    assert post(member_client, proposal.id, parent_id=str(c.id)).status_code == 404
    assert post(member_client, proposal.id, parent_id="999999").status_code == 404


def test_closed_proposal_comments_are_read_only(member_client, db, settings, proposal, admin, member):
    from app.voting.services import close_proposal

    with db.begin() as s:
        c = make_comment(s, proposal, admin, body="Before the close")
        close_proposal(s, settings, proposal.id, actor_id=None)
    page = soup(member_client.get(f"/proposals/{proposal.id}"))
    assert "Voting has closed, and so have comments" in page.find(id="comments-closed").text
    assert page.find("form", id="comment-form-main") is None and article_ids(page, "#comment-list") == [c.id]
    assert post(member_client, proposal.id).status_code == 409
    assert post(member_client, proposal.id, parent_id=str(c.id)).status_code == 409
    assert member_client.form(f"/comments/{c.id}/endorse", {"endorse": "1"}).status_code == 409
    assert member_client.get(f"/comments/{c.id}/reply").status_code == 409
    assert member_client.get(f"/proposals/{proposal.id}/comments").status_code == 200


def test_deadline_passed_but_not_yet_closed(member_client, db, proposal):
    with freeze_time(utcnow() + dt.timedelta(days=4)):
        assert post(member_client, proposal.id).status_code == 409
    assert count(db) == 0
