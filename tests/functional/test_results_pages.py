"""The results pages and downloads through HTTP: the suppressed breakdown by group, the score distribution,
the open ballot's ballots.json, and that nothing of a tally shows before the proposal allows it."""

from __future__ import annotations

import csv
import io

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from app.proposals.models import Option, Proposal
from app.voting import services
from tests.conftest import PASSWORD, Client
from tests.factories import make_group, make_member, make_proposal

HX = {"HX-Request": "true"}


def _voters(db, n: int, groups=()) -> list:  # type: ignore[no-untyped-def]
    with db.begin() as s:
        return [make_member(s, password=PASSWORD, groups=groups) for _ in range(n)]


def _vote_as(app, member, pid: int, data: dict) -> None:  # type: ignore[no-untyped-def]
    """Another member's vote, through the same form parsing and service as the vote endpoint (signing in
    dozens of members over HTTP would meet the sign-in rate limit)."""
    from app.voting import ballots as ballot_rules

    settings, db = app.state.settings, app.state.db
    with db.begin() as s:
        p = s.get(Proposal, pid)
        ids = list(s.scalars(select(Option.id).where(Option.proposal_id == pid).order_by(Option.position)))
        getlist = lambda k: [v for key, v in data.items() if key == k]  # noqa: E731
        raw = ballot_rules.choice_from_form(p.method, ids, data, getlist)
        services.cast_ballot(s, settings, proposal_id=pid, member_id=member.id, raw_choice=raw)


def _close(db, settings, pid: int) -> Proposal:  # type: ignore[no-untyped-def]
    with db.begin() as s:
        services.close_proposal(s, settings, pid, actor_id=None)
    with db.read() as s:
        return s.get(Proposal, pid)


def _options(db, pid: int) -> list[int]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return list(s.scalars(select(Option.id).where(Option.proposal_id == pid).order_by(Option.position)))


# --- the breakdown by group ---------------------------------------------------------------------------------

def test_breakdown_hides_small_cells_on_the_page_and_in_the_downloads(app, db, settings, admin, member_client):
    """Tenants: 9 yes, 3 no, 1 abstain (two small cells); Garden: 6 yes and 1 no (one small cell, so the 6 goes
    too); Board: 3 members (hidden whole)."""
    with db.begin() as s:
        tenants, garden = make_group(s, name="Tenants"), make_group(s, name="Garden")
        board = make_group(s, name="Board")
    plan = ([("yes", (tenants,))] * 9 + [("no", (tenants,))] * 3 + [("abstain", (tenants, board))]
            + [("yes", (garden, board))] * 2 + [("yes", (garden,))] * 4 + [("no", (garden,))])
    members = []
    with db.begin() as s:
        for _, groups in plan:
            members.append(make_member(s, password=PASSWORD, groups=groups))
        p = make_proposal(s, state="open", title="Hire a caretaker?")
    for m, (choice, _) in zip(members, plan, strict=True):
        _vote_as(app, m, p.id, {"choice": choice})
    _close(db, settings, p.id)

    page = member_client.get(f"/proposals/{p.id}/results")
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "html.parser")
    table = soup.find(id="breakdown")
    assert [th.text for th in table.select("thead th")] == ["Group", "Ballots", "Yes", "No", "Abstain"]
    rows = {tr.th.text: [td.get_text(" ", strip=True) for td in tr.find_all("td")] for tr in table.select("tbody tr")}
    assert rows["Tenants"] == ["13", "9", "<5 fewer than 5", "<5 fewer than 5"]
    assert rows["Garden"] == ["7", "<5 fewer than 5", "<5 fewer than 5", "0"]
    assert rows["Board"] == ["Hidden: fewer than 5 ballots"]
    hidden = table.select("tbody td span.visually-hidden")
    assert hidden and all(span.text == "fewer than 5" for span in hidden)
    assert table.get("aria-describedby") == "groups-note" and soup.find(id="groups-note")

    data = member_client.get(f"/proposals/{p.id}/results.json").json()
    by_name = {g["group"]: g for g in data["result"]["breakdown"]}
    assert [c["count"] for c in by_name["Tenants"]["cells"]] == [9, None, None]
    assert [c["count"] for c in by_name["Garden"]["cells"]] == [None, None, 0]
    assert by_name["Board"] == {"group_id": board.id, "group": "Board", "ballots": None, "hidden": True,
                                "reason": "few", "cells": None}

    lines = list(csv.reader(io.StringIO(member_client.get(f"/proposals/{p.id}/results.csv").text)))
    assert ["group", "ballots", "Yes", "No", "Abstain"] in lines
    assert ["Tenants", "13", "9", "<5", "<5"] in lines
    assert ["Garden", "7", "<5", "<5", "0"] in lines
    assert ["Board", "hidden", "", "", ""] in lines


