"""Proposals through HTTP: the admin's form and every refusal, publishing, who sees what, history, outcome, XSS."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from bs4 import BeautifulSoup
from freezegun import freeze_time
from sqlalchemy import func, select

from app.db import utcnow
from app.members.models import AuditEvent, GroupMembership, Status
from app.proposals.models import Clarification, Option, Proposal, ProposalGroup, Revision
from app.voting import services as voting
from app.voting.models import Eligibility
from tests.factories import make_group, make_member, make_proposal

TZ = ZoneInfo("Europe/Berlin")  # the org fixture's time zone
HX = {"HX-Request": "true"}


def local(**delta: float) -> str:
    """A datetime-local value, `delta` from now, in the organization's zone."""
    return (utcnow() + dt.timedelta(**delta)).astimezone(TZ).strftime("%Y-%m-%dT%H:%M")


def form_data(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "kind": "question", "title": "Paint the hall green?", "summary": "The hall needs paint.",
        "body": "We have **two** quotes.", "method": "yes_no", "options": "", "rule": "majority",
        "custom_percent": "", "quorum": "", "max_picks": "", "max_score": "5", "ballot": "secret",
        "visibility": "after_close", "audience": "all", "opens": "now", "opens_at": "", "closes_at": local(days=3),
    }
    data.update(over)
    return data


def create(client, **over: object) -> int:  # type: ignore[no-untyped-def]
    r = client.form("/admin/proposals/new", form_data(**over))
    assert r.status_code == 303, r.text[:3000]
    return int(r.headers["location"].rsplit("/", 1)[1])


def count(db, model, *where) -> int:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def get(db, pid: int) -> Proposal:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return s.get(Proposal, pid)


def actions(db) -> list[str]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def soup(r) -> BeautifulSoup:  # type: ignore[no-untyped-def]
    return BeautifulSoup(r.text, "html.parser")


def options_of(db, pid: int) -> list[str]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return list(s.scalars(select(Option.label).where(Option.proposal_id == pid).order_by(Option.position)))


# --- creating ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["single", "multiple", "ranked", "score"])
def test_create_question_with_each_method(admin_client, db, method):
    pid = create(admin_client, method=method, options="Green\n\n  Blue  \nRed", max_picks="2", max_score="7",
                 allow_none="1")
    p = get(db, pid)
    assert (p.state, p.kind, p.method) == ("draft", "question", method)
    assert options_of(db, pid) == ["Green", "Blue", "Red"]
    assert p.allow_none == (method == "single")
    assert p.max_picks == (2 if method == "multiple" else None)
    assert p.max_score == (7 if method == "score" else 5)
    assert count(db, Revision, Revision.proposal_id == pid) == 1
    assert actions(db)[-1] == "proposal.create"
    page = admin_client.get(f"/proposals/{pid}")
    assert [li.text for li in soup(page).select("#options li")] == ["Green", "Blue", "Red"]


@pytest.mark.parametrize(("over", "expected"), [
    ({"rule": "majority"}, ("1/2", True, None)),
    ({"rule": "two_thirds", "quorum": "25"}, ("2/3", False, "1/4")),
    ({"rule": "custom", "custom_percent": "60", "quorum": "33.5"}, ("3/5", False, "67/200")),
    ({"rule": "custom", "custom_percent": "66.67%"}, ("6667/10000", False, None)),
])
def test_create_yes_no_with_each_rule(admin_client, db, over, expected):
    pid = create(admin_client, options="ignored\nfor yes/no", **over)
    p = get(db, pid)
    assert (p.method, p.threshold, p.threshold_strict, p.quorum) == ("yes_no", *expected)
    assert options_of(db, pid) == []


def test_create_policy_change_forces_yes_no_and_shows_both_texts_and_diff(admin_client, member_client, db):
    pid = create(admin_client, kind="policy", method="ranked", options="A\nB",
                 current_text="Rent is due on the first day.",
                 proposed_text="Rent is due on the fifth day of each month.")
    p = get(db, pid)
    assert (p.kind, p.method) == ("policy", "yes_no") and options_of(db, pid) == []
    page = soup(admin_client.get(f"/proposals/{pid}"))
    assert page.find(id="current-text").text == "Rent is due on the first day."
    assert page.find(id="proposed-text").text == "Rent is due on the fifth day of each month."
    diff = page.find(id="policy-diff")
    assert [d.text for d in diff.find_all("del")] == ["deleted: first"]
    assert [i.text for i in diff.find_all("ins")] == ["inserted: fifth", "inserted: of each month"]
    assert diff.find("ins").find(class_="visually-hidden")  # readable without colour


