"""Casting, changing and counting ballots through HTTP; refusals; closing; results; downloads; receipts."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from bs4 import BeautifulSoup
from freezegun import freeze_time
from sqlalchemy import func, select

from app.db import utcnow
from app.mail.models import OutboxMessage
from app.proposals.models import Option, Proposal
from app.voting import services
from app.voting.models import Ballot, CountedBallot, Participation
from tests.conftest import Client
from tests.factories import make_group, make_member, make_proposal

HX = {"HX-Request": "true"}


def vote(client: Client, pid: int, data: dict, htmx: bool = True):
    return client.form(f"/proposals/{pid}/vote", data, headers=HX if htmx else {})


def option_ids(db, pid: int) -> list[int]:
    with db.read() as s:
        return list(s.scalars(select(Option.id).where(Option.proposal_id == pid).order_by(Option.position)))


def close(db, settings, pid: int, **kw) -> Proposal:
    with db.begin() as s:
        services.close_proposal(s, settings, pid, actor_id=None, **kw)
    with db.read() as s:
        return s.get(Proposal, pid)


def counts(db, model, pid) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(model.proposal_id == pid))


@pytest.fixture
def open_yes_no(db, member, admin):
    with db.begin() as s:
        return make_proposal(s, state="open", created_by=admin.id)


def test_yes_no_vote_change_and_receipt(member_client, db, settings, open_yes_no):
    pid = open_yes_no.id
    r = vote(member_client, pid, {"choice": "yes"})
    assert r.status_code == 200
    soup = BeautifulSoup(r.text, "html.parser")
    assert soup.find(id="vote-panel")
    first_receipt = soup.select_one(".receipt-code code").text
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", first_receipt)
    assert "You voted: Yes" in soup.text
    r = vote(member_client, pid, {"choice": "no"})
    assert "You voted: No" in BeautifulSoup(r.text, "html.parser").text
    second_receipt = BeautifulSoup(r.text, "html.parser").select_one(".receipt-code code").text
    assert second_receipt != first_receipt
    assert counts(db, Ballot, pid) == 1 and counts(db, Participation, pid) == 1
    with db.read() as s:
        assert s.scalar(select(Ballot.voter_id)) is None  # secret: no member id on the ballot
    p = close(db, settings, pid)
    assert p.result["verdict"].startswith("Rejected")
    with db.read() as s:
        assert services.ballot_key(s, pid) is None
        assert services.check_receipt(s, p, second_receipt)[0] is True
        assert services.check_receipt(s, p, first_receipt)[0] is False


def test_plain_form_vote_redirects_and_shows_receipt_once(member_client, open_yes_no):
    pid = open_yes_no.id
    r = vote(member_client, pid, {"choice": "abstain"}, htmx=False)
    assert r.status_code == 303 and r.headers["location"] == f"/proposals/{pid}#vote-panel"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("plenary_receipt="))
    assert "HttpOnly" in cookie and f"Path=/proposals/{pid}" in cookie


def test_refusals_change_nothing(member_client, db, settings, member, admin):
    with db.begin() as s:
        board = make_group(s, name="Board")
        other = make_proposal(s, state="open", groups=(board,))
        ranked = make_proposal(s, method="ranked", options=("A", "B", "C"), state="open")
        multi = make_proposal(s, method="multiple", options=("A", "B", "C"), max_picks=2, state="open")
        single = make_proposal(s, method="single", options=("A", "B"), state="open")
        scheduled = make_proposal(s, state="scheduled")
        draft = make_proposal(s)
    a, b, c = option_ids(db, ranked.id)
    ma, mb, mc = option_ids(db, multi.id)
    cases = [
        (other.id, {"choice": "yes"}, (403, 404)),  # not in the audience
        (ranked.id, {f"rank-{a}": "1", f"rank-{b}": "1"}, (400,)),  # duplicate ranks
        (ranked.id, {f"rank-{a}": "9"}, (400,)),
        (ranked.id, {}, (400,)),
        (multi.id, {"choice": [str(ma), str(mb), str(mc)]}, (400,)),  # too many picks
        (multi.id, {"choice": ["999999"]}, (400,)),  # unknown option
        (single.id, {"choice": str(ma)}, (400,)),  # another proposal's option
        (single.id, {"choice": "none"}, (400,)),  # no "none of these" here
        (open_id := single.id, {"choice": ""}, (400,)),
        (scheduled.id, {"choice": "yes"}, (409,)),
        (draft.id, {"choice": "yes"}, (404,)),
        (424242, {"choice": "yes"}, (404,)),
    ]
    for pid, data, statuses in cases:
        r = vote(member_client, pid, data)
        assert r.status_code in statuses, (pid, data, r.status_code, r.text[:300])
    assert open_id
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ballot)) == 0
        assert s.scalar(select(func.count()).select_from(Participation)) == 0


def test_vote_after_deadline_refused(member_client, db, open_yes_no):
    with freeze_time(utcnow() + dt.timedelta(days=4)):
        r = vote(member_client, open_yes_no.id, {"choice": "yes"})
    assert r.status_code == 409 and "closed" in r.text
    assert counts(db, Ballot, open_yes_no.id) == 0


def test_vote_without_csrf_refused(member_client, open_yes_no, db):
    r = member_client.post(f"/proposals/{open_yes_no.id}/vote", data={"choice": "yes"})
    assert r.status_code == 403
    assert counts(db, Ballot, open_yes_no.id) == 0


def test_eligibility_frozen_at_open(app, db, settings, admin, open_yes_no):
    with db.begin() as s:
        late = make_member(s, email="late@example.org", password="correct horse battery staple")
    with Client(app, base_url="http://testserver") as c:
        c.sign_in(late.email)
        r = vote(c, open_yes_no.id, {"choice": "yes"})
    assert r.status_code == 403 and "not eligible" in r.text


def test_secret_ballot_shows_no_tally_before_close(member_client, app, db, settings, open_yes_no, admin):
    pid = open_yes_no.id
    vote(member_client, pid, {"choice": "yes"})
    with Client(app, base_url="http://testserver") as ac:
        ac.sign_in(admin.email)
        for c in (member_client, ac):
            page = c.get(f"/proposals/{pid}/results")
            assert page.status_code == 200 and "Results are published when voting closes" in page.text
            assert "Tally so far" not in page.text
            assert c.get(f"/proposals/{pid}/results.json").status_code == 404
            assert c.get(f"/proposals/{pid}/results.csv").status_code == 404
            panel = vote(c, pid, {"choice": "no"})
            assert "Tally so far" not in panel.text and "no tally is shown" in panel.text


def test_live_tally_for_open_ballot(member_client, db, member):
    with db.begin() as s:
        p = make_proposal(s, secret=False, visibility="after_vote", state="open")
    panel = vote(member_client, p.id, {"choice": "yes"})
    assert "Tally so far" in panel.text
    soup = BeautifulSoup(panel.text, "html.parser")
    yes_row = [tr for tr in soup.select("tbody tr") if tr.th and tr.th.text == "Yes"][0]
    assert yes_row.find_all("td")[0].text == "1"


def _members(db, n: int, groups=()) -> list:
    with db.begin() as s:
        return [make_member(s, email=f"v{i}@example.org", password="correct horse battery staple",
                            groups=groups) for i in range(n)]


def test_close_counts_stores_and_mails_everyone_once(app, db, settings, admin):
    voters = _members(db, 6)
    with db.begin() as s:
        p = make_proposal(s, method="single", options=("Red", "Green", "Blue"), state="open")
    red, green, blue = option_ids(db, p.id)
    picks = [green, green, red, green, blue, None]
    for m, pick in zip(voters, picks, strict=True):
        if pick is None:
            continue
        with Client(app, base_url="http://testserver") as c:
            c.sign_in(m.email)
            assert vote(c, p.id, {"choice": str(pick)}).status_code == 200
    closed = close(db, settings, p.id)
    assert closed.result["verdict"] == "Most votes: Green, 3 (60.0%)."
    assert closed.result["ballots"] == 5 and closed.result["eligible"] == 7
    assert closed.result["integrity"]["ok"] is True
    assert counts(db, Ballot, p.id) == 0 and counts(db, CountedBallot, p.id) == 5
    with db.read() as s:
        mails = list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "results")))
    assert sorted(m.to_addr for m in mails) == sorted([admin.email] + [v.email for v in voters])
    assert "Most votes: Green" in mails[0].text_body and f"/proposals/{p.id}/results" in mails[0].text_body
    with db.begin() as s, pytest.raises(services.VotingError):
        services.close_proposal(s, settings, p.id, actor_id=None)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "results")) == 7


def test_ranked_choice_results_page_shows_rounds(app, db, settings, admin):
    voters = _members(db, 5)
    with db.begin() as s:
        p = make_proposal(s, method="ranked", options=("Anna", "Ben", "Cleo"), state="open")
    a, b, c = option_ids(db, p.id)
    rankings = [{a: 1, c: 2}, {a: 1}, {b: 1, c: 2}, {c: 1, b: 2}, {b: 1, a: 2}]
    for m, ranking in zip(voters, rankings, strict=True):
        with Client(app, base_url="http://testserver") as cl:
            cl.sign_in(m.email)
            r = vote(cl, p.id, {f"rank-{k}": str(v) for k, v in ranking.items()})
            assert r.status_code == 200, r.text
    close(db, settings, p.id)
    with Client(app, base_url="http://testserver") as cl:
        cl.sign_in(admin.email)
        page = cl.get(f"/proposals/{p.id}/results")
    soup = BeautifulSoup(page.text, "html.parser")
    captions = [c.text for c in soup.select("#rounds-h ~ table caption")]
    # Round 1: Anna 2, Ben 2, Cleo 1 -> Cleo out, her ballot goes to Ben -> Ben 3 of 5 wins.
    assert captions[0] == "Round 1: Cleo eliminated"
    assert captions[-1].endswith("Ben elected")
    assert "Elected: Ben" in soup.select_one(".verdict").text


def test_results_downloads_and_open_ballot_list(app, db, settings, admin):
    voters = _members(db, 2)
    with db.begin() as s:
        p = make_proposal(s, secret=False, state="open", title="=HYPERLINK(1)")
    for m, choice in zip(voters, ["yes", "yes"], strict=True):
        with Client(app, base_url="http://testserver") as c:
            c.sign_in(m.email)
            vote(c, p.id, {"choice": choice})
    close(db, settings, p.id)
    with Client(app, base_url="http://testserver") as c:
        c.sign_in(voters[0].email)
        data = c.get(f"/proposals/{p.id}/results.json").json()
        assert data["result"]["rows"][0] == {"label": "Yes", "count": 2, "percent": 100.0}
        csv_text = c.get(f"/proposals/{p.id}/results.csv").text
        assert csv_text.splitlines()[1] == "Yes,2,100.0"
        ballots = c.get(f"/proposals/{p.id}/ballots.csv")
        assert ballots.status_code == 200
        assert sorted(ballots.text.splitlines()[1:]) == ["Member 1,Yes", "Member 2,Yes"] or \
            len(ballots.text.splitlines()) == 3


def test_secret_ballot_has_no_ballot_csv(member_client, db, settings, open_yes_no):
    vote(member_client, open_yes_no.id, {"choice": "yes"})
    close(db, settings, open_yes_no.id)
    assert member_client.get(f"/proposals/{open_yes_no.id}/ballots.csv").status_code == 404


def test_breakdown_hides_small_groups_for_secret_ballots(app, db, settings, admin):
    with db.begin() as s:
        big, small = make_group(s, name="Big"), make_group(s, name="Small")
    bigs = _members(db, 5, groups=())
    with db.begin() as s:
        from app.members.models import GroupMembership

        for m in bigs:
            s.add(GroupMembership(group_id=big.id, member_id=m.id))
        s.add(GroupMembership(group_id=small.id, member_id=bigs[0].id))
        p = make_proposal(s, state="open")
    for m in bigs:
        with Client(app, base_url="http://testserver") as c:
            c.sign_in(m.email)
            vote(c, p.id, {"choice": "yes"})
    closed = close(db, settings, p.id)
    rows = {r["group_id"]: r for r in closed.result["breakdown"]}
    assert rows[big.id]["ballots"] == 5
    assert [(c["label"], c["count"]) for c in rows[big.id]["cells"]] == [("Yes", 5), ("No", 0), ("Abstain", 0)]
    assert rows[small.id]["hidden"] is True and rows[small.id]["cells"] is None
    assert rows[small.id]["ballots"] is None


def test_deadline_closes_by_itself(db, settings, member_client, open_yes_no):
    vote(member_client, open_yes_no.id, {"choice": "yes"})
    assert services.run_due_transitions(db, settings) == 0
    assert services.run_due_transitions(db, settings, now=utcnow() + dt.timedelta(days=3, seconds=1)) == 1
    with db.read() as s:
        p = s.get(Proposal, open_yes_no.id)
    assert p.state == "closed" and p.result["verdict"].startswith("Passed")


def test_scheduled_opens_by_itself(db, settings, member):
    with db.begin() as s:
        p = make_proposal(s, state="scheduled", opens_at=utcnow() + dt.timedelta(hours=1))
    assert services.run_due_transitions(db, settings, now=utcnow() + dt.timedelta(hours=1, seconds=1)) == 1
    with db.read() as s:
        p = s.get(Proposal, p.id)
        assert len(services.ballot_key(s, p.id) or b"") == 32
    assert p.state == "open" and p.eligible_count == 1


def test_receipt_check_page(member_client, db, settings, open_yes_no):
    r = vote(member_client, open_yes_no.id, {"choice": "yes"})
    receipt = BeautifulSoup(r.text, "html.parser").select_one(".receipt-code code").text
    close(db, settings, open_yes_no.id)
    page = member_client.get(f"/proposals/{open_yes_no.id}/results")
    assert services.fingerprint(services.receipt_hash(receipt)) in page.text
    ok = member_client.form(f"/proposals/{open_yes_no.id}/receipt", {"receipt": receipt.lower()})
    assert ok.status_code == 200 and "Your ballot is in the count" in ok.text
    bad = member_client.form(f"/proposals/{open_yes_no.id}/receipt", {"receipt": "AAAA-BBBB-CCCC-DDDD"})
    assert bad.status_code == 404 and "No counted ballot" in bad.text


def test_results_json_is_the_stored_result(member_client, db, settings, open_yes_no):
    vote(member_client, open_yes_no.id, {"choice": "yes"})
    p = close(db, settings, open_yes_no.id)
    data = member_client.get(f"/proposals/{p.id}/results.json").json()
    assert data["result"] == json.loads(json.dumps(p.result))


def test_plain_form_vote_shows_receipt_on_the_proposal_page_once(member_client, open_yes_no):
    pid = open_yes_no.id
    vote(member_client, pid, {"choice": "yes"}, htmx=False)
    page = member_client.get(f"/proposals/{pid}")
    soup = BeautifulSoup(page.text, "html.parser")
    assert soup.select_one("#vote-panel .receipt-code code")
    assert "You voted: Yes" in soup.find(id="vote-panel").text
    again = member_client.get(f"/proposals/{pid}")
    assert not BeautifulSoup(again.text, "html.parser").select_one(".receipt-code")


def test_detail_page_of_closed_proposal_links_results(member_client, db, settings, open_yes_no):
    vote(member_client, open_yes_no.id, {"choice": "yes"})
    close(db, settings, open_yes_no.id)
    page = member_client.get(f"/proposals/{open_yes_no.id}")
    assert page.status_code == 200
    assert f'/proposals/{open_yes_no.id}/results' in page.text


def test_worker_tick_closes_a_proposal_past_its_deadline(db, settings, member_client, open_yes_no):
    import asyncio
    import concurrent.futures

    from sqlalchemy import update

    from app.jobs.worker import Worker

    vote(member_client, open_yes_no.id, {"choice": "yes"})
    with db.begin() as s:
        s.execute(update(Proposal).where(Proposal.id == open_yes_no.id)
                  .values(closes_at=utcnow() - dt.timedelta(seconds=1)))
    worker = Worker(settings, db, name="test")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own (see test_jobs.run)
        assert pool.submit(asyncio.run, worker.tick()).result(timeout=60) >= 1
    with db.read() as s:
        p = s.get(Proposal, open_yes_no.id)
        assert p.state == "closed" and p.result["ballots"] == 1
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "results")) == 2