def test_results_stored_before_cells_were_hidden_are_suppressed_when_shown(member_client, db, settings, admin):
    """A result closed under the old rule kept 'No: 1' in a larger group; pages and downloads hide it now."""
    with db.begin() as s:
        g = make_group(s, name="Riverside")
        p = make_proposal(s, state="open")
    p = _close(db, settings, p.id)
    legacy = dict(p.result) | {"breakdown": [
        {"group_id": g.id, "ballots": 8, "hidden": False, "counts": {"Yes": 7, "No": 1}},
        {"group_id": 999, "ballots": None, "hidden": True, "counts": None}]}
    with db.begin() as s:
        s.get(Proposal, p.id).result = legacy
    page = BeautifulSoup(member_client.get(f"/proposals/{p.id}/results").text, "html.parser")
    rows = {tr.th.text: [td.get_text(" ", strip=True) for td in tr.find_all("td")]
            for tr in page.find(id="breakdown").select("tbody tr")}
    assert rows == {"Riverside": ["8", "<5 fewer than 5", "<5 fewer than 5", "0"],
                    "Former group": ["Hidden: fewer than 5 ballots"]}
    data = member_client.get(f"/proposals/{p.id}/results.json").json()
    assert [c["count"] for c in data["result"]["breakdown"][0]["cells"]] == [None, None, 0]
    assert "counts" not in data["result"]["breakdown"][0]


def test_open_ballot_breakdown_shows_every_count(app, db, settings, admin, member_client):
    with db.begin() as s:
        g = make_group(s, name="Hillside")
    voters = _voters(db, 3, groups=(g,))
    with db.begin() as s:
        p = make_proposal(s, state="open", secret=False)
    for m, choice in zip(voters, ("yes", "yes", "no"), strict=True):
        _vote_as(app, m, p.id, {"choice": choice})
    _close(db, settings, p.id)
    page = BeautifulSoup(member_client.get(f"/proposals/{p.id}/results").text, "html.parser")
    row = page.find(id="breakdown").select_one("tbody tr")
    assert [td.text for td in row.find_all("td")] == ["3", "2", "1", "0"]
    assert not page.find(id="groups-note")


# --- score voting: the distribution -------------------------------------------------------------------------

def test_score_distribution_table_and_downloads(app, db, settings, admin, member_client):
    voters = _voters(db, 4)
    with db.begin() as s:
        p = make_proposal(s, method="score", options=("Lake", "Forest"), state="open", max_score=5)
    lake, forest = _options(db, p.id)
    ballots = [{lake: 5, forest: 0}, {lake: 5, forest: 2}, {lake: 3}, {lake: 0, forest: 2}]
    for m, scores in zip(voters, ballots, strict=True):
        _vote_as(app, m, p.id, {f"score-{k}": str(v) for k, v in scores.items()})
    _close(db, settings, p.id)

    soup = BeautifulSoup(member_client.get(f"/proposals/{p.id}/results").text, "html.parser")
    table = soup.find(id="score-distribution")
    assert table.caption and "left it unscored" in table.caption.text
    assert [th.text for th in table.select("thead th")] == ["Option"] + [f"Score {n}" for n in range(6)] + [
        "Not scored"]
    assert all(th.get("scope") == "col" for th in table.select("thead th"))
    rows = {tr.th.text: [int(td.text) for td in tr.find_all("td")] for tr in table.select("tbody tr")}
    assert all(tr.th.get("scope") == "row" for tr in table.select("tbody tr"))
    #                    0  1  2  3  4  5  not scored
    assert rows == {"Lake": [1, 0, 0, 1, 0, 2, 0], "Forest": [1, 0, 2, 0, 0, 0, 1]}

    lines = list(csv.reader(io.StringIO(member_client.get(f"/proposals/{p.id}/results.csv").text)))
    assert lines[0] == ["option", "ballots", "average", "score 0", "score 1", "score 2", "score 3", "score 4",
                        "score 5", "not scored"]
    assert lines[1] == ["Lake", "4", "3.25", "1", "0", "0", "1", "0", "2", "0"]
    assert lines[2] == ["Forest", "3", "1.33", "1", "0", "2", "0", "0", "0", "1"]
    rows_json = member_client.get(f"/proposals/{p.id}/results.json").json()["result"]["rows"]
    assert [(r["label"], r["distribution"], r["unscored"]) for r in rows_json] == [
        ("Lake", [1, 0, 0, 1, 0, 2], 0), ("Forest", [1, 0, 2, 0, 0, 0], 1)]