def test_secret_ballot_forces_results_after_close(admin_client, db):
    pid = create(admin_client, visibility="live", publish_choices="1")
    p = get(db, pid)
    assert (p.secret, p.visibility, p.publish_choices) == (True, "after_close", True)
    pid = create(admin_client, ballot="open", visibility="live")
    p = get(db, pid)
    assert (p.secret, p.visibility, p.publish_choices) == (False, "live", False)


def test_extra_fields_cannot_set_protected_columns(admin_client, db):
    pid = create(admin_client, state="open", eligible_count="999", created_by="42", ballots_counted="5",
                 public_id="mine", result='{"verdict": "Passed"}')
    p = get(db, pid)
    assert (p.state, p.eligible_count, p.ballots_counted, p.result) == ("draft", 0, 0, None)
    assert p.public_id != "mine" and p.created_by != 42


@pytest.mark.parametrize(("over", "field", "message"), [
    ({"title": ""}, "title", "Give the proposal a title"),
    ({"title": "x" * 201}, "title", "at most 200 characters"),
    ({"summary": "s" * 501}, "summary", "at most 500"),
    ({"title": "Bell\x07"}, "title", "not allowed"),
    ({"method": "single", "options": "A\nB\x01C"}, "options", "not allowed"),
    ({"method": "single", "options": "Only one"}, "options", "between 2 and 20"),
    ({"method": "multiple", "options": "\n".join(f"Option {i}" for i in range(25))}, "options", "there are 25"),
    ({"method": "single", "options": "A\n" + "b" * 201}, "options", "at most 200 characters"),
    ({"method": "single", "options": "Green\ngreen"}, "options", "listed twice"),
    ({"method": "single", "options": "A\n__none__"}, "options", "cannot be used"),
    ({"method": "multiple", "options": "A\nB", "max_picks": "3"}, "max_picks", "from 1 to the number"),
    ({"method": "score", "options": "A\nB", "max_score": "11"}, "max_score", "from 1 to 10"),
    ({"method": "plurality"}, "method", "Choose how members vote"),
    ({"kind": "referendum"}, "kind", "question or a policy change"),
    ({"kind": "policy", "proposed_text": ""}, "proposed_text", "Write the proposed text"),
    ({"closes_at": local(hours=-1)}, "closes_at", "must be in the future"),
    ({"closes_at": ""}, "closes_at", "Enter the deadline"),
    ({"closes_at": "next tuesday"}, "closes_at", "Enter a date and time"),
    ({"opens": "later", "opens_at": local(days=2), "closes_at": local(days=1)}, "closes_at",
     "after the opening time"),
    ({"opens": "later", "opens_at": ""}, "opens_at", "Enter when voting opens"),
    ({"opens": "later", "opens_at": local(hours=-2)}, "opens_at", "must be in the future"),
    ({"rule": "custom", "custom_percent": "150"}, "custom_percent", "at most 100"),
    ({"rule": "custom", "custom_percent": "abc"}, "custom_percent", "Enter a number"),
    ({"rule": "custom", "custom_percent": ""}, "custom_percent", "Enter a percentage"),
    ({"rule": "custom", "custom_percent": "50.123"}, "custom_percent", "two decimals"),
    ({"rule": "unanimity"}, "rule", "Choose a decision rule"),
    ({"quorum": "0"}, "quorum", "more than 0 and at most 100"),
    ({"quorum": "101"}, "quorum", "more than 0 and at most 100"),
    ({"quorum": "NaN"}, "quorum", "more than 0"),
    ({"ballot": "open", "visibility": "whenever"}, "visibility", "when members see the results"),
    ({"audience": "groups"}, "groups", "Choose at least one group"),
    ({"audience": "groups", "groups": "424242"}, "groups", "does not exist"),
    ({"audience": "groups", "groups": "x1"}, "groups", "does not exist"),
])
def test_invalid_form_is_shown_again_with_its_error_and_writes_nothing(admin_client, db, over, field, message):
    before = actions(db)
    r = admin_client.form("/admin/proposals/new", form_data(**over))
    assert r.status_code == 400, r.text[:2000]
    page = soup(r)
    error = page.find(id=f"e-{field}")
    assert error is not None and message in error.text, (field, error)
    described = page.find(attrs={"aria-describedby": lambda v: bool(v) and f"e-{field}" in v.split()})
    assert described is not None  # the message is tied to its field
    assert page.find(id="error-summary").find("a", href=f"#f-{field}")
    assert count(db, Proposal) == 0 and count(db, Revision) == 0 and actions(db) == before
    title = page.find(id="f-title")
    assert title["value"] == str(form_data(**over)["title"])[:800]  # the typed values come back


