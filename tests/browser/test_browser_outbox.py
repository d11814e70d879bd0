"""The outbox in a real browser, against a real SMTP server that refuses two addresses: one for good (550),
one for now (451). The admin retries the failed invitation and cancels the waiting one, with htmx (the row
is swapped in place; Cancel asks first) and with scripts off (the form posts and comes back to the list).
The third refusal flags the address as bouncing: the directory says so and the admin clears the flag.
Every page is checked with axe-core and for CSP reports."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.harness import PASSWORD, Browsing, PlenaryServer
from tests.browser.test_browser_voting import ADMIN, set_up_as_admin

pytestmark = pytest.mark.browser

GONE = ("Gus Gone", "gone@example.org")  # the server answers 550: no such user
LATER = ("Lee Later", "later@example.org")  # the server answers 451: try again later


def invite(admin: Browsing, server: PlenaryServer, name: str, email: str) -> None:
    page = admin.page
    page.goto(server.url("/admin/members/invite"))
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".flash")).to_contain_text(f"Invitation to {name} queued")


def row_of(page: Any, email: str) -> Any:
    return page.locator("#outbox tbody tr", has_text=email)


def wait_for_status(b: Browsing, server: PlenaryServer, email: str, status: str, path: str = "/admin/outbox",
                    timeout: float = 20.0, *, saying: str = "") -> None:
    """Reload the outbox until the message to `email` has `status` and its row says `saying` (the worker
    sends in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        b.page.goto(server.url(path))
        row = row_of(b.page, email)
        badge = row.locator(".badge")
        if badge.count() and badge.first.inner_text() == status and saying in row.first.inner_text():
            return
        assert time.monotonic() < deadline, f"the message to {email} did not become {status}"
        time.sleep(0.3)


def test_admin_retries_and_cancels_and_clears_a_bouncing_address(open_browser: Any, server: PlenaryServer) -> None:
    server.sink.reject_rcpt[GONE[1]] = 550
    server.sink.reject_rcpt[LATER[1]] = 451
    admin = open_browser("admin")
    set_up_as_admin(admin, server)
    invite(admin, server, *GONE)
    invite(admin, server, *LATER)
    wait_for_status(admin, server, GONE[1], "failed")
    wait_for_status(admin, server, LATER[1], "pending", saying="451 4.3.0")
    page = admin.page
    expect(row_of(page, GONE[1])).to_contain_text("550 5.1.1 No such user here")
    expect(row_of(page, LATER[1])).to_contain_text("next try")
    admin.check("outbox-refusals")

    # With htmx: Retry swaps the row, in the same document.
    page.evaluate("() => { window.__sameDocument = true; }")
    with page.expect_response(lambda r: r.url.endswith("/retry") and r.request.headers.get("hx-request") == "true"):
        row_of(page, GONE[1]).get_by_role("button", name=f"Retry the message to {GONE[1]}").click()
    expect(row_of(page, GONE[1]).locator(".badge")).to_have_text("pending")
    expect(row_of(page, GONE[1]).get_by_role("button", name=f"Cancel the message to {GONE[1]}")).to_be_visible()
    # Cancel asks first; once accepted, the row says cancelled and offers nothing more.
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    with page.expect_response(lambda r: r.url.endswith("/cancel")):
        row_of(page, LATER[1]).get_by_role("button", name=f"Cancel the message to {LATER[1]}").click()
    expect(row_of(page, LATER[1]).locator(".badge")).to_have_text("cancelled")
    expect(row_of(page, LATER[1]).get_by_role("button")).to_have_count(0)
    assert asked == ["Cancel this message? It will never be sent."]
    assert page.evaluate("() => window.__sameDocument === true"), "the action reloaded the whole page"
    admin.check("outbox-after-htmx")

    # Scripts off: the retried invitation was refused again; Retry posts and comes back to the filtered list.
    plain = open_browser("admin-no-js", javascript=False)
    plain.page.goto(server.url("/signin"))
    plain.page.get_by_label("Email address").fill(ADMIN[1])
    plain.page.get_by_label("Password").fill(PASSWORD)
    plain.page.get_by_role("button", name="Sign in").click()
    wait_for_status(plain, server, GONE[1], "failed", "/admin/outbox?status=failed")
    row_of(plain.page, GONE[1]).get_by_role("button", name=f"Retry the message to {GONE[1]}").click()
    expect(plain.page).to_have_url(server.url("/admin/outbox?status=failed"))
    expect(plain.page.locator(".flash")).to_have_text("The message is back in the queue.")
    plain.assert_no_problems()  # (axe needs scripts: the same page was checked with them above)

    # Refused a third time in a row: the address is flagged, and the directory shows it.
    wait_for_status(admin, server, GONE[1], "failed")
    page.goto(server.url("/admin/members?status=bouncing"))
    expect(page.locator("#members-table tbody tr")).to_have_count(1)
    expect(page.locator("#members-table tbody tr")).to_contain_text("bouncing")
    admin.check("members-bouncing")
    page.get_by_role("link", name=GONE[0]).click()
    expect(page.locator("#last-bounce")).to_have_text("550 5.1.1 No such user here")
    admin.check("member-bouncing")
    page.get_by_role("button", name=re.compile("^Clear the flag")).click()
    expect(page.locator(".flash")).to_contain_text("The bouncing flag is cleared")
    expect(page.locator("#bouncing-note")).to_have_count(0)
    wait_for_status(admin, server, LATER[1], "cancelled")  # and the cancelled one stayed cancelled
    assert not [m for m in server.sink.messages if LATER[1] in m.rcpt_tos]
