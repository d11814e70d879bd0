"""The admins' side of action steps through HTTP: adding each kind of step (valid and refused, with and without
htmx), changing and deleting steps (calendar updates and cancellations), campaigns (audience, drafts,
publishing and its announcement), messages to volunteers, the roster, and who may see all this."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pytest
from bs4 import BeautifulSoup
from icalendar import Calendar
from sqlalchemy import func, select

from app.actions import services
from app.actions.models import ActionStep, Campaign, Commitment, PageView
from app.actions.services import StepData
from app.db import utcnow
from app.mail.models import DigestItem, MailPreference, OutboxMessage
from app.members.models import AuditEvent
from app.middleware import CurrentMember
from tests.factories import make_group, make_member, make_proposal

HX = {"HX-Request": "true"}
TZ = ZoneInfo("Europe/Berlin")  # the org fixture's time zone


def me(m) -> CurrentMember:  # type: ignore[no-untyped-def]
    return CurrentMember(id=m.id, name=m.name, email=m.email, role=m.role, session_id=0)


def soup(r) -> BeautifulSoup:  # type: ignore[no-untyped-def]
    return BeautifulSoup(r.text, "html.parser")


def mail(db, kind: str) -> list[OutboxMessage]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)))


def state(db) -> tuple[list[tuple], list[tuple], int, int]:  # type: ignore[no-untyped-def]
    """Every step and commitment, and how many messages and campaigns there are: to show a refusal changed nothing."""
    with db.read() as s:
        steps = [(st.id, st.kind, st.title, st.starts_at, st.ends_at, st.place, st.link, st.capacity, st.goal,
                  st.unit, st.sequence) for st in s.scalars(select(ActionStep).order_by(ActionStep.id))]
        commitments = [(c.id, c.status, c.position, c.calendar_sequence)
                       for c in s.scalars(select(Commitment).order_by(Commitment.id))]
        return (steps, commitments, s.scalar(select(func.count()).select_from(OutboxMessage)),
                s.scalar(select(func.count()).select_from(Campaign)))


@pytest.fixture
def proposal(db, admin, member):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return make_proposal(s, state="open", created_by=admin.id)


@pytest.fixture
def campaign(db, admin, member):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        c = Campaign(title="Clean the river", published=True, published_at=utcnow())
        s.add(c)
        s.flush()
        return c


def day(days: int = 5) -> str:
    return (dt.datetime.now(TZ) + dt.timedelta(days=days)).date().isoformat()


VALID = {
    "shift": {"kind": "shift", "title": "River clean-up", "description": "Bring gloves", "date": day(),
              "start": "10:00", "end": "12:30", "place": "Old bridge", "capacity": "2"},
    "online-shift": {"kind": "shift", "title": "Phone bank", "date": day(), "start": "18:00", "end": "20:00",
                     "link": "https://meet.example.org/phone-bank"},
    "pledge": {"kind": "pledge", "title": "Bags of compost", "goal": "50", "unit": "bags"},
    "open-pledge": {"kind": "pledge", "title": "Bring a cake"},
    "task": {"kind": "task", "title": "Print flyers", "capacity": "1", "description": "A4, 200 copies"},
    "open-task": {"kind": "task", "title": "Tell your neighbours"},
    "external": {"kind": "external", "title": "Sign the petition", "link": "https://petition.example.org/river",
                 "description": "It takes a minute"},
}


def parent_paths(parent: str, proposal, campaign) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    if parent == "proposal":
        return f"/admin/proposals/{proposal.id}/steps", f"/proposals/{proposal.id}"
    return f"/admin/campaigns/{campaign.id}/steps", f"/campaigns/{campaign.id}"


@pytest.mark.parametrize("parent", ["proposal", "campaign"])
@pytest.mark.parametrize("case", sorted(VALID))
def test_adding_each_kind_of_step(admin_client, member_client, db, proposal, campaign, parent, case):
    post, page = parent_paths(parent, proposal, campaign)
    r = admin_client.form(post, VALID[case])
    assert r.status_code == 303, r.text
    with db.read() as s:
        [step] = s.scalars(select(ActionStep))
    assert r.headers["location"] == f"{page}#step-{step.id}"
    assert (step.proposal_id, step.campaign_id) == ((proposal.id, None) if parent == "proposal" else
                                                    (None, campaign.id))
    sent = VALID[case]
    assert (step.kind, step.title, step.description) == (sent["kind"], sent["title"], sent.get("description", ""))
    assert step.capacity == (int(sent["capacity"]) if "capacity" in sent else None)
    assert (step.goal, step.unit) == (int(sent["goal"]) if "goal" in sent else None, sent.get("unit", ""))
    assert step.link == sent.get("link", "") and step.place == sent.get("place", "")
    if step.kind == "shift":
        start = dt.datetime.combine(dt.date.fromisoformat(sent["date"]), dt.time.fromisoformat(sent["start"]), TZ)
        assert step.starts_at == start and step.ends_at.astimezone(TZ).strftime("%H:%M") == sent["end"]
    else:
        assert step.starts_at is None
    # Members see it where it was added, with a labelled way to sign up.
    article = soup(member_client.get(page)).find(id=f"step-{step.id}")
    assert article is not None and sent["title"] in article.text
    assert article.find("button", string=re.compile("I'm in"))
    with db.read() as s:
        assert s.scalar(select(AuditEvent.action).where(AuditEvent.object_id == step.id,
                                                        AuditEvent.object_type == "action_step")) == "step.create"


REFUSED = [
    ({"kind": "meeting", "title": "X"}, "kind", "Choose what kind"),
    ({"kind": "task", "title": "  "}, "title", "Give the step a title"),
    ({"kind": "task", "title": "x" * 201}, "title", "under 200"),
    ({"kind": "task", "title": "Flyers", "capacity": "0"}, "capacity", "whole number from 1 to 100,000"),
    ({"kind": "task", "title": "Flyers", "capacity": "many"}, "capacity", "whole number"),
    ({"kind": "task", "title": "Flyers", "capacity": "100001"}, "capacity", "whole number"),
    ({"kind": "pledge", "title": "Bags", "goal": "-5"}, "goal", "whole number from 1 to 1,000,000"),
    ({"kind": "pledge", "title": "Bags", "goal": "1000001"}, "goal", "whole number"),
    ({"kind": "pledge", "title": "Bags", "unit": "u" * 41}, "unit", "under 40"),
    ({"kind": "external", "title": "Petition"}, "link", "needs the link"),
    ({"kind": "external", "title": "Petition", "link": "javascript:alert(1)"}, "link", "starting with https://"),
    ({"kind": "external", "title": "Petition", "link": "https://"}, "link", "starting with https://"),
    ({**VALID["shift"], "date": ""}, "date", "needs a date, a start time and an end time"),
    ({**VALID["shift"], "start": "25:00"}, "date", "needs a date"),
    ({**VALID["shift"], "date": "2025-02-30"}, "date", "needs a date"),
    ({**VALID["shift"], "end": "09:00"}, "end", "must end after it starts"),
    ({**VALID["shift"], "date": day(-2)}, "date", "has passed"),
    ({**VALID["shift"], "date": day(5 * 365)}, "date", "three years"),
    ({**VALID["shift"], "place": ""}, "place", "Say where"),
    ({**VALID["shift"], "description": "d" * 5001}, "description", "under 5,000"),
]


@pytest.mark.parametrize("parent", ["proposal", "campaign"])
def test_a_refused_step_form_comes_back_filled_in(admin_client, db, proposal, campaign, parent):
    post, _page = parent_paths(parent, proposal, campaign)
    before = state(db)
    for sent, field, words in REFUSED:
        r = admin_client.form(post, sent)
        assert r.status_code == 400, (sent, r.status_code)
        page = soup(r)
        assert page.find("html") and page.find(id="step-form-errors")["role"] == "alert"
        error = page.find(id=f"se-{field}")
        assert error is not None and words in error.text, (sent, field, page.find(id="step-form-errors").text)
        # What was typed is still there, tied to its label and its message.
        if field not in ("kind",):
            widget = page.find(id=f"sf-{field}")
            assert widget["aria-invalid"] == "true" and f"se-{field}" in widget["aria-describedby"]
            assert page.find("label", attrs={"for": f"sf-{field}"})
        typed = page.find(id="sf-title")["value"]
        assert typed == sent["title"][:20_000].strip()
        if sent["kind"] in ("task", "pledge", "external", "shift"):
            assert page.find(id="sf-kind").find("option", selected=True)["value"] == sent["kind"]
        # With htmx: only the form, to swap in place.
        r = admin_client.form(post, sent, headers=HX)
        assert r.status_code == 400 and r.text.lstrip().startswith("<form")
        fragment = soup(r)
        assert fragment.find("html") is None and fragment.find(id=f"se-{field}")
        assert fragment.form["hx-post"] == post and fragment.find("input", attrs={"name": "csrf_token"})
    assert state(db) == before


def test_htmx_adds_a_step_and_sends_the_page_to_it(admin_client, db, proposal):
    r = admin_client.form(f"/admin/proposals/{proposal.id}/steps", VALID["task"], headers=HX)
    assert r.status_code == 204
    with db.read() as s:
        step = s.scalar(select(ActionStep))
    assert r.headers["hx-redirect"] == f"/proposals/{proposal.id}#step-{step.id}"
    assert "Action%20step%20added" in r.headers["set-cookie"]
    assert "hx-refresh" not in r.headers
    # Sent from the proposal's own page, where only the #fragment would change: reloaded there.
    r = admin_client.form(f"/admin/proposals/{proposal.id}/steps", VALID["open-task"],
                          headers={**HX, "HX-Current-URL": f"http://testserver/proposals/{proposal.id}"})
    assert r.status_code == 204 and r.headers["hx-refresh"] == "true"


def test_the_step_form_pages(admin_client, member_client, db, proposal, campaign):
    for path in (f"/admin/proposals/{proposal.id}/steps", f"/admin/campaigns/{campaign.id}/steps"):
        page = soup(admin_client.get(path))
        assert page.find("form", action=path) and page.find("label", attrs={"for": "sf-kind"})
        assert member_client.get(path).status_code == 403
        assert member_client.form(path, VALID["task"]).status_code == 403
    assert admin_client.get("/admin/proposals/999999/steps").status_code == 404
    assert admin_client.form("/admin/campaigns/999999/steps", VALID["task"]).status_code == 404
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ActionStep)) == 0


# --- changing a step ---------------------------------------------------------------------------------------------

def _shift_with_people(db, settings, proposal, *, capacity: int = 2, waiting: int = 1):  # type: ignore[no-untyped-def]
    start = (dt.datetime.now(TZ) + dt.timedelta(days=4)).replace(hour=10, minute=0, second=0, microsecond=0)
    with db.begin() as s:
        step = services.create_step(s, StepData(kind="shift", title="River clean-up", place="Old bridge",
                                                starts_at=start.astimezone(dt.UTC),
                                                ends_at=(start + dt.timedelta(hours=2)).astimezone(dt.UTC),
                                                capacity=capacity), proposal_id=proposal.id)
        people = [make_member(s) for _ in range(capacity + waiting)]
        for m in people:
            services.commit(s, settings, me(m), step.id)
    return step, people


def test_editing_a_shift_sends_an_updated_calendar_and_tells_the_waiting(admin_client, db, settings, proposal):
    step, people = _shift_with_people(db, settings, proposal, capacity=2, waiting=1)
    page = soup(admin_client.get(f"/admin/steps/{step.id}/edit"))
    form = page.find("form", action=f"/admin/steps/{step.id}/edit")
    values = {i["name"]: i.get("value", "") for i in form.find_all("input") if i["name"] != "csrf_token"}
    start = step.starts_at.astimezone(TZ)
    assert values == {"title": "River clean-up", "date": start.date().isoformat(), "start": "10:00", "end": "12:00",
                      "place": "Old bridge", "link": "", "capacity": "2"}  # the shift's own fields only
    assert form.find("select") is None and "cannot change" in form.text
    before = {m.id: m.id for m in mail(db, "commitment")}
    r = admin_client.form(f"/admin/steps/{step.id}/edit", {**values, "start": "11:00", "end": "13:00",
                                                           "description": "Bring boots"})
    assert r.status_code == 303 and r.headers["location"] == f"/proposals/{proposal.id}#step-{step.id}"
    with db.read() as s:
        saved = s.get(ActionStep, step.id)
        assert saved.starts_at == step.starts_at + dt.timedelta(hours=1) and saved.sequence == 1
        assert saved.description == "Bring boots"
    updates = [m for m in mail(db, "commitment") if m.id not in before]
    assert sorted(m.to_addr for m in updates) == sorted(p.email for p in people)
    for m in updates:
        if m.to_addr == people[2].email:  # waiting: told, but nothing for a calendar
            assert m.attachments is None and "still on its waiting list" in m.text_body
            continue
        cal = Calendar.from_ical(m.attachments[0]["content"])
        event = cal.walk("VEVENT")[0]
        assert str(cal["METHOD"]) == "REQUEST" and int(event["SEQUENCE"]) == 1  # the first file had 0
        assert event.decoded("DTSTART") == saved.starts_at and m.subject == "Changed: River clean-up"
    # Saving again without a change to time or place sends nothing.
    r = admin_client.form(f"/admin/steps/{step.id}/edit", {**values, "start": "11:00", "end": "13:00",
                                                           "description": "Bring boots and a hat"})
    assert r.status_code == 303 and len(mail(db, "commitment")) == len(before) + len(updates)


def test_fewer_places_than_taken_is_refused_and_more_moves_the_waiting_in(admin_client, db, settings, proposal):
    step, people = _shift_with_people(db, settings, proposal, capacity=2, waiting=2)
    values = {"title": "River clean-up", "date": step.starts_at.astimezone(TZ).date().isoformat(), "start": "10:00",
              "end": "12:00", "place": "Old bridge"}
    before = state(db)
    r = admin_client.form(f"/admin/steps/{step.id}/edit", {**values, "capacity": "1"})
    assert r.status_code == 400
    page = soup(r)
    assert "2 members already have a place, so there cannot be fewer than 2 places" in page.find(id="se-capacity").text
    assert page.find(id="sf-capacity")["value"] == "1"
    r = admin_client.form(f"/admin/steps/{step.id}/edit", {**values, "capacity": "1"}, headers=HX)
    assert r.status_code == 400 and r.text.lstrip().startswith("<form") and "fewer than 2" in r.text
    assert state(db) == before
    r = admin_client.form(f"/admin/steps/{step.id}/edit", {**values, "capacity": "3"})
    assert r.status_code == 303
    with db.read() as s:
        statuses = {c.member_id: c.status for c in s.scalars(select(Commitment))}
    assert [statuses[p.id] for p in people] == ["committed", "committed", "committed", "waitlisted"]
    [moved] = [m for m in mail(db, "commitment") if "A place opened up" in m.subject]
    assert moved.to_addr == people[2].email and moved.attachments


def test_only_admins_change_or_delete_steps(member_client, admin_client, db, settings, proposal):
    step, _people = _shift_with_people(db, settings, proposal)
    before = state(db)
    assert member_client.get(f"/admin/steps/{step.id}/edit").status_code == 403
    assert member_client.form(f"/admin/steps/{step.id}/edit", {"title": "Mine now"}).status_code == 403
    assert member_client.get(f"/admin/steps/{step.id}/delete").status_code == 403
    assert member_client.form(f"/admin/steps/{step.id}/delete").status_code == 403
    assert admin_client.get("/admin/steps/999999/edit").status_code == 404
    assert admin_client.form("/admin/steps/999999/delete").status_code == 404
    assert state(db) == before
    # Admins find both from the step itself.
    article = soup(admin_client.get(f"/proposals/{proposal.id}")).find(id=f"step-{step.id}")
    links = {a["href"] for a in article.find_all("a")}
    assert {f"/admin/steps/{step.id}/edit", f"/admin/steps/{step.id}/delete"} <= links
    article = soup(member_client.get(f"/proposals/{proposal.id}")).find(id=f"step-{step.id}")
    assert not [a for a in article.find_all("a") if a["href"].startswith("/admin/")]


def test_deleting_a_shift_cancels_it_in_calendars(admin_client, db, settings, proposal):
    step, people = _shift_with_people(db, settings, proposal, capacity=2, waiting=1)
    with db.begin() as s:  # one of them withdrew earlier, one reported done: neither is told again
        withdrawn, done = make_member(s), make_member(s)
        s.add(Commitment(step_id=step.id, member_id=withdrawn.id, status="withdrawn"))
        s.add(Commitment(step_id=step.id, member_id=done.id, status="done"))
    page = soup(admin_client.get(f"/admin/steps/{step.id}/delete"))
    assert "3 members signed up and 1 waiting" in page.text  # the one who reported done is one of the 3
    before = {m.id for m in mail(db, "commitment")}
    r = admin_client.form(f"/admin/steps/{step.id}/delete")
    assert r.status_code == 303 and r.headers["location"] == f"/proposals/{proposal.id}#action-steps"
    with db.read() as s:
        assert s.get(ActionStep, step.id) is None
        assert s.scalar(select(func.count()).select_from(Commitment)) == 0
    told = [m for m in mail(db, "commitment") if m.id not in before]
    assert sorted(m.to_addr for m in told) == sorted(p.email for p in people)
    for m in told:
        assert m.subject == "Cancelled: River clean-up"
        if m.to_addr == people[2].email:
            assert m.attachments is None and "waiting list is gone" in m.text_body
            continue
        cal = Calendar.from_ical(m.attachments[0]["content"])
        event = cal.walk("VEVENT")[0]
        assert str(cal["METHOD"]) == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
        assert int(event["SEQUENCE"]) == 1  # above the confirmation's 0, so calendars apply it
    assert "told by email" in admin_client.get(r.headers["location"]).text


# --- campaigns ---------------------------------------------------------------------------------------------------

def test_a_campaign_for_a_group_from_draft_to_published(admin_client, member_client, client, db, admin, member):
    with db.begin() as s:
        g = make_group(s, name="Gardeners")
        gardeners = [make_member(s, groups=(g,), password="correct horse battery staple") for _ in range(3)]
        make_member(s, name="Not a gardener")
    page = soup(admin_client.get("/admin/campaigns/new"))
    radios = {i["value"]: i.parent.text.strip() for i in page.find_all("input", attrs={"name": "audience"})}
    assert radios == {"all": "Every member (6 members)", str(g.id): "The members of Gardeners (3 members)"}
    r = admin_client.form("/admin/campaigns/new", {"title": "Plant trees", "body": "We plant **forty** trees.",
                                                   "audience": str(g.id)})
    assert r.status_code == 303
    with db.read() as s:
        c = s.scalar(select(Campaign))
    assert (c.group_id, c.published, c.published_at) == (g.id, False, None)
    assert mail(db, "campaign_announcement") == []
    # A draft: admins only.
    assert member_client.get(f"/campaigns/{c.id}").status_code == 404
    assert admin_client.get(f"/campaigns/{c.id}").status_code == 200
    admin_client.form(f"/admin/campaigns/{c.id}/steps", VALID["shift"])
    client.sign_in(gardeners[0].email)
    assert client.get(f"/campaigns/{c.id}").status_code == 404
    assert "Plant trees" not in client.get("/campaigns").text
    # Published later: the group hears of it, through the outbox, once.
    r = admin_client.form(f"/admin/campaigns/{c.id}/publish")
    assert r.status_code == 303
    assert "3 announcement(s) queued" in admin_client.get(r.headers["location"]).text
    sent = mail(db, "campaign_announcement")
    assert sorted(m.to_addr for m in sent) == sorted(m.email for m in gardeners)
    first = sent[0]
    assert first.subject == "Can you help? Plant trees" and "River clean-up" in first.text_body
    assert f"http://testserver/campaigns/{c.id}" in first.text_body and "List-Unsubscribe" in first.headers
    assert "forty" in first.text_body and "/unsubscribe/" in first.text_body
    assert admin_client.form(f"/admin/campaigns/{c.id}/publish").status_code == 303  # already: refused, no mail
    assert len(mail(db, "campaign_announcement")) == 3
    # Only its audience sees it or signs up.
    with db.read() as s:
        step = s.scalar(select(ActionStep))
    assert member_client.get(f"/campaigns/{c.id}").status_code == 404
    assert "Plant trees" not in member_client.get("/campaigns").text
    assert member_client.form(f"/steps/{step.id}/commit", headers=HX).status_code == 404
    client.sign_in(gardeners[1].email)
    assert "Plant trees" in client.get("/campaigns").text
    page = client.get(f"/campaigns/{c.id}")
    assert page.status_code == 200 and "For the members of Gardeners" in page.text
    assert client.form(f"/steps/{step.id}/commit", headers=HX).status_code == 200
    with db.read() as s:
        assert list(s.scalars(select(Commitment.member_id))) == [gardeners[1].id]
        # The admin's view is recorded too, but the funnel counts the audience only.
        assert set(s.scalars(select(PageView.member_id).where(PageView.campaign_id == c.id))) == {
            admin.id, gardeners[1].id}
    # The funnel: everyone in the audience was sent it.
    r = admin_client.get(f"/admin/campaigns/{c.id}/funnel")
    cells = [td.contents[0].strip() for td in soup(r).find(id="funnel-table").tbody.tr.find_all("td")]
    assert cells == ["3", "3 (100%)", "1 (33%)", "1 (100%)", "0 (0%)"]
    assert "no “Voted or commented” stage" in r.text


def test_widening_a_published_campaign_tells_only_the_members_new_to_it(admin_client, db, admin, member):
    with db.begin() as s:
        g = make_group(s, name="Board")
        board = make_member(s, groups=(g,))
    r = admin_client.form("/admin/campaigns/new", {"title": "Count the ballots", "audience": str(g.id),
                                                   "publish": "1"})
    assert r.status_code == 303
    with db.read() as s:
        c = s.scalar(select(Campaign))
    assert c.published and [m.to_addr for m in mail(db, "campaign_announcement")] == [board.email]
    page = soup(admin_client.get(f"/admin/campaigns/{c.id}/edit"))
    assert page.find(id="f-title")["value"] == "Count the ballots"
    assert page.find("input", attrs={"name": "audience", "value": str(g.id)}).has_attr("checked")
    assert page.find("input", attrs={"name": "publish"}) is None  # published already
    r = admin_client.form(f"/admin/campaigns/{c.id}/edit", {"title": "Count the ballots, please",
                                                            "body": "Saturday", "audience": "all"})
    assert r.status_code == 303
    assert sorted(m.to_addr for m in mail(db, "campaign_announcement")) == sorted(
        [board.email, admin.email, member.email])
    with db.read() as s:
        assert s.get(Campaign, c.id).group_id is None and s.get(Campaign, c.id).title == "Count the ballots, please"


def test_campaign_announcements_follow_each_members_choices(admin_client, client, db, admin, member, settings):
    from app.mail.digest import build_digest

    with db.begin() as s:
        later = make_member(s, email="later@example.org")
        s.add(MailPreference(member_id=later.id, kind="announcement", mode="digest"))
        never = make_member(s, email="never@example.org")
        s.add(MailPreference(member_id=never.id, kind="announcement", mode="never"))
    admin_client.form("/admin/campaigns/new", {"title": "Paint the fence", "publish": "1"})
    sent = {m.to_addr: m for m in mail(db, "campaign_announcement")}
    assert sorted(sent) == [admin.email, member.email]
    # The member unsubscribes from announcements with the link in it: the next campaign skips them.
    link = re.search(r"<http://testserver(/unsubscribe/[^>]+)>", sent[member.email].headers["List-Unsubscribe"])
    assert client.post(link.group(1)).status_code == 200
    admin_client.form("/admin/campaigns/new", {"title": "Fix the roof", "publish": "1"})
    assert [m.to_addr for m in mail(db, "campaign_announcement") if "Fix the roof" in m.subject] == [admin.email]
    # The one who reads a digest gets both there, and the funnel counts them as sent.
    with db.read() as s:
        keys = sorted(s.scalars(select(DigestItem.key).where(DigestItem.member_id == later.id)))
        campaign_ids = sorted(s.scalars(select(Campaign.id)))
    assert keys == sorted(f"announcement:c{cid}" for cid in campaign_ids)
    with db.begin() as s:
        assert build_digest(s, settings, later.id, now=utcnow())
    [digest] = mail(db, "digest")
    assert digest.to_addr == later.email and "CAMPAIGNS: CAN YOU HELP?" in digest.text_body
    assert "Paint the fence" in digest.text_body and "Fix the roof" in digest.text_body
    r = admin_client.get(f"/admin/campaigns/{campaign_ids[0]}/funnel")
    sent_cell = soup(r).find(id="funnel-table").tbody.tr.find("td", attrs={"data-stage": "sent"})
    assert sent_cell.contents[0].strip() == "3 (75%)"  # admin, member, later; not the one who said never


def test_a_refused_campaign_form_keeps_what_was_typed(admin_client, member_client, db, campaign):
    before = state(db)
    for sent, field, words in [({"title": " ", "body": "Keep me"}, "title", "Give the campaign a title"),
                               ({"title": "x" * 201, "body": "Keep me"}, "title", "under 200"),
                               ({"title": "Trees", "body": "Keep me", "audience": "nobody"}, "audience",
                                "every member or one of the groups"),
                               ({"title": "Trees", "body": "Keep me", "audience": "99999"}, "audience",
                                "no longer exists"),
                               ({"title": "Trees", "body": "b" * 20_001}, "body", "under 20,000")]:
        for path in ("/admin/campaigns/new", f"/admin/campaigns/{campaign.id}/edit"):
            r = admin_client.form(path, sent)
            assert r.status_code == 400, (path, sent)
            page = soup(r)
            link = page.find(id="error-summary").find("a", href=f"#f-{field}")
            assert link is not None and words in link.text and page.find(id=f"f-{field}") is not None
            assert page.find(id="f-body").text == sent["body"]
    assert state(db) == before
    for path in ("/admin/campaigns/new", f"/admin/campaigns/{campaign.id}/edit"):
        assert member_client.get(path).status_code == 403
        assert member_client.form(path, {"title": "Mine"}).status_code == 403
    assert member_client.form(f"/admin/campaigns/{campaign.id}/publish").status_code == 403
    assert state(db) == before


def test_navigation_leads_to_campaigns_and_the_admin_pages(admin_client, member_client):
    nav = soup(member_client.get("/")).find("nav")
    hrefs = {a["href"] for a in nav.find_all("a")}
    assert "/campaigns" in hrefs and "/admin/participation" not in hrefs
    home = soup(admin_client.get("/"))
    assert "/admin/participation" in {a["href"] for a in home.find("nav").find_all("a")}
    admin_links = {a["href"] for a in home.find(attrs={"aria-labelledby": "admin-heading"}).find_all("a")}
    assert {"/admin/campaigns/new", "/admin/participation", "/campaigns"} <= admin_links


# --- the roster and messages ---------------------------------------------------------------------------------------

def test_the_roster_page_and_csv_are_for_admins(admin_client, member_client, db, settings, proposal):
    step, people = _shift_with_people(db, settings, proposal, capacity=1, waiting=1)
    assert member_client.get(f"/admin/steps/{step.id}/roster").status_code == 403
    assert member_client.get(f"/admin/steps/{step.id}/roster.csv").status_code == 403
    page = soup(admin_client.get(f"/admin/steps/{step.id}/roster"))
    rows = [[td.text for td in tr.find_all("td")[:2]] for tr in page.find(id="roster").tbody.find_all("tr")]
    assert rows == [[people[0].name, "committed"], [people[1].name, "waitlisted (#1)"]]
    r = admin_client.get(f"/admin/steps/{step.id}/roster.csv")
    assert [(row["email"], row["status"], row["waitlist_position"]) for row in csv.DictReader(io.StringIO(r.text))] \
        == [(people[0].email, "committed", ""), (people[1].email, "waitlisted", "1")]
    assert admin_client.get("/admin/steps/999999/roster").status_code == 404


def test_messaging_the_committed(admin_client, member_client, client, db, settings, proposal, member):
    step, people = _shift_with_people(db, settings, proposal, capacity=2, waiting=1)
    path = f"/admin/steps/{step.id}/message"
    before = state(db)
    assert member_client.form(path, {"subject": "Hi", "body": "Spam"}).status_code == 403
    r = admin_client.form(path, {"subject": "", "body": "Meet at the other bridge"})
    assert r.status_code == 400
    page = soup(r)
    assert "Write a subject" in page.find(id="message-errors").text
    assert page.find(id="f-body").text == "Meet at the other bridge"  # kept
    assert admin_client.form(path, {"subject": "Change", "body": " "}).status_code == 400
    assert state(db) == before
    r = admin_client.form(path, {"subject": "Change of place", "body": "Meet at the other bridge"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/steps/{step.id}/roster"
    assert "Message queued for 2 member(s)" in admin_client.get(r.headers["location"]).text
    sent = mail(db, "action_message")
    assert sorted(m.to_addr for m in sent) == sorted(p.email for p in people[:2])  # not the waiting one
    assert all("Meet at the other bridge" in m.text_body and m.status == "pending" for m in sent)
    # One of them unsubscribes with the message's own link; the next message skips them.
    link = re.search(r"<http://testserver(/unsubscribe/[^>]+)>", sent[0].headers["List-Unsubscribe"]).group(1)
    assert client.post(link).status_code == 200
    admin_client.form(path, {"subject": "Rain", "body": "Bring a coat"})
    assert [m.to_addr for m in mail(db, "action_message") if m.subject == "Rain"] == [
        p.email for p in people[:2] if p.email != sent[0].to_addr]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "step.message")) == 2


def test_members_are_refused_the_funnels_and_the_dashboard(member_client, admin_client, db, proposal, campaign):
    for path in (f"/admin/proposals/{proposal.id}/funnel", f"/admin/campaigns/{campaign.id}/funnel",
                 "/admin/participation"):
        assert member_client.get(path).status_code == 403
        assert admin_client.get(path).status_code == 200
    table = soup(admin_client.get("/admin/participation")).find(id="dashboard-table")
    assert len(table.tbody.find_all("tr")) == 12


# --- "opened": every page that shows the proposal records the first view ------------------------------------------

def test_the_vote_link_page_and_the_results_count_as_opened(client, member_client, db, settings, admin, member):
    from app.voting.links import vote_token
    from app.voting.services import close_proposal

    with db.begin() as s:
        other = make_member(s)
        p = make_proposal(s, state="open", created_by=admin.id)
    token = vote_token(settings, member_id=other.id, proposal_id=p.id, choice="yes", expires_at=p.closes_at)
    assert client.get(f"/vote/{token}").status_code == 200
    assert client.get(f"/vote/{token}").status_code == 200  # a second view writes nothing
    assert client.get("/vote/" + token[:-2] + "xx").status_code == 400  # a bad link records nothing
    r = client.form(f"/vote/{token}", {"choice": "yes"})
    assert r.status_code == 200
    with db.begin() as s:
        close_proposal(s, settings, p.id, actor_id=None)
    assert member_client.get(f"/proposals/{p.id}/results").status_code == 200
    with db.read() as s:
        views = dict(s.execute(select(PageView.member_id, PageView.via).where(PageView.proposal_id == p.id)).all())
    assert views == {other.id: "email", member.id: "web"}
    r = admin_client_get_funnel(db, settings, p.id)
    assert r["opened"] == "2" and r["engaged"] == "1"


def admin_client_get_funnel(db, settings, proposal_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from app.actions import funnel

    with db.read() as s:
        f = funnel.for_proposal(s, proposal_id)
    return {st.key: str(st.count) for st in f.overall.stages}