def test_skipped_daylight_saving_hour_is_refused(admin_client, db):
    march_31 = dt.date(utcnow().year + 1, 3, 31)
    last_sunday = march_31 - dt.timedelta(days=(march_31.weekday() + 1) % 7)  # clocks go 02:00 -> 03:00
    r = admin_client.form("/admin/proposals/new", form_data(closes_at=f"{last_sunday}T02:30"))
    assert r.status_code == 400 and "Enter a date and time in Europe/Berlin time" in soup(r).find(id="e-closes_at").text


def test_deadline_is_read_in_the_organizations_zone(admin_client, db):
    year = utcnow().year + 1
    pid = create(admin_client, closes_at=f"{year}-07-01T18:00")
    assert get(db, pid).closes_at == dt.datetime(year, 7, 1, 16, 0, tzinfo=dt.UTC)  # CEST is UTC+2
    assert "1 Jul " + str(year) + ", 18:00" in soup(admin_client.get(f"/proposals/{pid}")).find(id="deadline").text


def test_members_cannot_use_the_admin_pages(member_client, db, admin):
    with db.begin() as s:
        pid = make_proposal(s, created_by=admin.id).id
    assert member_client.get("/admin/proposals/new").status_code == 403
    assert member_client.form("/admin/proposals/new", form_data()).status_code == 403
    for path in ("edit", "publish", "close", "clarify", "outcome"):
        assert member_client.form(f"/admin/proposals/{pid}/{path}", {"when": "now", "reason": "x"}).status_code \
            == 403
    assert count(db, Proposal) == 1 and get(db, pid).state == "draft"


def test_unknown_ids_are_404(admin_client):
    assert admin_client.get("/proposals/9999").status_code == 404
    assert admin_client.get("/proposals/9999/history").status_code == 404
    assert admin_client.get("/admin/proposals/9999/edit").status_code == 404
    assert admin_client.form("/admin/proposals/9999/edit", form_data()).status_code == 404
    for path in ("publish", "close", "clarify", "outcome"):
        r = admin_client.form(f"/admin/proposals/9999/{path}", {"when": "now", "reason": "r", "clarification": "c",
                                                                 "outcome": "o"})
        assert r.status_code == 404, path


# --- editing -------------------------------------------------------------------------------------------------

def test_edit_a_draft_keeps_every_version(admin_client, member_client, db):
    pid = create(admin_client, method="single", options="Green\nBlue")
    page = soup(admin_client.get(f"/admin/proposals/{pid}/edit"))
    assert page.find(id="f-title")["value"] == "Paint the hall green?"
    assert page.find(id="f-options").text == "Green\nBlue"
    r = admin_client.form(f"/admin/proposals/{pid}/edit", form_data(
        title="Paint the hall blue?", method="single", options="Green\nBlue\nWhite", allow_none="1"))
    assert r.status_code == 303
    assert get(db, pid).title == "Paint the hall blue?" and options_of(db, pid) == ["Green", "Blue", "White"]
    assert count(db, Revision, Revision.proposal_id == pid) == 2
    assert actions(db)[-1] == "proposal.edit"
    # the same form again is not an edit
    admin_client.form(f"/admin/proposals/{pid}/edit", form_data(
        title="Paint the hall blue?", method="single", options="Green\nBlue\nWhite", allow_none="1"))
    assert count(db, Revision, Revision.proposal_id == pid) == 2
    # fewer options and a group audience
    with db.begin() as s:
        g = make_group(s, name="Tower B")
    admin_client.form(f"/admin/proposals/{pid}/edit", form_data(
        method="single", options="White\nGreen", audience="groups", groups=[str(g.id)]))
    assert options_of(db, pid) == ["White", "Green"]
    with db.read() as s:
        assert list(s.scalars(select(ProposalGroup.group_id).where(ProposalGroup.proposal_id == pid))) == [g.id]
    history = soup(admin_client.get(f"/proposals/{pid}/history"))
    versions = history.select("#versions > li")
    assert len(versions) == 3
    newest = versions[0].text
    assert "Options" in newest and "Audience" in newest and "Members of Tower B" in newest
    title_change = versions[1].find("th", string="Title").find_next("td")
    assert [d.text for d in title_change.find_all("del")] == ["deleted: green"]
    assert [i.text for i in title_change.find_all("ins")] == ["inserted: blue"]
    assert "The first version" in versions[2].text