def test_other_methods_have_no_score_table(member_client, db, settings):
    with db.begin() as s:
        p = make_proposal(s, state="open")
    _close(db, settings, p.id)
    page = member_client.get(f"/proposals/{p.id}/results")
    assert page.status_code == 200 and 'id="score-distribution"' not in page.text


# --- ballots.json --------------------------------------------------------------------------------------------

def test_ballots_json_lists_who_voted_what_on_an_open_ballot_after_close(app, db, settings, admin, member_client):
    voters = _voters(db, 2)
    with db.begin() as s:
        p = make_proposal(s, method="single", options=("North", "South"), secret=False, state="open")
    north, south = _options(db, p.id)
    _vote_as(app, voters[0], p.id, {"choice": str(north)})
    _vote_as(app, voters[1], p.id, {"choice": str(south)})
    assert member_client.get(f"/proposals/{p.id}/ballots.json").status_code == 404  # not before close
    _close(db, settings, p.id)
    r = member_client.get(f"/proposals/{p.id}/ballots.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"] == f'attachment; filename="ballots-{p.id}.json"'
    data = r.json()
    assert data["proposal"]["id"] == p.id
    assert sorted((b["member"], b["choice"]) for b in data["ballots"]) == sorted(
        [(voters[0].name, "North"), (voters[1].name, "South")])
    csv_rows = sorted(member_client.get(f"/proposals/{p.id}/ballots.csv").text.splitlines()[1:])
    assert csv_rows == sorted(f"{b['member']},{b['choice']}" for b in data["ballots"])
    page = member_client.get(f"/proposals/{p.id}/results").text
    assert f"/proposals/{p.id}/ballots.json" in page


def test_ballots_json_refusals(app, db, settings, admin, member_client):
    with db.begin() as s:
        secret = make_proposal(s, state="open")
        other_audience = make_group(s, name="Elsewhere")
        elsewhere = make_proposal(s, state="open", secret=False, groups=(other_audience,))
        draft = make_proposal(s, secret=False)
    _vote_as(app, admin, secret.id, {"choice": "yes"})
    _close(db, settings, secret.id)
    _close(db, settings, elsewhere.id)
    for pid in (secret.id, elsewhere.id, draft.id, 999_999):
        for fmt in ("json", "csv"):
            r = member_client.get(f"/proposals/{pid}/ballots.{fmt}")
            assert r.status_code == 404, (pid, fmt)
            assert "ballots" not in r.headers.get("content-disposition", "")
    with Client(app, base_url="http://testserver") as anonymous:
        r = anonymous.get(f"/proposals/{secret.id}/ballots.json", follow_redirects=False)
        assert r.status_code in (302, 303, 401) and "application/json" not in r.headers.get("content-type", "")
    secret_page = member_client.get(f"/proposals/{secret.id}/results").text
    assert "ballots.json" not in secret_page and "ballots.csv" not in secret_page


# --- nothing of the tally before it is allowed ---------------------------------------------------------------

def _shows_counts(html: str) -> bool:
    soup = BeautifulSoup(html, "html.parser")
    captions = [c.text for c in soup.find_all("caption")]
    return bool(soup.select("figure.chart") or any("per option" in c or "First preferences" in c
                                                     or "Scores given" in c for c in captions)
                or "Tally so far" in html)


def _every_view(client: Client, pid: int) -> dict[str, tuple[int, str]]:
    """Every page, fragment and export that could show a tally, as this member sees it now."""
    out = {}
    for name, url, headers in (("page", f"/proposals/{pid}", {}), ("page fragment", f"/proposals/{pid}", HX),
                               ("results", f"/proposals/{pid}/results", {}),
                               ("results.json", f"/proposals/{pid}/results.json", {}),
                               ("results.csv", f"/proposals/{pid}/results.csv", {}),
                               ("ballots.csv", f"/proposals/{pid}/ballots.csv", {}),
                               ("ballots.json", f"/proposals/{pid}/ballots.json", {}),
                               ("receipts", f"/proposals/{pid}/receipts", {})):
        r = client.get(url, headers=headers)
        out[name] = (r.status_code, r.text)
    return out


