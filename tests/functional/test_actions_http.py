"""Action steps through HTTP: I'm in (page and fragment), refusals, withdraw, done, campaigns, roster CSV,
the funnel page, and two members racing for the last place."""

from __future__ import annotations

import datetime as dt
import threading

from bs4 import BeautifulSoup
from sqlalchemy import select

from app.actions import services
from app.actions.models import Campaign, Commitment
from app.actions.services import StepData
from app.db import utcnow
from app.mail.models import OutboxMessage
from tests.factories import make_member, make_proposal
from tests.live import post, sessions

HX = {"HX-Request": "true"}


def _setup(db, admin, capacity=1):  # type: ignore[no-untyped-def]
    with db.begin() as s:
        p = make_proposal(s, state="open", created_by=admin.id)
        start = utcnow().replace(microsecond=0) + dt.timedelta(days=2)
        step = services.create_step(s, StepData(kind="shift", title="River clean-up", starts_at=start,
                                                ends_at=start + dt.timedelta(hours=2), capacity=capacity),
                                    proposal_id=p.id)
        return p, step


def _mail(db, kind: str) -> list[OutboxMessage]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)))


def test_im_in_fragment_page_and_refusals(member_client, admin, db):
    p, step = _setup(db, admin)
    r = member_client.form(f"/steps/{step.id}/commit", headers=HX)
    assert r.status_code == 200
    soup = BeautifulSoup(r.text, "html.parser")
    assert soup.find(id=f"step-{step.id}") and "You're in" in soup.text
    assert "1 of 1 volunteers" in soup.text
    r = member_client.form(f"/steps/{step.id}/commit", headers=HX)
    assert r.status_code == 409 and "already signed up" in r.text
    page = member_client.get(f"/proposals/{p.id}")
    assert page.status_code == 200 and BeautifulSoup(page.text, "html.parser").find(id=f"step-{step.id}")
    with db.read() as s:
        c = s.scalar(select(Commitment))
    r = member_client.form(f"/commitments/{c.id}/done", {"note": "Done!"})
    assert r.status_code == 303 and r.headers["location"].endswith(f"#step-{step.id}")
    with db.read() as s:
        assert s.get(Commitment, c.id).status == "done"


def test_someone_elses_commitment_is_not_found(member_client, admin, db, settings):
    p, step = _setup(db, admin)
    with db.begin() as s:
        other = make_member(s)
        c = services.commit(s, settings, services_me(other), step.id)
    assert member_client.form(f"/commitments/{c.id}/done").status_code == 404
    assert member_client.form(f"/commitments/{c.id}/withdraw").status_code == 404
    with db.read() as s:
        assert s.get(Commitment, c.id).status == "committed"


def services_me(m):  # type: ignore[no-untyped-def]
    from app.middleware import CurrentMember

    return CurrentMember(id=m.id, name=m.name, email=m.email, role=m.role, session_id=0)


def test_campaign_roster_csv_and_funnel(admin_client, member_client, admin, db):
    with db.begin() as s:
        c = Campaign(title="Clean the river", published=True)
        s.add(c)
        s.flush()
        step = services.create_step(s, StepData(kind="pledge", title="Bags", goal=50, unit="bags"),
                                    campaign_id=c.id)
        evil = make_member(s, name="=HYPERLINK(1)")
    r = member_client.get(f"/campaigns/{c.id}")
    assert r.status_code == 200 and BeautifulSoup(r.text, "html.parser").find(id=f"step-{step.id}")
    r = member_client.form(f"/steps/{step.id}/commit", {"quantity": "-2"})
    assert r.status_code == 303
    r = member_client.form(f"/steps/{step.id}/commit", {"quantity": "3"}, headers=HX)
    assert "3 of 50 bags" in r.text
    with db.begin() as s:
        s.add(Commitment(step_id=step.id, member_id=evil.id, quantity=1))
    csv_text = admin_client.get(f"/admin/steps/{step.id}/roster.csv").text
    assert "'=HYPERLINK(1)" in csv_text and "Mia Member" in csv_text
    assert member_client.get(f"/admin/steps/{step.id}/roster.csv").status_code == 403
    r = admin_client.get(f"/admin/campaigns/{c.id}/funnel")
    assert r.status_code == 200 and BeautifulSoup(r.text, "html.parser").find(id="funnel-table")
    assert admin_client.get("/admin/participation").status_code == 200


# --- racing for the last place, with real concurrent requests ------------------------------------------------