def test_edit_invalid_changes_nothing(admin_client, db):
    pid = create(admin_client)
    r = admin_client.form(f"/admin/proposals/{pid}/edit", form_data(title="", quorum="101"))
    assert r.status_code == 400
    assert soup(r).find(id="e-title") and soup(r).find(id="e-quorum")
    assert get(db, pid).title == "Paint the hall green?" and count(db, Revision) == 1


def test_edit_refused_once_voting_opened(admin_client, db):
    pid = create(admin_client)
    assert admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"}).status_code == 303
    before = (count(db, Revision), actions(db))
    r = admin_client.get(f"/admin/proposals/{pid}/edit")
    assert r.status_code == 409 and "can no longer be edited" in r.text
    r = admin_client.form(f"/admin/proposals/{pid}/edit", form_data(title="Sneaky change"))
    assert r.status_code == 409 and "clarification" in r.text
    assert get(db, pid).title == "Paint the hall green?"
    assert (count(db, Revision), actions(db)) == before
    assert soup(admin_client.get(f"/proposals/{pid}")).find("a", string="Edit") is None


# --- publishing ----------------------------------------------------------------------------------------------

def test_publish_now_opens_with_the_audience_frozen(admin_client, member_client, db, admin, member):
    with db.begin() as s:
        make_member(s, status=Status.DEACTIVATED)
        make_member(s, status=Status.INVITED)
    pid = create(admin_client)
    page = soup(admin_client.get(f"/proposals/{pid}"))
    assert page.find(id="eligible").text == "3 eligible members"  # admin, Mia and the invited member
    r = admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    assert r.status_code == 303
    p = get(db, pid)
    assert p.state == "open" and p.opened_at is not None and p.eligible_count == 3
    assert count(db, Eligibility, Eligibility.proposal_id == pid) == 3
    assert "proposal.open" in actions(db)
    with db.begin() as s:
        make_member(s)  # joins later: can read, is not counted
    page = soup(member_client.get(f"/proposals/{pid}"))
    assert page.find(id="eligible").text == "3 eligible members"
    assert page.find(id="vote-panel") is not None
    assert "closes in 2 days" in page.find(id="deadline").text
    # publishing twice is refused
    r = admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    assert r.status_code == 409 and "Only a draft or scheduled proposal can open" in r.text


def test_publish_to_groups_counts_their_members(admin_client, db, admin):
    with db.begin() as s:
        a, b = make_group(s, name="Tower A"), make_group(s, name="Tower B")
        for _ in range(3):
            make_member(s, groups=(a,))
        make_member(s, groups=(a, b))
        make_member(s, groups=(b,), status=Status.DEACTIVATED)
        make_member(s)
    pid = create(admin_client, audience="groups", groups=[str(a.id), str(b.id)])
    assert soup(admin_client.get(f"/proposals/{pid}")).find(id="eligible").text == "4 eligible members"
    admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    assert get(db, pid).eligible_count == 4


def test_publish_refused_when_the_deadline_passed(admin_client, db):
    pid = create(admin_client, closes_at=local(minutes=30))
    with freeze_time(utcnow() + dt.timedelta(hours=1)):
        r = admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    assert r.status_code == 400 and "deadline must be in the future" in soup(r).find(class_="error-box").text
    assert get(db, pid).state == "draft"