def _assert_no_tally(views: dict[str, tuple[int, str]], *, yes_votes: int) -> None:
    for name, (status, body) in views.items():
        if name in ("page", "page fragment", "results"):
            assert status == 200, name
            assert not _shows_counts(body), name
        else:
            assert status == 404, name
            assert f'"count": {yes_votes}' not in body and f"Yes,{yes_votes}" not in body, name


def test_after_you_vote_shows_nothing_before_and_the_tally_after(app, db, settings, admin, member_client):
    others = _voters(db, 3)
    with db.begin() as s:
        p = make_proposal(s, secret=False, visibility="after_vote", state="open")
    for m in others:
        _vote_as(app, m, p.id, {"choice": "yes"})
    _assert_no_tally(_every_view(member_client, p.id), yes_votes=3)
    refused = member_client.form(f"/proposals/{p.id}/vote", {"choice": "maybe"}, headers=HX)
    assert refused.status_code == 400 and not _shows_counts(refused.text)  # a refused vote is not a vote

    fragment = member_client.form(f"/proposals/{p.id}/vote", {"choice": "no"}, headers=HX)
    assert fragment.status_code == 200 and _shows_counts(fragment.text)
    soup = BeautifulSoup(fragment.text, "html.parser")
    cells = {tr.th.text: tr.find("td").text for tr in soup.select("tbody tr")}
    assert cells == {"Yes": "3", "No": "1", "Abstain": "0"}
    views = _every_view(member_client, p.id)
    for name in ("page", "page fragment", "results"):
        assert views[name][0] == 200 and _shows_counts(views[name][1]), name
    assert views["results.csv"][0] == 200 and "Yes,3," in views["results.csv"][1]
    assert views["results.json"][0] == 200
    assert '"final":false' in views["results.json"][1].replace(" ", "")
    for name in ("ballots.csv", "ballots.json", "receipts"):  # who voted what: after close only
        assert views[name][0] == 404, name


def test_open_ballot_after_close_shows_nothing_until_close(app, db, settings, admin, member_client):
    others = _voters(db, 3)
    with db.begin() as s:
        p = make_proposal(s, secret=False, visibility="after_close", state="open")
    for m in others:
        _vote_as(app, m, p.id, {"choice": "yes"})
    _assert_no_tally(_every_view(member_client, p.id), yes_votes=3)
    fragment = member_client.form(f"/proposals/{p.id}/vote", {"choice": "yes"}, headers=HX)
    assert fragment.status_code == 200 and not _shows_counts(fragment.text)
    _assert_no_tally(_every_view(member_client, p.id), yes_votes=4)
    with Client(app, base_url="http://testserver") as ac:  # admins see no more than members
        ac.sign_in(admin.email)
        _assert_no_tally(_every_view(ac, p.id), yes_votes=4)
    _close(db, settings, p.id)
    views = _every_view(member_client, p.id)
    assert all(status == 200 for status, _ in views.values()), {k: v[0] for k, v in views.items()}
    assert _shows_counts(views["results"][1]) and "Yes,4," in views["results.csv"][1]


@pytest.mark.parametrize("visibility", ["live", "after_vote", "after_close"])
def test_secret_ballot_never_shows_a_live_tally(app, db, settings, admin, member_client, visibility):
    others = _voters(db, 3)
    with db.begin() as s:
        p = make_proposal(s, secret=True, visibility=visibility, state="open")
    for m in others:
        _vote_as(app, m, p.id, {"choice": "yes"})
    fragment = member_client.form(f"/proposals/{p.id}/vote", {"choice": "yes"}, headers=HX)
    assert fragment.status_code == 200 and not _shows_counts(fragment.text)
    _assert_no_tally(_every_view(member_client, p.id), yes_votes=4)
    with Client(app, base_url="http://testserver") as ac:
        ac.sign_in(admin.email)
        _assert_no_tally(_every_view(ac, p.id), yes_votes=4)
    _close(db, settings, p.id)
    views = _every_view(member_client, p.id)
    assert _shows_counts(views["results"][1]) and views["results.json"][0] == 200
    assert views["ballots.csv"][0] == 404 and views["ballots.json"][0] == 404
