"""A ranked-choice vote in a real browser: the admin writes and publishes a proposal, members vote (by mouse
through htmx, by keyboard only, and with scripts turned off), the admin closes voting early and the results
page shows the rounds, the receipts and a receipt check.

The ballots are chosen so the instant-runoff count needs two rounds and no tie is ever decided by lot, so the
round captions can be written down here. Five ballots is the fewest that allows this with three options:
four first preferences split 2-1-1 (a tie for last place in round 1) or 2-2-0 (a 2-2 tie in round 2 that no
earlier round separates), and such a tie goes to the lot, which depends on the proposal's random public id.
A winner other than the first-round leader would need at least nine ballots (4-3-2).

    Ada (admin, htmx)   Anna 1, Ben 2
    Kira (keyboard)     Cleo 1, Ben 2
    Hugo (htmx)         Ben 1, Cleo 2
    Nadia (no script)   Ben 1
    Tom (htmx)          Anna 1             (after a refused ballot giving two options rank 1)

    Round 1: Anna 2, Ben 2, Cleo 1  -> Cleo eliminated, her one ballot goes to Ben
    Round 2: Anna 2, Ben 3          -> Ben elected, 3 of 5 continuing ballots

Every page is checked with axe-core and for CSP reports (see conftest.py) and screenshotted, except in the
browser without script, where axe cannot run: it gets the same markup the others check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.browser.harness import PASSWORD, Browsing, PlenaryServer

pytestmark = pytest.mark.browser

ORG = "Harbour Housing Co-op"
TZ = "Europe/Berlin"
ADMIN = ("Ada Admin", "ada@example.org")
MEMBERS = {
    "kira": ("Kira Lund", "kira@example.org"),
    "hugo": ("Hugo Marsh", "hugo@example.org"),
    "nadia": ("Nadia Ford", "nadia@example.org"),
    "tom": ("Tom Reed", "tom@example.org"),
}
TITLE = "Elect the chair of the garden committee"
OPTIONS = ("Anna", "Ben", "Cleo")
REASON = "Everyone has voted, so the committee can meet this week."
RECEIPT = re.compile(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}")


def fingerprint(code: str) -> str:
    """What the results page lists for a receipt: the start of sha256("receipt:" + the code's characters)."""
    normal = "".join(c for c in code.upper() if c.isalnum())
    return hashlib.sha256(f"receipt:{normal}".encode()).hexdigest()[:12]


# --- people -------------------------------------------------------------------------------------------------

def set_up_as_admin(admin: Browsing, server: PlenaryServer) -> None:
    page = admin.page
    page.goto(server.setup_link)
    page.get_by_label("Organization name").fill(ORG)
    page.get_by_label("Time zone").fill(TZ)
    page.get_by_label("Your name").fill(ADMIN[0])
    page.get_by_label("Email address").fill(ADMIN[1])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create the organization").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {ADMIN[0]}")


def import_members(admin: Browsing, server: PlenaryServer) -> None:
    page = admin.page
    page.goto(server.url("/admin/members/import"))
    csv = "name,email,groups\n" + "".join(f"{name},{email},\n" for name, email in MEMBERS.values())
    page.get_by_label("CSV file").set_input_files(
        {"name": "members.csv", "mimeType": "text/csv", "buffer": csv.encode()})
    page.get_by_role("button", name="Preview the import").click()
    expect(page.locator("#count-add")).to_have_text(str(len(MEMBERS)))
    page.get_by_role("button", name="Confirm the import").click()
    expect(page.locator(".flash")).to_contain_text(f"Imported {len(MEMBERS)} new members")


def join_by_invitation(member: Browsing, server: PlenaryServer, who: str) -> None:
    name, email = MEMBERS[who]
    page = member.page
    page.goto(server.link_in_mail(email, "/invite/"))
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_role("button", name="Join with this password").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {name}")


# --- the proposal -------------------------------------------------------------------------------------------

