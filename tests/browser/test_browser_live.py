"""Live updates in real browsers: two members have the same open proposal on their screens; what one posts or
votes appears on the other's page without a reload, through the page's event stream (htmx's SSE extension).

The admin sets up the organization in the browser; the members and the proposal (a yes/no question whose tally
is shown live) are then written straight into the server's database, and the members sign in with a password.
Every page is checked with axe-core and for CSP reports; here the browser console must also stay free of
errors (an htmx swap that finds no target, a stream that fails).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from app.db import Database
from tests.browser.harness import PASSWORD, Browsing, PlenaryServer
from tests.browser.test_browser_voting import set_up_as_admin
from tests.factories import make_member, make_proposal

pytestmark = pytest.mark.browser

TITLE = "Open the hall on Sundays?"
PEOPLE = {"lena": ("Lena Park", "lena@example.org"), "omar": ("Omar Diaz", "omar@example.org")}


def seed(server: PlenaryServer) -> int:
    """Two members with passwords and an open yes/no question with a live tally; returns its id."""
    db = Database(server.database_url)
    try:
        with db.begin() as s:
            for name, email in PEOPLE.values():
                make_member(s, name=name, email=email, password=PASSWORD)
            return make_proposal(s, title=TITLE, state="open", secret=False, visibility="live",
                                 body_md="The caretaker offers to open it from 10:00 to 16:00.").id
    finally:
        db.dispose()


def sign_in(b: Browsing, server: PlenaryServer, who: str) -> None:
    name, email = PEOPLE[who]
    page = b.page
    page.goto(server.url("/signin"))
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {name}")


# Counts the swaps of new comments fetched after a stream event.
COUNT_NEWS = """() => {
  window.__newsSwapped = 0;
  document.body.addEventListener("htmx:afterSettle", (event) => {
    const path = event.detail.requestConfig && event.detail.requestConfig.path;
    if (path && path.includes("/comments/new")) { window.__newsSwapped += 1; }
  });
}"""


def watch_console(b: Browsing) -> list[str]:
    errors: list[str] = []
    b.page.on("console", lambda msg: errors.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
    return errors


def open_page(b: Browsing, server: PlenaryServer, pid: int) -> None:
    page = b.page
    with page.expect_response(lambda r: r.url.endswith(f"/proposals/{pid}/events")) as stream:
        page.goto(server.url(f"/proposals/{pid}"))
    assert stream.value.status == 200
    assert stream.value.headers["content-type"].startswith("text/event-stream")
    page.evaluate("() => { window.__sameDocument = true; }")


def test_a_comment_and_a_vote_appear_on_another_members_open_page(open_browser: Any, server: PlenaryServer) -> None:
    admin = open_browser("admin")
    set_up_as_admin(admin, server)
    pid = seed(server)

    lena, omar = open_browser("lena"), open_browser("omar")
    console = {"lena": watch_console(lena), "omar": watch_console(omar)}
    sign_in(lena, server, "lena")
    sign_in(omar, server, "omar")
    open_page(lena, server, pid)
    open_page(omar, server, pid)
    expect(omar.page.locator("#no-comments")).to_be_visible()
    expect(omar.page.locator("#turnout")).to_have_text("0 of 3 eligible members have voted.")
    omar.check("open-before")

    # Lena comments (htmx posts the form); Omar's page shows it, with its author, without a reload.
    text = "Yes, and the café could open too."
    lena.page.evaluate(COUNT_NEWS)
    lena.page.get_by_label("Your comment").fill(text)
    lena.page.get_by_role("button", name="Post comment").click()
    on_omars_page = omar.page.locator("#comment-list article.comment").filter(has_text=text)
    expect(on_omars_page).to_have_count(1)
    expect(on_omars_page).to_contain_text(PEOPLE["lena"][0])
    expect(omar.page.locator("#comment-total")).to_have_text("1 comment")
    expect(omar.page.locator("#no-comments")).to_be_hidden()
    # Omar can act on it at once: the new comment came with his own controls.
    expect(on_omars_page.get_by_role("link", name=re.compile("^Reply"))).to_be_visible()
    # Lena's own page has it once, though her form's answer and her stream both brought it.
    expect(lena.page.locator("#comment-list article.comment").filter(has_text=text)).to_have_count(1)
    lena.page.wait_for_function("() => window.__newsSwapped >= 1")  # her stream's fetch has landed too
    expect(lena.page.locator("#comment-list article.comment").filter(has_text=text)).to_have_count(1)

    # Omar replies; Lena sees the reply in the thread.
    on_omars_page.get_by_role("link", name=re.compile("^Reply")).click()
    omar.page.get_by_label("Your reply").fill("Agreed, from noon.")
    omar.page.get_by_role("button", name="Post reply").click()
    expect(lena.page.locator("#comment-list .replies article.comment")).to_contain_text("Agreed, from noon.")

    # Omar votes; the tally on Lena's page follows.
    omar.page.locator("#vote-panel").get_by_role("radio", name="Yes").check()
    omar.page.locator("#vote-panel").get_by_role("button", name="Vote").click()
    expect(omar.page.locator("#vote-panel").get_by_role("status")).to_contain_text("Your vote is recorded.")
    expect(lena.page.locator("#turnout")).to_have_text("1 of 3 eligible members has voted.")
    expect(lena.page.locator("#live-tally table")).to_contain_text("Yes")
    expect(lena.page.locator("#live-tally tbody tr").first).to_contain_text("1")

    for who, b in (("lena", lena), ("omar", omar)):
        assert b.page.evaluate("() => window.__sameDocument === true"), f"{who}'s page reloaded"
        b.check(f"{who}-after")
        assert not console[who], f"console errors on {who}'s page: {console[who]}"
