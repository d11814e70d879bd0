"""A threaded discussion in a real browser: on a policy change, Kira argues for it (htmx, with the live
character count), Hugo replies to her and comments on the second paragraph of the proposed text, Nadia replies
with scripts turned off (the form posts and the browser lands on her reply's anchor), and the admin posts an
official response that every member then sees pinned above the comments, with the feedback's status.

Every page is checked with axe-core and for CSP reports (see conftest.py) and screenshotted, except in the
browser without script, where axe cannot run.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.browser.harness import Browsing, PlenaryServer
from tests.browser.test_browser_voting import MEMBERS, TZ, import_members, join_by_invitation, set_up_as_admin

pytestmark = pytest.mark.browser

TITLE = "Quiet hours in the shared garden"
CURRENT = "The garden is open from 7:00 to 22:00."
PROPOSED = ("The garden is open from 7:00 to 22:00.\n\n"
            "Between 20:00 and 22:00 no music is played.\n\n"
            "Barbecues end by 21:00.")
KIRA_SAYS = "Evenings are when the **children** on the ground floor sleep, so I support this."
HUGO_REPLIES = "Agreed, though 20:00 is early in June."
ON_PARAGRAPH = "Could paragraph 2 allow quiet acoustic music?"
NADIA_REPLIES = "Acoustic music carries just as far at night."
RESPONSE = "We accept the quiet hours and will look at summer times at the next meeting."


def publish_policy(admin: Browsing, server: PlenaryServer) -> str:
    """A policy change with three paragraphs, open ballot, voting open now; returns its path."""
    page = admin.page
    page.goto(server.url("/admin/proposals/new"))
    page.get_by_label("A policy change").check()
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Summary").fill("Two evening rules for the garden.")
    page.get_by_label("Text", exact=True).fill("Neighbours asked for quieter evenings.")
    page.get_by_label("Current text").fill(CURRENT)
    page.get_by_label("Proposed text").fill(PROPOSED)
    page.get_by_label("Open ballot", exact=True).check()
    page.get_by_label("All members (5 members)").check()
    page.get_by_label("When I publish it").check()
    deadline = (dt.datetime.now(ZoneInfo(TZ)) + dt.timedelta(days=5)).replace(hour=18, minute=0)
    page.get_by_label("Deadline").fill(deadline.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Save draft").click()
    expect(page).to_have_url(re.compile(r"/proposals/\d+$"))
    path = page.url.removeprefix(server.base_url)
    page.get_by_role("button", name="Open voting now").click()
    expect(page.locator(".state-badge")).to_have_attribute("data-state", "open")
    return path


def comment_for(member: Browsing, path: str) -> None:
    """Kira writes a comment for the proposal; htmx puts it at the top of the list and clears the form."""
    page = member.page
    page.goto(path)
    expect(page.locator("#comment-total")).to_have_text("0 comments")
    page.evaluate("() => { window.__sameDocument = true; }")
    box = page.get_by_label("Your comment", exact=True)
    box.fill(KIRA_SAYS)
    expect(page.locator("#count-main")).to_have_text(f"{10_000 - len(KIRA_SAYS):,} characters left")
    page.locator("#comment-form-main").get_by_label("For", exact=True).check()
    page.get_by_role("button", name="Post comment").click()
    first = page.locator("#comment-list > article.comment").first
    expect(first.locator(".comment-author")).to_have_text(MEMBERS["kira"][0])
    expect(first.locator(".comment-body strong")).to_have_text("children")
    expect(first.locator(".stance")).to_have_text("For the proposal")
    expect(page.get_by_label("Your comment", exact=True)).to_have_value("")
    expect(page.locator("#comment-total")).to_have_text("1 comment")
    assert page.evaluate("() => window.__sameDocument === true"), "posting reloaded the page"
    member.check("comment-posted")


def reply_and_comment_on_paragraph(member: Browsing, path: str) -> None:
    page = member.page
    page.goto(path)
    kira = page.locator("#comment-list > article.comment").filter(has_text=KIRA_SAYS.replace("**", ""))
    kira.get_by_role("link", name=f"Reply to {MEMBERS['kira'][0]}").click()
    reply_box = kira.get_by_label("Your reply")
    expect(reply_box).to_be_visible()
    reply_box.fill(HUGO_REPLIES)
    kira.get_by_role("button", name="Post reply").click()
    reply = kira.locator(".replies article.reply")
    expect(reply).to_have_count(1)
    expect(reply.locator(".comment-author")).to_have_text(MEMBERS["hugo"][0])
    expect(reply.locator(".comment-body")).to_have_text(HUGO_REPLIES)
    member.check("reply-posted")

    page.locator("#paragraph-2").get_by_role("link", name="Comment on paragraph 2").click()
    expect(page).to_have_url(re.compile(r"/comments\?paragraph=2$"))
    expect(page.locator("#paragraph-text")).to_have_text("Between 20:00 and 22:00 no music is played.")
    page.get_by_label("Your comment on paragraph 2").fill(ON_PARAGRAPH)
    page.get_by_role("button", name="Post comment").click()
    on_paragraph = page.locator("#comment-list-p2 article.comment")
    expect(on_paragraph).to_have_count(1)
    expect(on_paragraph.locator(".comment-body")).to_have_text(ON_PARAGRAPH)
    member.check("paragraph-comment")

    page.get_by_role("link", name="Back to the proposal").click()
    expect(page.locator("#paragraph-2 .paragraph-comments")).to_have_text("1 comment on paragraph 2")
    expect(page.locator("#paragraph-1 .paragraph-comments")).to_have_text("Comment on paragraph 1")
    # The paragraph's comment stays on its paragraph: not among the proposal's own comments.
    expect(page.locator("#comment-list")).not_to_contain_text(ON_PARAGRAPH)
    member.check("paragraph-count")


def reply_without_script(member: Browsing, server: PlenaryServer, path: str) -> None:
    """No htmx: the reply link opens a page with the form; posting redirects to the reply's own anchor."""
    page = member.page
    page.goto(server.url(path))
    kira = page.locator("#comment-list > article.comment").filter(has_text=KIRA_SAYS.replace("**", ""))
    kira.get_by_role("link", name=f"Reply to {MEMBERS['kira'][0]}").click()
    page.get_by_label("Your reply").fill(NADIA_REPLIES)
    page.get_by_role("button", name="Post reply").click()
    expect(page).to_have_url(re.compile(r"#comment-\d+$"))
    anchor = page.url.rsplit("#", 1)[1]
    mine = page.locator(f"#{anchor}")
    expect(mine.locator(".comment-author")).to_have_text(MEMBERS["nadia"][0])
    expect(mine.locator(".comment-body")).to_have_text(NADIA_REPLIES)