def write_and_publish(admin: Browsing, server: PlenaryServer) -> str:
    """The admin writes the proposal in the form, saves the draft and opens voting; returns its path."""
    page = admin.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Proposals").click()
    page.get_by_role("button", name="New proposal").click()  # a link styled as a button
    expect(page.get_by_role("heading", name="New proposal", level=1)).to_be_visible()
    admin.check("proposal-form")

    page.get_by_label("A question").check()
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Summary").fill("The committee's chair for the next two years.")
    page.get_by_label("Text", exact=True).fill("All three have agreed to stand. Rank those you would accept.")
    page.get_by_label("Ranked choice (instant runoff)").check()
    page.get_by_label("Options, one per line").fill("\n".join(OPTIONS))
    page.get_by_label("Secret ballot (recommended)").check()
    page.get_by_label("All members (5 members)").check()
    page.get_by_label("When I publish it").check()
    deadline = (dt.datetime.now(ZoneInfo(TZ)) + dt.timedelta(days=3)).replace(hour=18, minute=0)
    page.get_by_label("Deadline").fill(deadline.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Save draft").click()

    expect(page).to_have_url(re.compile(r"/proposals/\d+$"))
    path = page.url.removeprefix(server.base_url)
    expect(page.get_by_role("status")).to_contain_text("Draft saved")
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    expect(page.get_by_role("note")).to_contain_text("Draft: only admins can see it")
    expect(page.locator("#options li")).to_have_text(list(OPTIONS))
    expect(page.locator("#deadline")).to_contain_text("18:00")
    admin.check("detail-draft")

    page.get_by_role("button", name="Open voting now").click()
    expect(page).to_have_url(server.url(path))
    expect(page.get_by_role("status").first).to_have_text("Voting is open: 5 eligible members can vote now.")
    expect(page.locator(".state-badge")).to_have_attribute("data-state", "open")
    expect(page.locator("#vote-panel")).to_contain_text("You have not voted yet")
    expect(page.locator("#vote-panel")).to_contain_text("no tally is shown until voting closes")
    admin.check("detail-open")
    return path


def panel_of(b: Browsing) -> Any:
    return b.page.locator("#vote-panel")


def rank(b: Browsing, option: str) -> Any:
    return panel_of(b).get_by_label(option, exact=True)


def vote_with_htmx(voter: Browsing, ranks: dict[str, str], name: str) -> str:
    """Choose ranks with the mouse and vote: htmx swaps the panel in place. Returns the receipt code."""
    page = voter.page
    page.evaluate("() => { window.__sameDocument = true; }")
    url = page.url
    for option, value in ranks.items():
        rank(voter, option).select_option(value)
    with page.expect_response(lambda r: r.url.endswith("/vote") and r.request.headers.get("hx-request") == "true"):
        panel_of(voter).get_by_role("button", name="Vote").click()
    receipt = expect_receipt(voter, ranks)
    assert page.evaluate("() => window.__sameDocument === true"), "voting reloaded the whole page"
    assert page.url == url
    voter.check(name)
    return receipt


def expect_receipt(voter: Browsing, ranks: dict[str, str]) -> str:
    panel = panel_of(voter)
    status = panel.get_by_role("status")
    expect(status).to_contain_text("Your vote is recorded.")
    code = status.locator(".receipt-code code").inner_text()
    assert RECEIPT.fullmatch(code), code
    ranked = "; ".join(f"{n}. {o}" for n, o in sorted((int(v), o) for o, v in ranks.items()))
    expect(panel).to_contain_text(f"You voted: {ranked}.")
    expect(panel.get_by_role("button", name="Change my vote")).to_be_visible()
    return code


def open_proposal(member: Browsing, path: str, *, check_list: bool = False) -> None:
    """From the home page through the list, as a member would find it."""
    page = member.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Proposals").click()
    item = page.locator(".proposal-list li").filter(has_text=TITLE)
    expect(item).to_contain_text("You have not voted yet")
    if check_list:
        member.check("proposals-open")
    page.get_by_role("link", name=TITLE).click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))


def vote_by_keyboard(voter: Browsing) -> str:
    """Kira ranks Cleo 1 and Ben 2 with Tab, the arrow keys and Enter only."""
    page = voter.page
    kb = page.keyboard
    kb.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    kb.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
    first = rank(voter, "Anna")
    for _ in range(40):  # Tab through the proposal to the first rank
        kb.press("Tab")
        if first.evaluate("el => el === document.activeElement"):
            break
    expect(first).to_be_focused()
    kb.press("Tab")
    expect(rank(voter, "Ben")).to_be_focused()
    kb.press("ArrowDown")
    kb.press("ArrowDown")
    expect(rank(voter, "Ben")).to_have_value("2")
    kb.press("Tab")
    expect(rank(voter, "Cleo")).to_be_focused()
    kb.press("ArrowDown")
    expect(rank(voter, "Cleo")).to_have_value("1")
    expect(rank(voter, "Anna")).to_have_value("")
    kb.press("Tab")
    button = panel_of(voter).get_by_role("button", name="Vote")
    expect(button).to_be_focused()
    page.screenshot(path=str(voter.shots / "ranked-by-keyboard.png"))
    kb.press("Enter")
    receipt = expect_receipt(voter, {"Cleo": "1", "Ben": "2"})
    voter.check("voted-by-keyboard")
    return receipt


