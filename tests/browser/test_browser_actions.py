"""An action step in a real browser: the admin adds a shift to a proposal (a slip in the form first comes back
in place, filled in), a member votes, the admin closes voting, and the member signs up on the results page
(htmx), receives the confirmation with a calendar file that parses, and reports the shift done. Every page is
checked with axe-core and for CSP reports."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from playwright.sync_api import expect

from tests.browser.harness import Browsing, PlenaryServer
from tests.browser.test_browser_voting import (
    MEMBERS,
    TZ,
    import_members,
    join_by_invitation,
    panel_of,
    set_up_as_admin,
    vote_with_htmx,
    write_and_publish,
)

pytestmark = pytest.mark.browser

SHIFT = "Dig the new beds"


def add_shift(admin: Browsing, server: PlenaryServer, path: str) -> dt.datetime:
    """The admin adds a shift (in ten days, 10:00–12:00, two places) from the proposal's page."""
    page = admin.page
    page.goto(server.url(path))
    page.locator("#step-form summary").click()
    start = (dt.datetime.now(ZoneInfo(TZ)) + dt.timedelta(days=10)).replace(hour=10, minute=0, second=0,
                                                                          microsecond=0)
    form = page.locator("#step-form form")
    form.get_by_label("Kind").select_option("shift")
    form.get_by_label("Title", exact=True).fill(SHIFT)
    form.get_by_label("Date (shifts)").fill(start.strftime("%Y-%m-%d"))
    form.get_by_label("Starts (shifts)").fill("10:00")
    form.get_by_label("Ends (shifts)").fill("09:00")  # a slip: the form comes back in place, filled in
    form.get_by_label("Place", exact=True).fill("The garden gate")
    form.get_by_label("Places (shifts and tasks; empty = no limit)").fill("2")
    page.evaluate("() => { window.__sameDocument = true; }")
    form.get_by_role("button", name="Add step").click()
    expect(form.get_by_role("alert")).to_contain_text("The shift must end after it starts")
    expect(form.get_by_label("Title", exact=True)).to_have_value(SHIFT)
    assert page.evaluate("() => window.__sameDocument === true"), "a refused step reloaded the whole page"
    admin.check("step-refused")
    form.get_by_label("Ends (shifts)").fill("12:00")
    form.get_by_role("button", name="Add step").click()
    expect(page.get_by_role("status").first).to_contain_text("Action step added")
    expect(page.locator(".action-step")).to_contain_text(SHIFT)
    admin.check("step-added")
    return start


def close_now(admin: Browsing, server: PlenaryServer, path: str) -> None:
    page = admin.page
    page.goto(server.url(path))
    page.get_by_label("Close voting early: the reason").fill("The work day needs planning.")
    page.get_by_role("button", name="Close voting now").click()
    expect(page.locator(".state-badge")).to_have_attribute("data-state", "closed")
    admin.check("closed")


def test_sign_up_for_a_shift_from_the_results_page(open_browser: Any, server: PlenaryServer) -> None:
    admin = open_browser("admin")
    set_up_as_admin(admin, server)
    import_members(admin, server)
    path = write_and_publish(admin, server)
    start = add_shift(admin, server, path)

    kira = open_browser("kira")
    join_by_invitation(kira, server, "kira")
    kira.page.goto(server.url(path))
    expect(panel_of(kira)).to_be_visible()
    vote_with_htmx(kira, {"Ben": "1"}, "voted")
    close_now(admin, server, path)

    page = kira.page
    page.goto(server.url(path + "/results"))
    step = page.locator(".action-step", has_text=SHIFT)
    expect(step).to_contain_text("0 of 2 volunteers")
    kira.check("results-with-steps")
    page.evaluate("() => { window.__sameDocument = true; }")
    with page.expect_response(lambda r: r.url.endswith("/commit") and r.request.headers.get("hx-request") == "true"):
        step.get_by_role("button", name="I'm in").click()
    expect(step).to_contain_text("You're in.")
    expect(step).to_contain_text("1 of 2 volunteers")
    assert page.evaluate("() => window.__sameDocument === true"), "signing up reloaded the whole page"
    kira.check("signed-up")

    name, email = MEMBERS["kira"]
    msg = server.wait_for_mail(email, f'You signed up for "{SHIFT}"')  # the results mail lists the shift too
    [ics] = [part for part in msg.iter_attachments() if part.get_content_type() == "text/calendar"]
    cal = Calendar.from_ical(ics.get_content() if isinstance(ics.get_content(), str)
                             else ics.get_content().decode())
    [event] = cal.walk("VEVENT")
    assert event["DTSTART"].params["TZID"] == TZ
    assert event.decoded("DTSTART") == start
    assert re.fullmatch(r"commitment-\d+@[\w.\-]+", str(event["UID"]))
    assert str(event["SUMMARY"]) == SHIFT and str(event["LOCATION"]) == "The garden gate"

    page.goto(server.url("/"))
    expect(page.locator("#home-commitments")).to_contain_text(SHIFT)
    kira.check("home-commitments")
    page.locator("#home-commitments").get_by_role("link", name=SHIFT).click()
    step = page.locator(".action-step", has_text=SHIFT)
    step.get_by_label("A short note (optional)").fill("Two beds dug.")
    step.get_by_role("button", name="Mark done").click()
    expect(step).to_contain_text("You reported this done.")
    expect(step).to_contain_text("1 reported done")
    kira.check("done")

    for b in (admin, kira):
        b.assert_no_problems()