def _race(port: int, path: str, tokens: list[str], body: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """Every token POSTs `path` at the same moment (one thread each, released by one barrier)."""
    barrier = threading.Barrier(len(tokens))
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def run(token: str) -> None:
        outcome = post(port, path, token, body or {}, barrier)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == len(tokens)
    return results


def _statuses(db, step_id: int) -> dict[int, tuple[str, int]]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return {c.member_id: (c.status, c.position) for c in s.scalars(
            select(Commitment).where(Commitment.step_id == step_id))}


def test_racing_for_the_last_place_on_a_shift(live_server, db, settings, admin):
    p, step = _setup(db, admin, capacity=3)
    with db.begin() as s:
        for _ in range(2):  # two of the three places are taken already
            services.commit(s, settings, services_me(make_member(s)), step.id)
    racers = sessions(db, settings, 6)
    results = _race(live_server, f"/steps/{step.id}/commit", [t for _, t in racers])
    assert [status for status, _ in results] == [200] * 6, results
    assert sum("You're in." in text for _, text in results) == 1
    assert sum("on the waiting list" in text for _, text in results) == 5
    rows = _statuses(db, step.id)
    mine = [rows[mid] for mid, _ in racers]
    assert sorted(st for st, _ in mine) == ["committed"] + ["waitlisted"] * 5
    assert sorted(pos for st, pos in mine if st == "waitlisted") == [1, 2, 3, 4, 5]
    with db.read() as s:
        assert services.progress(s, [step.id])[step.id].committed == 3


def test_racing_for_a_task_limited_to_two(live_server, db, settings, admin):
    with db.begin() as s:
        p = make_proposal(s, state="open", created_by=admin.id)
        task = services.create_step(s, StepData(kind="task", title="Print flyers", capacity=2), proposal_id=p.id)
    racers = sessions(db, settings, 6)
    results = _race(live_server, f"/steps/{task.id}/commit", [t for _, t in racers])
    assert sorted(status for status, _ in results) == [200, 200, 409, 409, 409, 409], results
    refused = [text for status, text in results if status == 409]
    assert all("This is full: all 2 places are taken." in text for text in refused)
    rows = _statuses(db, task.id)
    assert sorted(st for st, _ in rows.values()) == ["committed", "committed"]  # no row for the refused
    with db.read() as s:
        assert services.progress(s, [task.id])[task.id].committed == 2
    assert len(_mail(db, "commitment")) == 2  # a confirmation to each of the two, nothing to the refused


def test_one_member_twice_at_once_gets_one_place(live_server, db, settings, admin):
    p, step = _setup(db, admin, capacity=5)
    [(mid, token)] = sessions(db, settings, 1)
    results = _race(live_server, f"/steps/{step.id}/commit", [token] * 4)
    assert sorted(status for status, _ in results) == [200, 409, 409, 409], results
    assert all("already signed up" in text for status, text in results if status == 409)
    assert _statuses(db, step.id) == {mid: ("committed", 0)}


# --- refusals and the waiting list through HTTP; each leaves everything as it was --------------------------------

def _snapshot(db) -> tuple[list[tuple[int, int, str, int | None, int]], int]:  # type: ignore[no-untyped-def]
    """Every commitment (step, member, status, quantity, position) and how many messages are queued."""
    with db.read() as s:
        rows = [(c.step_id, c.member_id, c.status, c.quantity, c.position)
                for c in s.scalars(select(Commitment).order_by(Commitment.id))]
        return rows, len(list(s.scalars(select(OutboxMessage.id))))


def test_withdrawing_moves_the_first_waiting_member_in_and_emails_them(member_client, admin, db, settings):
    p, step = _setup(db, admin, capacity=1)
    assert member_client.form(f"/steps/{step.id}/commit", headers=HX).status_code == 200
    with db.begin() as s:
        first, second = make_member(s, email="first@example.org"), make_member(s, email="second@example.org")
        services.commit(s, settings, services_me(first), step.id)
        services.commit(s, settings, services_me(second), step.id)
        mine = s.scalar(select(Commitment).where(Commitment.member_id == member_client.member.id))
    r = member_client.form(f"/commitments/{mine.id}/withdraw", headers=HX)
    assert r.status_code == 200 and "You're in." not in r.text and "1 of 1 volunteers" in r.text
    rows = _statuses(db, step.id)
    assert rows[member_client.member.id][0] == "withdrawn"
    assert rows[first.id] == ("committed", 0) and rows[second.id][0] == "waitlisted"
    [moved_in] = [m for m in _mail(db, "commitment") if m.to_addr == "first@example.org"
                  and "A place opened up" in m.subject]
    assert moved_in.attachments and moved_in.attachments[0]["method"] == "REQUEST"
    assert not [m for m in _mail(db, "commitment") if m.to_addr == "second@example.org"
                and "A place opened up" in m.subject]


def test_withdrawing_after_the_shift_started_is_refused(member_client, admin, db):
    from app.actions.models import ActionStep

    p, step = _setup(db, admin)
    member_client.form(f"/steps/{step.id}/commit", headers=HX)
    with db.begin() as s:
        s.get(ActionStep, step.id).starts_at = utcnow() - dt.timedelta(minutes=1)
        cid = s.scalar(select(Commitment.id))
    before = _snapshot(db)
    r = member_client.form(f"/commitments/{cid}/withdraw", headers=HX)
    assert r.status_code == 409 and "already started" in r.text
    assert member_client.form(f"/commitments/{cid}/withdraw").status_code == 303  # the page, with the message
    assert _snapshot(db) == before


def test_marking_someone_elses_commitment_done_is_refused(member_client, admin, db, settings):
    p, step = _setup(db, admin)
    with db.begin() as s:
        c = services.commit(s, settings, services_me(make_member(s)), step.id)
    before = _snapshot(db)
    assert member_client.form(f"/commitments/{c.id}/done", {"note": "not mine"}, headers=HX).status_code == 404
    assert member_client.form(f"/commitments/{c.id}/done").status_code == 404
    assert member_client.form("/commitments/999999/done").status_code == 404
    assert _snapshot(db) == before


def test_absurd_pledges_are_refused(member_client, admin, db):
    with db.begin() as s:
        p = make_proposal(s, state="open", created_by=admin.id)
        pledge = services.create_step(s, StepData(kind="pledge", title="Bags", goal=50, unit="bags"),
                                      proposal_id=p.id)
    before = _snapshot(db)
    for raw in ("-2", "0", "000", "abc", "1e9", "2.5", "1000001", "9" * 40, " 3 4", "²", "٣"):
        r = member_client.form(f"/steps/{pledge.id}/commit", {"quantity": raw}, headers=HX)
        assert r.status_code == 400 and "whole number" in r.text, (raw, r.text)
        assert BeautifulSoup(r.text, "html.parser").find(role="alert")
    r = member_client.form(f"/steps/{pledge.id}/commit", {"quantity": "1000001"})  # without htmx: the page says why
    assert r.status_code == 303 and "whole number" in member_client.get(r.headers["location"]).text
    assert _snapshot(db) == before
    with db.read() as s:
        assert services.progress(s, [pledge.id])[pledge.id].pledged == 0


def test_a_pledge_quantity_is_optional(member_client, admin, db):
    with db.begin() as s:
        p = make_proposal(s, state="open", created_by=admin.id)
        pledge = services.create_step(s, StepData(kind="pledge", title="Bags", goal=50, unit="bags"),
                                      proposal_id=p.id)
        services.commit(s, web_settings(member_client), services_me(make_member(s)), pledge.id, quantity="1000000")
    form = BeautifulSoup(member_client.get(f"/proposals/{p.id}").text, "html.parser").find(id=f"step-{pledge.id}")
    field = form.find("input", attrs={"name": "quantity"})
    assert not field.has_attr("required") and form.find("label", attrs={"for": field["id"]})
    r = member_client.form(f"/steps/{pledge.id}/commit", {"quantity": ""}, headers=HX)
    assert r.status_code == 200 and "You're in." in r.text
    assert "1000000 of 50 bags" in r.text and "2 members pledged" in r.text
    bar = BeautifulSoup(r.text, "html.parser").find("progress")
    assert (bar["value"], bar["max"]) == ("50", "50")  # the bar stops at the goal
    with db.read() as s:
        mine = s.scalar(select(Commitment).where(Commitment.member_id == member_client.member.id))
        assert mine.quantity is None and services.progress(s, [pledge.id])[pledge.id].pledged == 1_000_000


def web_settings(client):  # type: ignore[no-untyped-def]
    return client.app.state.settings


def test_committing_twice_is_refused(member_client, admin, db):
    p, step = _setup(db, admin, capacity=3)
    assert member_client.form(f"/steps/{step.id}/commit", headers=HX).status_code == 200
    before = _snapshot(db)
    r = member_client.form(f"/steps/{step.id}/commit", headers=HX)
    assert r.status_code == 409 and "already signed up" in r.text
    r = member_client.form(f"/steps/{step.id}/commit")
    assert r.status_code == 303
    assert _snapshot(db) == before


def test_a_member_who_cannot_see_the_proposal_cannot_commit(member_client, admin, db):
    from tests.factories import make_group

    with db.begin() as s:
        g = make_group(s)
        p = make_proposal(s, state="open", groups=(g,), created_by=admin.id)
        step = services.create_step(s, StepData(kind="task", title="Help"), proposal_id=p.id)
    before = _snapshot(db)
    assert member_client.form(f"/steps/{step.id}/commit", headers=HX).status_code == 404
    assert member_client.form(f"/steps/{step.id}/commit").status_code == 404
    assert member_client.form("/steps/999999/commit").status_code == 404
    assert _snapshot(db) == before


def test_roster_csv_is_for_admins_and_escapes_formulas(admin_client, member_client, admin, db, settings):
    import csv
    import io

    p, step = _setup(db, admin, capacity=6)
    with db.begin() as s:
        for name in ("=cmd|' /C calc'!A0", "+SUM(1)", "-2+3", "@A1", "Plain Name"):
            services.commit(s, settings, services_me(make_member(s, name=name)), step.id)
        noter = make_member(s, name="Noter")
        c = services.commit(s, settings, services_me(noter), step.id)
        services.mark_done(s, services_me(noter), c.id, note='=HYPERLINK("http://x")')
    before = _snapshot(db)
    assert member_client.get(f"/admin/steps/{step.id}/roster.csv").status_code == 403
    assert member_client.get(f"/admin/steps/{step.id}/roster").status_code == 403
    r = admin_client.get(f"/admin/steps/{step.id}/roster.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 6
    for row in rows:
        for value in row.values():
            assert value[:1] not in ("=", "+", "-", "@"), row
    names = {row["name"] for row in rows}
    assert {"'=cmd|' /C calc'!A0", "'+SUM(1)", "'-2+3", "'@A1", "Plain Name"} <= names
    assert [row["note"] for row in rows if row["name"] == "Noter"] == ["'=HYPERLINK(\"http://x\")"]
    assert _snapshot(db) == before


def test_home_lists_your_commitments(member_client, admin, db, settings):
    p, step = _setup(db, admin, capacity=1)
    with db.begin() as s:
        c = Campaign(title="Clean the river", published=True)
        s.add(c)
        s.flush()
        later = services.create_step(s, StepData(kind="pledge", title="Bags", goal=50, unit="bags"),
                                     campaign_id=c.id)
        full = services.create_step(s, StepData(kind="shift", title="Late shift", capacity=1,
                                                starts_at=step.starts_at + dt.timedelta(days=1),
                                                ends_at=step.ends_at + dt.timedelta(days=1)), proposal_id=p.id)
        services.commit(s, settings, services_me(make_member(s)), full.id)
    soup = BeautifulSoup(member_client.get("/").text, "html.parser")
    assert soup.find(id="home-commitments") is None  # nothing yet, no empty section
    member_client.form(f"/steps/{step.id}/commit")
    member_client.form(f"/steps/{later.id}/commit", {"quantity": "4"})
    member_client.form(f"/steps/{full.id}/commit")
    section = BeautifulSoup(member_client.get("/").text, "html.parser").find(id="home-commitments")
    items = section.find_all("li")
    assert [li.a.text for li in items] == ["River clean-up", "Late shift", "Bags"]  # soonest shift first
    assert items[0].a["href"] == f"/proposals/{p.id}#step-{step.id}"
    assert items[2].a["href"] == f"/campaigns/{c.id}#step-{later.id}" and "4 bags" in items[2].text
    assert "waiting list" in items[1].text and "waiting list" not in items[0].text
    with db.read() as s:
        mine = s.scalar(select(Commitment).where(Commitment.step_id == step.id))
    member_client.form(f"/commitments/{mine.id}/done")
    items = BeautifulSoup(member_client.get("/").text, "html.parser").find(id="home-commitments").find_all("li")
    assert [li.a.text for li in items] == ["Late shift", "Bags"]  # done: no longer listed


def test_the_results_page_shows_the_steps(member_client, admin, db, settings):
    from app.voting.services import close_proposal

    p, step = _setup(db, admin)
    with db.begin() as s:
        close_proposal(s, settings, p.id, actor_id=None)
    soup = BeautifulSoup(member_client.get(f"/proposals/{p.id}/results").text, "html.parser")
    assert soup.find(id="action-steps") and soup.find(id=f"step-{step.id}")
    r = member_client.form(f"/steps/{step.id}/commit", headers=HX)
    assert r.status_code == 200 and "You're in." in r.text