def official_response(admin: Browsing, path: str) -> None:
    page = admin.page
    page.goto(path)
    form = page.locator("#comment-form-main")
    form.get_by_label("Your comment", exact=True).fill(RESPONSE)
    form.get_by_label("Post as").select_option(label="Official response: Accepted")
    form.get_by_role("button", name="Post comment").click()
    pinned = page.locator("#pinned-list article.official")
    expect(pinned).to_have_count(1)
    expect(pinned.locator(".official-badge")).to_have_text("Official response: Accepted")
    expect(page.locator("#comment-list")).not_to_contain_text(RESPONSE)
    admin.check("official-response")


def sees_the_discussion(member: Browsing, path: str) -> None:
    page = member.page
    page.goto(path)
    expect(page.locator("#feedback-status")).to_contain_text("Accepted")
    pinned = page.locator("#pinned-list article.official")
    expect(pinned.locator(".comment-body")).to_have_text(RESPONSE)
    kira = page.locator("#comment-list > article.comment").filter(has_text=KIRA_SAYS.replace("**", ""))
    expect(kira.locator(".replies article.reply .comment-body")).to_have_text([HUGO_REPLIES, NADIA_REPLIES])
    # Every comment with text counts: the two replies, the paragraph's comment and the official response too.
    expect(page.locator("#comment-total")).to_have_text("5 comments")
    member.check("discussion")


def test_threaded_discussion_with_a_paragraph_comment_and_an_official_response(
        open_browser, server: PlenaryServer) -> None:
    admin = open_browser("admin")
    set_up_as_admin(admin, server)
    import_members(admin, server)
    path = publish_policy(admin, server)

    kira, hugo = open_browser("kira"), open_browser("hugo")
    nadia = open_browser("nadia", javascript=False)
    for who, b in (("kira", kira), ("hugo", hugo), ("nadia", nadia)):
        join_by_invitation(b, server, who)

    comment_for(kira, path)
    reply_and_comment_on_paragraph(hugo, path)
    reply_without_script(nadia, server, path)
    official_response(admin, path)
    sees_the_discussion(kira, path)
    for b in (admin, kira, hugo, nadia):
        b.assert_no_problems()