def test_schedule_for_later(admin_client, member_client, db):
    pid = create(admin_client, opens="later", opens_at=local(days=1), closes_at=local(days=4))
    page = soup(admin_client.get(f"/proposals/{pid}"))
    assert page.find("button", attrs={"value": "later"})
    r = admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "later"})
    assert r.status_code == 303
    assert get(db, pid).state == "scheduled" and actions(db)[-1] == "proposal.schedule"
    listing = soup(member_client.get("/proposals"))
    item = listing.find(id="scheduled-h").find_parent("section").find(id=f"proposal-{pid}")
    assert "Opens on" in item.text and "in 23 hours" in item.text
    assert member_client.get(f"/proposals/{pid}").status_code == 200
    # still editable, and it stays scheduled
    r = admin_client.form(f"/admin/proposals/{pid}/edit", form_data(
        title="New title", opens="later", opens_at=local(days=2), closes_at=local(days=4)))
    assert r.status_code == 303 and get(db, pid).state == "scheduled"
    r = admin_client.form(f"/admin/proposals/{pid}/edit", form_data(opens="now"))
    assert r.status_code == 400 and "needs an opening time" in r.text
    assert admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "later"}).status_code == 409


def test_schedule_needs_an_opening_time(admin_client, db):
    pid = create(admin_client)
    r = admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "later"})
    assert r.status_code == 400 and "Set an opening time first" in r.text
    r = admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "tomorrow"})
    assert r.status_code == 400
    assert get(db, pid).state == "draft"


# --- who sees what -------------------------------------------------------------------------------------------

def test_drafts_are_not_found_for_members(admin_client, member_client, db):
    pid = create(admin_client, title="Secret plan")
    assert member_client.get(f"/proposals/{pid}").status_code == 404
    assert member_client.get(f"/proposals/{pid}/history").status_code == 404
    assert "Secret plan" not in member_client.get("/proposals").text
    assert "Secret plan" not in member_client.get("/proposals?state=draft").text
    assert "Secret plan" not in member_client.get("/").text
    assert admin_client.get(f"/proposals/{pid}").status_code == 200
    drafts = soup(admin_client.get("/proposals")).find(id="drafts-h").find_parent("section")
    assert drafts.find(id=f"proposal-{pid}")


def test_audience_outside_the_groups_sees_nothing(admin_client, member_client, db, member):
    with db.begin() as s:
        tower = make_group(s, name="Tower A")
        insider = make_member(s, email="in@example.org", groups=(tower,))
    pid = create(admin_client, title="Tower A only", audience="groups", groups=[str(tower.id)])
    admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    assert member_client.get(f"/proposals/{pid}").status_code == 404
    assert member_client.get(f"/proposals/{pid}/history").status_code == 404
    assert "Tower A only" not in member_client.get("/proposals").text
    assert "Tower A only" not in member_client.get(f"/proposals?group={tower.id}").text
    with db.read() as s:
        from app.middleware import CurrentMember
        from app.proposals.services import can_see

        p = s.get(Proposal, pid)
        assert can_see(s, CurrentMember(insider.id, "In", insider.email, "member", 0), p)
        assert not can_see(s, CurrentMember(member.id, "Mia", member.email, "member", 0), p)
    # a member who leaves the group after voting opened still sees what they were eligible for
    with db.begin() as s:
        s.query(GroupMembership).filter_by(member_id=insider.id).delete()
        s.flush()
        assert can_see(s, CurrentMember(insider.id, "In", insider.email, "member", 0), s.get(Proposal, pid))


# --- clarifications, closing, outcome ------------------------------------------------------------------------

def test_clarifications_only_while_open(admin_client, member_client, db, settings):
    pid = create(admin_client)
    r = admin_client.form(f"/admin/proposals/{pid}/clarify", {"clarification": "Too early"})
    assert r.status_code == 409 and "Edit the proposal instead" in r.text
    admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    r = admin_client.form(f"/admin/proposals/{pid}/clarify", {"clarification": "  "})
    assert r.status_code == 400 and soup(r).find(id="e-clarification")
    r = admin_client.form(f"/admin/proposals/{pid}/clarify", {"clarification": "The quote **includes** labour."})
    assert r.status_code == 303 and actions(db)[-1] == "proposal.clarify"
    note = soup(member_client.get(f"/proposals/{pid}")).select_one("#clarifications .clarification")
    assert note.find("strong").text == "includes" and "Added" in note.text
    with db.begin() as s:
        voting.close_proposal(s, settings, pid, actor_id=None)
    r = admin_client.form(f"/admin/proposals/{pid}/clarify", {"clarification": "Too late"})
    assert r.status_code == 409 and "Voting has closed" in r.text
    assert count(db, Clarification) == 1