def vote_without_script(voter: Browsing, server: PlenaryServer, path: str) -> str:
    """Nadia's browser runs no script: the form posts, the server redirects back and shows the receipt once."""
    page = voter.page
    page.goto(server.url(path))
    rank(voter, "Ben").select_option("1")
    with page.expect_navigation():
        panel_of(voter).get_by_role("button", name="Vote").click()
    expect(page).to_have_url(server.url(path + "#vote-panel"))
    expect(page.locator(".flash")).to_have_text("Your vote is recorded.")
    receipt = expect_receipt(voter, {"Ben": "1"})
    page.screenshot(path=str(voter.shots / "voted-without-script.png"), full_page=True)
    page.reload()
    expect(panel_of(voter)).to_contain_text("You voted: 1. Ben.")
    expect(panel_of(voter).locator(".receipt-code")).to_have_count(0)  # shown once only
    voter.assert_no_problems()
    return receipt


def refused_then_vote(voter: Browsing) -> str:
    """Tom gives two options rank 1: the panel says why, in place; then he ranks Anna alone."""
    page = voter.page
    page.evaluate("() => { window.__sameDocument = true; }")
    rank(voter, "Anna").select_option("1")
    rank(voter, "Ben").select_option("1")
    panel_of(voter).get_by_role("button", name="Vote").click()
    expect(panel_of(voter).get_by_role("alert")).to_have_text("Each rank can be given to one option only.")
    assert page.evaluate("() => window.__sameDocument === true")
    expect(panel_of(voter)).to_contain_text("You have not voted yet")
    for option, value in [("Anna", "1"), ("Ben", "1"), ("Cleo", "")]:  # what he chose is still chosen
        expect(rank(voter, option)).to_have_value(value)
    voter.check("vote-refused")
    rank(voter, "Ben").select_option("")
    return vote_with_htmx(voter, {"Anna": "1"}, "voted-after-refusal")


# --- closing and the result ---------------------------------------------------------------------------------

def close_early(admin: Browsing, server: PlenaryServer, path: str) -> None:
    page = admin.page
    page.goto(server.url(path))
    expect(panel_of(admin)).to_contain_text("5 of 5 eligible members have voted.")
    page.get_by_label("Close voting early: the reason").fill(REASON)
    page.get_by_role("button", name="Close voting now").click()
    expect(page).to_have_url(server.url(path))
    expect(page.get_by_role("status").first).to_have_text("Voting is closed and the result is counted.")
    expect(page.locator(".state-badge")).to_have_attribute("data-state", "closed")
    expect(page.locator("#facts")).to_contain_text(f"Closed early by an admin: {REASON}")
    expect(panel_of(admin)).to_contain_text("Voting has closed.")
    admin.check("detail-closed")


def rounds_table(page: Any, caption: str) -> Any:
    return page.locator("table").filter(has=page.locator("caption", has_text=re.compile("^" + caption + "$")))


def expect_rows(table: Any, rows: list[tuple[str, str]]) -> None:
    body = table.locator("tbody tr")
    expect(body).to_have_count(len(rows))
    for i, (label, votes) in enumerate(rows):
        expect(body.nth(i).get_by_role("rowheader")).to_have_text(label)
        expect(body.nth(i).locator("td").first).to_have_text(votes)


