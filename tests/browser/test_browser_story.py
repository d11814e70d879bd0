"""The first-run story in a real browser: set up, import members, a member signs in by email link, signs out.

Each page visited is checked with axe-core (WCAG 2.1 A/AA) and screenshotted into the test's tmp directory;
the browser must report no Content-Security-Policy violation anywhere.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.browser.harness import PASSWORD, Browsing, PlenaryServer, axe_violations, plain_text

pytestmark = pytest.mark.browser

ORG = "Riverside Tenants"
ADMIN = ("Ada Admin", "ada@example.org")
CSV = """name,email,groups
Mia Member,mia@example.org,Board|Riverside
Noah Neighbour,noah@example.org,
Bad Address,not-an-email,
"""


def first_run_setup(admin: Browsing, server: PlenaryServer) -> None:
    page = admin.page
    page.goto(server.setup_link)
    expect(page.get_by_role("heading", name="Set up Plenary")).to_be_visible()
    admin.check("setup")
    page.get_by_label("Organization name").fill(ORG)
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_label("Your name").fill(ADMIN[0])
    page.get_by_label("Email address").fill(ADMIN[1])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create the organization").click()

    expect(page).to_have_url(server.url("/"))
    expect(page.get_by_role("navigation", name="Main")).to_contain_text(ORG)
    expect(page.get_by_role("status")).to_contain_text("Your organization is ready")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {ADMIN[0]}")
    admin.check("home-admin")

    # Keyboard: the skip link is the first Tab stop, shows itself, and moves focus to the main content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert skip.bounding_box()["x"] >= 0, "the focused skip link is off screen"
    page.screenshot(path=str(admin.shots / "skip-link-focused.png"))
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()


def import_members(admin: Browsing, server: PlenaryServer, tmp_path: Path) -> None:
    page = admin.page
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Members", exact=True).click()
    expect(page.get_by_role("heading", name="Members", level=1)).to_be_visible()
    admin.check("members-before-import")

    page.get_by_role("button", name="Import from CSV").click()
    expect(page.get_by_role("heading", name="Import members from a CSV file")).to_be_visible()
    admin.check("import-upload")

    csv_file = tmp_path / "members.csv"
    csv_file.write_text(CSV, encoding="utf-8")
    page.get_by_label("CSV file").set_input_files(csv_file)
    page.get_by_role("button", name="Preview the import").click()

    expect(page.get_by_role("heading", name="Check the import", level=1)).to_be_visible()
    expect(page.locator("#count-add")).to_have_text("2")
    expect(page.locator("#count-errors")).to_have_text("1")
    expect(page.locator("#new-groups")).to_contain_text("Board")
    bad_row = page.locator("#import-errors tbody tr")
    expect(bad_row).to_have_count(1)
    expect(bad_row.get_by_role("rowheader")).to_have_text("4")  # the header is line 1
    expect(bad_row).to_contain_text("not-an-email")
    admin.check("import-preview")

    page.get_by_label(re.compile(r"Import the 2 good rows")).check()
    page.get_by_role("button", name="Confirm the import").click()

    expect(page).to_have_url(server.url("/admin/members"))
    expect(page.locator(".flash")).to_contain_text("Imported 2 new members")
    expect(page.locator(".flash")).to_contain_text("skipped 1 row")
    table = page.locator("#members-table")
    mia = table.get_by_role("row").filter(has_text="mia@example.org")
    expect(mia).to_contain_text("Mia Member")
    expect(mia).to_contain_text("Board, Riverside")
    expect(table).to_contain_text("Noah Neighbour")
    expect(table).not_to_contain_text("not-an-email")
    admin.check("members-after-import")

    # The search box updates the table in place through htmx: no new page load, and the URL follows.
    page.evaluate("() => { window.__sameDocument = true; }")
    with page.expect_response(lambda r: "q=noah" in r.url and r.request.headers.get("hx-request") == "true"):
        page.get_by_label("Search name or email").press_sequentially("noah")
    expect(table.get_by_role("status")).to_have_text("1 member matching “noah”")
    expect(table).to_contain_text("Noah Neighbour")
    expect(table).not_to_contain_text("Mia Member")
    expect(page).to_have_url(re.compile(r"/admin/members\?q=noah"))
    assert page.evaluate("() => window.__sameDocument === true"), "the search reloaded the whole page"
    admin.check("members-search")

    # The invitations went out through SMTP, and the outbox says so.
    server.wait_for_mail("noah@example.org", server.url("/invite/"))
    server.wait_for_mail("mia@example.org", server.url("/invite/"))
    nav.get_by_role("link", name="Outbox").click()
    expect(page.get_by_role("heading", name="Outbox", level=1)).to_be_visible()
    outbox = page.locator("#outbox tbody")
    expect(outbox.get_by_role("row").filter(has_text="noah@example.org")).to_contain_text("sent")
    expect(outbox.get_by_role("row").filter(has_text="mia@example.org")).to_contain_text("sent")
    admin.check("outbox")


def member_signs_in_by_link(member: Browsing, server: PlenaryServer) -> None:
    page = member.page
    page.goto(server.url("/signin"))
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    member.check("signin")

    page.get_by_role("link", name="Email me a sign-in link").click()
    expect(page.get_by_role("heading", name="Sign in by email")).to_be_visible()
    member.check("signin-link-request")
    page.get_by_label("Email address").fill("mia@example.org")
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.get_by_role("status")).to_contain_text("a link is on its way")
    member.check("signin-link-sent")

    msg = server.wait_for_mail("mia@example.org", "/signin/link/")
    links = re.findall(re.escape(server.base_url) + r"/signin/link/[A-Za-z0-9_\-]+", plain_text(msg))
    assert links, plain_text(msg)
    page.goto(links[0])
    expect(page.get_by_role("heading", name="Sign in as Mia Member")).to_be_visible()
    member.check("signin-link-confirm")
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(server.url("/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Mia Member")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Members", exact=True)).to_have_count(0)  # not an admin
    member.check("home-member")


def member_signs_out(member: Browsing, server: PlenaryServer) -> None:
    page = member.page
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(server.url("/signin"))
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    member.check("signed-out")
    page.goto(server.url("/"))
    expect(page).to_have_url(server.url("/signin?next=/"))
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()


def test_setup_import_and_member_sign_in(open_browser: Any, server: PlenaryServer, tmp_path: Path) -> None:
    admin = open_browser("admin")
    first_run_setup(admin, server)
    import_members(admin, server, tmp_path)

    member = open_browser("member")  # another person, on another device
    member_signs_in_by_link(member, server)
    member_signs_out(member, server)

    admin.assert_no_problems()
    member.assert_no_problems()


def test_public_pages_are_accessible(open_browser: Any, server: PlenaryServer) -> None:
    visitor = open_browser("visitor")
    page = visitor.page
    for path, status in [
        ("/signin", 200),
        ("/signin/link", 200),
        ("/reset", 200),
        ("/signin/link/not-a-real-token", 400),
        ("/no-such-page", 404),
    ]:
        response = page.goto(server.url(path))
        assert response is not None and response.status == status, (path, response and response.status)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        visitor.check(path.strip("/").replace("/", "-"))
    visitor.assert_no_problems()


def test_the_checks_catch_problems(open_browser: Any, server: PlenaryServer) -> None:
    """The checks above can fail: axe sees an image without alt text, and an inline script is a CSP report."""
    visitor = open_browser("self-test")
    page = visitor.page
    page.goto(server.url("/signin"))
    page.evaluate("""() => {
        const img = document.createElement('img');
        img.src = '/static/favicon.svg';
        document.querySelector('main').append(img);
    }""")
    assert "image-alt" in [v["id"] for v in axe_violations(page, server.base_url)]

    with page.expect_console_message(lambda m: "Content Security Policy" in m.text), \
            contextlib.suppress(PlaywrightError):
        page.add_script_tag(content="window.inlineRan = true;")
    assert page.evaluate("() => window.inlineRan") is None, "the CSP let an inline script run"
    assert any(p.startswith("CSP") for p in visitor.problems), visitor.problems