def test_close_early_needs_a_reason(admin_client, member_client, db):
    pid = create(admin_client)
    r = admin_client.form(f"/admin/proposals/{pid}/close", {"reason": "Wrong audience"})
    assert r.status_code == 409 and get(db, pid).state == "draft"
    admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    r = admin_client.form(f"/admin/proposals/{pid}/close", {"reason": "   "})
    assert r.status_code == 400 and "Say why" in soup(r).find(id="e-reason").text
    assert get(db, pid).state == "open"
    r = admin_client.form(f"/admin/proposals/{pid}/close", {"reason": "The hall is being sold."})
    assert r.status_code == 303
    p = get(db, pid)
    assert p.state == "closed" and p.close_reason == "The hall is being sold." and p.result is not None
    assert actions(db).count("proposal.close_early") == 1  # audited once, by the voting service
    page = soup(member_client.get(f"/proposals/{pid}"))
    assert "The hall is being sold." in page.find(id="facts").text
    assert page.find("a", href=f"/proposals/{pid}/results")


def test_outcome_only_after_close_and_shown_above_the_result(admin_client, member_client, db):
    pid = create(admin_client)
    r = admin_client.form(f"/admin/proposals/{pid}/outcome", {"outcome": "We paint."})
    assert r.status_code == 409
    admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    assert admin_client.form(f"/admin/proposals/{pid}/outcome", {"outcome": "We paint."}).status_code == 409
    admin_client.form(f"/admin/proposals/{pid}/close", {"reason": "Enough votes"})
    r = admin_client.form(f"/admin/proposals/{pid}/outcome", {"outcome": ""})
    assert r.status_code == 400 and soup(r).find(id="e-outcome")
    r = admin_client.form(f"/admin/proposals/{pid}/outcome", {"outcome": "We paint it **green** in May."})
    assert r.status_code == 303
    r = admin_client.form(f"/admin/proposals/{pid}/outcome", {"outcome": "We paint it green in June."})
    assert r.status_code == 303
    assert actions(db).count("proposal.outcome") == 2
    page = soup(member_client.get(f"/proposals/{pid}"))
    outcome, panel = page.find(id="outcome"), page.find(id="vote-panel")
    assert "green in June" in outcome.text
    assert panel is not None and outcome.find_all_next(id="vote-panel")  # outcome comes first
    home = soup(member_client.get("/"))
    assert home.find(id="home-results").find(id=f"proposal-{pid}")


# --- history -------------------------------------------------------------------------------------------------

def test_members_read_the_history_of_published_proposals(admin_client, member_client, db):
    pid = create(admin_client, summary="First summary")
    admin_client.form(f"/admin/proposals/{pid}/edit", form_data(summary="Second summary", quorum="20"))
    admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    page = soup(member_client.get(f"/proposals/{pid}/history"))
    versions = page.select("#versions > li")
    assert len(versions) == 2
    rows = {th.text: th.find_next("td").text for th in versions[0].select("th[scope=row]")}
    assert "deleted: First" in rows["Summary"] and "inserted: Second" in rows["Summary"]
    assert "No quorum" in rows["Quorum"] and "at least 20%" in rows["Quorum"]
    assert "by Ada Admin" in versions[0].text
    assert soup(member_client.get(f"/proposals/{pid}")).find(id="history-link")


# --- the list and the home page ------------------------------------------------------------------------------