def check_results(viewer: Browsing, server: PlenaryServer, path: str, receipts: dict[str, str]) -> None:
    page = viewer.page
    page.goto(server.url(path))
    page.get_by_role("link", name="Full results and receipts").click()
    expect(page).to_have_url(server.url(path + "/results"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Result: {TITLE}")
    expect(page.locator(".verdict")).to_have_text("Elected: Ben, with 3 of 5 continuing ballots (60.0%) in round 2.")
    expect(page.get_by_text(f"Closed early by an admin: {REASON}")).to_be_visible()
    expect(page.get_by_text("Turnout: 5 of 5 eligible members voted (100.0%).")).to_be_visible()

    first = page.locator("table").filter(has=page.locator("caption", has_text="First preferences"))
    expect_rows(first, [("Anna", "2"), ("Ben", "2"), ("Cleo", "1")])
    expect(first.locator("tbody tr td:nth-child(3)")).to_have_text(["40.0%", "40.0%", "20.0%"])

    rounds = page.locator("section").filter(has=page.get_by_role("heading", name="Rounds", level=2))
    expect(rounds.locator("caption")).to_have_text(["Round 1: Cleo eliminated", "Round 2: Ben elected"])
    expect_rows(rounds_table(page, "Round 1: Cleo eliminated"),
                [("Anna", "2"), ("Ben", "2"), ("Cleo", "1"), ("Exhausted ballots", "0")])
    expect(rounds).to_contain_text("Cleo's ballots went to: Ben 1.")
    expect_rows(rounds_table(page, "Round 2: Ben elected"),
                [("Anna", "2"), ("Ben", "3"), ("Exhausted ballots", "0")])
    expect(page.get_by_text("Ties are broken by the rule stated here, never by list order")).to_contain_text(
        "the option with fewer votes in the most recent earlier round where they differed goes out")
    expect(page.get_by_text("Tie-break:")).to_have_count(0)  # no tie needed breaking

    summary = page.get_by_text("All 5 counted ballots by receipt fingerprint")
    summary.click()
    listed = page.locator("ul.receipts li code")
    expect(listed).to_have_count(5)
    assert sorted(listed.all_inner_texts()) == sorted(fingerprint(code) for code in receipts.values())
    viewer.check("results")


def check_receipt_in_place(viewer: Browsing, receipt: str) -> None:
    """The receipt check answers in place through htmx, for a good code and for a wrong one."""
    page = viewer.page
    page.evaluate("() => { window.__sameDocument = true; }")
    box = page.locator("#receipt-check")
    box.get_by_label("Your receipt code").fill(receipt.lower())
    box.get_by_role("button", name="Check").click()
    expect(box.get_by_role("status")).to_have_text("Your ballot is in the count.")
    viewer.check("receipt-found")
    box.get_by_label("Your receipt code").fill("AAAA-BBBB-CCCC-DDDD")
    box.get_by_role("button", name="Check").click()
    expect(box.get_by_role("alert")).to_contain_text("No counted ballot has this receipt.")
    expect(box.get_by_role("status")).to_have_count(0)
    assert page.evaluate("() => window.__sameDocument === true"), "the receipt check reloaded the page"
    viewer.check("receipt-not-found")


def check_receipt_without_script(voter: Browsing, server: PlenaryServer, path: str, receipt: str) -> None:
    page = voter.page
    page.goto(server.url(path + "/results"))
    expect(page.locator(".verdict")).to_contain_text("Elected: Ben")
    page.get_by_label("Your receipt code").fill(receipt)
    page.get_by_role("button", name="Check").click()
    expect(page).to_have_url(server.url(path + "/receipt"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Receipt check")
    expect(page.get_by_role("status")).to_have_text("Your ballot is in the count.")
    voter.assert_no_problems()


def check_closed_list(member: Browsing) -> None:
    page = member.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Proposals").click()
    item = page.locator(".proposal-list li").filter(has_text=TITLE)
    expect(item).to_contain_text("Elected: Ben")
    expect(page.get_by_role("heading", name="Closed", level=2)).to_be_visible()
    member.check("proposals-closed")


# --- the story ----------------------------------------------------------------------------------------------

def test_ranked_choice_vote_closed_early(open_browser: Any, server: PlenaryServer) -> None:
    admin = open_browser("admin")
    set_up_as_admin(admin, server)
    import_members(admin, server)
    path = write_and_publish(admin, server)

    kira, hugo, tom = open_browser("kira"), open_browser("hugo"), open_browser("tom")
    nadia = open_browser("nadia", javascript=False)
    for who, b in [("kira", kira), ("hugo", hugo), ("tom", tom), ("nadia", nadia)]:
        join_by_invitation(b, server, who)

    receipts: dict[str, str] = {}
    admin.page.goto(server.url(path))
    receipts["ada"] = vote_with_htmx(admin, {"Anna": "1", "Ben": "2"}, "voted-admin")

    open_proposal(hugo, path, check_list=True)
    receipts["hugo"] = vote_with_htmx(hugo, {"Ben": "1", "Cleo": "2"}, "voted-htmx")

    open_proposal(kira, path)
    receipts["kira"] = vote_by_keyboard(kira)

    receipts["nadia"] = vote_without_script(nadia, server, path)

    open_proposal(tom, path)
    receipts["tom"] = refused_then_vote(tom)
    assert len(set(receipts.values())) == 5

    close_early(admin, server, path)

    check_results(kira, server, path, receipts)
    check_receipt_in_place(kira, receipts["kira"])
    check_receipt_without_script(nadia, server, path, receipts["nadia"])
    check_closed_list(hugo)

    for b in (admin, kira, hugo, nadia, tom):
        b.assert_no_problems()