def test_list_orders_sections_and_shows_badges(admin_client, member_client, db, settings, member, admin):
    with db.begin() as s:
        voted = make_proposal(s, title="Voted one", state="open", created_by=admin.id)
        pending = make_proposal(s, title="Pending one", state="open", closes_in=dt.timedelta(days=1))
        make_proposal(s, title="Later one", state="scheduled", opens_at=utcnow() + dt.timedelta(days=1))
        done = make_proposal(s, title="Done one", state="open")
        make_proposal(s, title="Draft one")
    with db.begin() as s:
        voting.cast_ballot(s, settings, proposal_id=voted.id, member_id=member.id, raw_choice="yes")
        voting.cast_ballot(s, settings, proposal_id=done.id, member_id=member.id, raw_choice="yes")
        voting.close_proposal(s, settings, done.id, actor_id=None)
    page = soup(member_client.get("/proposals"))
    headings = [h.text for h in page.select("#proposal-list h2")]
    assert headings == ["Open for voting", "Coming up", "Closed"]
    open_items = page.find(id="open-h").find_parent("section").select("li")
    assert [li.find("a").text for li in open_items] == ["Pending one", "Voted one"]  # nearest deadline first
    assert "You have not voted yet" in open_items[0].text and "You voted" in open_items[1].text
    closed = page.find(id="closed-h").find_parent("section")
    assert "Passed" in closed.text or "Rejected" in closed.text
    assert "Draft one" not in page.text
    home = soup(member_client.get("/"))
    assert [a.text for a in home.find(id="home-open").select("h3 a")] == ["Pending one", "Voted one"]
    assert "You have not voted yet" in home.find(id=f"proposal-{pending.id}").text
    assert home.find(id="home-results").find(id=f"proposal-{done.id}")


def test_list_filters_pages_and_htmx_fragment(admin_client, member_client, db, member):
    with db.begin() as s:
        tower = make_group(s, name="Tower A")
        s.add(GroupMembership(group_id=tower.id, member_id=member.id))
        for i in range(23):
            make_proposal(s, title=f"Open {i:02d}", state="open")
        make_proposal(s, title="Tower vote", state="open", groups=(tower,))
        make_proposal(s, title="Scheduled vote", state="scheduled", opens_at=utcnow() + dt.timedelta(days=1))
    page = soup(member_client.get("/proposals"))
    assert "25 proposals" in page.find(id="proposal-list").text
    assert len(page.select("#proposal-list li")) == 20 and page.find("a", rel="next")
    page2 = soup(member_client.get("/proposals?page=2"))
    assert len(page2.select("#proposal-list li")) == 5 and "Scheduled vote" in page2.text
    only = soup(member_client.get("/proposals?state=scheduled"))
    assert [a.text for a in only.select("#proposal-list h3 a")] == ["Scheduled vote"]
    assert only.find("option", value="scheduled", selected=True)
    by_group = soup(member_client.get(f"/proposals?group={tower.id}"))
    assert [a.text for a in by_group.select("#proposal-list h3 a")] == ["Tower vote"]
    frag = member_client.get("/proposals?state=scheduled", headers=HX)
    assert "<html" not in frag.text and frag.text.strip().startswith('<div id="proposal-list">')
    assert "HX-Request" in frag.headers["vary"]
    for junk in ("?page=abc", "?state=<script>", "?group=x&page=-1", "?page=99999999999"):
        r = member_client.get("/proposals" + junk)
        assert r.status_code == 200 and "<script>" not in r.text.split("</head>")[1]


def test_home_keeps_the_empty_state(member_client):
    page = soup(member_client.get("/"))
    assert "Nothing to vote on right now" in page.find(id="home-open").text
    assert "will be listed here" in page.find(id="home-results").text


def test_relative_deadline(admin_client, db):
    now = utcnow().replace(second=0, microsecond=0)
    with freeze_time(now):
        pid = create(admin_client, closes_at=(now + dt.timedelta(days=2, hours=5)).astimezone(TZ)
                     .strftime("%Y-%m-%dT%H:%M"))
        assert "closes in 2 days" in soup(admin_client.get(f"/proposals/{pid}")).find(id="deadline").text
    with freeze_time(now + dt.timedelta(days=2)):
        assert "closes in 5 hours" in soup(admin_client.get(f"/proposals/{pid}")).find(id="deadline").text


# --- XSS through every field ---------------------------------------------------------------------------------

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def assert_no_active_content(html: str) -> None:
    page = BeautifulSoup(html, "html.parser")
    for script in page.find_all("script"):
        assert script.get("src", "").startswith("/static/") and not script.string, script
    for tag in page.find_all(True):
        for attr, value in tag.attrs.items():
            assert not attr.lower().startswith("on"), tag
            if attr in ("href", "src", "action"):
                assert not str(value).strip().lower().startswith(("javascript:", "data:", "vbscript:")), tag
    assert page.find("img") is None and page.find("iframe") is None
    ids = [tag["id"] for tag in page.find_all(id=True)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for label in page.find_all("label", attrs={"for": True}):
        assert page.find(id=label["for"]), label


def test_xss_in_every_field_is_escaped_or_sanitized(admin_client, member_client, db):
    body = (f"B {XSS}\n\n[click](javascript:alert(1)) [ok](https://example.org)\n\n"
            "<a href=\"jav&#x09;ascript:alert(1)\">a</a> ![i](x onerror=alert(1)) [t](jav&#x09;ascript:alert(1))")
    pid = create(admin_client, kind="question", method="single", title=f"T {XSS}"[:200], summary=f"S {XSS}",
                 body=body, options=f"O1 {XSS}\nO2 <svg onload=alert(1)>")
    admin_client.form(f"/admin/proposals/{pid}/edit", form_data(
        kind="question", method="single", title=f"T2 {XSS}"[:200], summary=f"S {XSS}", body=body + " edited",
        options=f"O1 {XSS}\nO3 \"><script>x</script>"))
    policy = create(admin_client, kind="policy", title="Policy <b>x</b>", current_text=f"old {XSS}",
                    proposed_text=f"new {XSS} <iframe src=javascript:alert(1)>")
    for p in (pid, policy):
        admin_client.form(f"/admin/proposals/{p}/publish", {"when": "now"})
    admin_client.form(f"/admin/proposals/{pid}/clarify", {"clarification": f"C {XSS} [x](javascript:alert(1))"})
    admin_client.form(f"/admin/proposals/{policy}/close", {"reason": f"R {XSS}"})
    admin_client.form(f"/admin/proposals/{policy}/outcome", {"outcome": f"Out {XSS} <svg onload=alert(1)>"})
    pages = ["/", "/proposals", f"/proposals/{pid}", f"/proposals/{pid}/history", f"/proposals/{policy}",
             f"/proposals/{policy}/history", "/proposals?state=closed"]
    for client in (admin_client, member_client):
        for path in pages:
            r = client.get(path)
            assert r.status_code == 200, path
            assert_no_active_content(r.text)
            assert "&lt;" in r.text, path  # shown as text, not dropped silently
        frag = client.get("/proposals", headers=HX)
        assert_no_active_content(frag.text)
    assert_no_active_content(admin_client.get(f"/admin/proposals/{create(admin_client, title=XSS[:200])}/edit").text)
    detail = soup(member_client.get(f"/proposals/{pid}"))
    assert detail.find("h1").text.startswith('T2 <script>alert("x")</script>')
    hrefs = [a["href"] for a in detail.select("#body a")]
    assert hrefs == ["https://example.org", "jav%09ascript:alert(1)"]  # the second is a harmless relative path
    assert all(a["rel"] == ["nofollow", "noopener"] for a in detail.select("#body a"))


def test_invalid_form_echo_is_escaped(admin_client):
    r = admin_client.form("/admin/proposals/new", form_data(title="", summary=XSS, body=XSS, options=XSS,
                                                            custom_percent=XSS, rule="custom"))
    assert r.status_code == 400
    assert_no_active_content(r.text)


def test_nul_characters_are_dropped_not_a_server_error(admin_client, db):
    pid = create(admin_client, title="Pa\x00int", body="b\x00ody", kind="policy", proposed_text="n\x00ew")
    p = get(db, pid)
    assert (p.title, p.body_md, p.proposed_text) == ("Paint", "body", "new")
    admin_client.form(f"/admin/proposals/{pid}/publish", {"when": "now"})
    assert admin_client.form(f"/admin/proposals/{pid}/clarify", {"clarification": "c\x00"}).status_code == 303
    assert admin_client.form(f"/admin/proposals/{pid}/close", {"reason": "r\x00"}).status_code == 303
    assert admin_client.form(f"/admin/proposals/{pid}/outcome", {"outcome": "o\x00"}).status_code == 303
    assert get(db, pid).outcome_md == "o"
