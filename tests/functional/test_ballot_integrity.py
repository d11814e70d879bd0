"""One ballot per member under real concurrent HTTP requests, and secret ballots that nothing links after close."""

from __future__ import annotations

import http.client
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator

import pytest
import uvicorn
from sqlalchemy import func, inspect, select, text

from app.members.auth import start_session
from app.members.models import Member
from app.proposals.models import Option, Proposal
from app.voting import services
from app.voting.models import Ballot, CountedBallot, Participation
from tests.factories import make_member, make_proposal


@pytest.fixture
def live_server(app) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The app served by uvicorn on 127.0.0.1 in a thread, for real concurrent connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _sessions(db, settings, n: int) -> list[tuple[int, str]]:
    out = []
    with db.begin() as s:
        for i in range(n):
            m = make_member(s, email=f"racer{i}@example.org")
            out.append((m.id, start_session(s, settings, m, ip="127.0.0.1", user_agent="test")))
    return out


def _post(port: int, path: str, session_token: str, body: dict[str, str], barrier: threading.Barrier) -> int:
    csrf = secrets.token_urlsafe(32)
    data = urllib.parse.urlencode({"csrf_token": csrf, **body})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.connect()
        barrier.wait(timeout=30)
        conn.request("POST", path, body=data, headers={
            "Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true", "Host": "127.0.0.1",
            "Cookie": f"plenary_session={session_token}; plenary_csrf={csrf}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_two_simultaneous_votes_per_member_leave_one_ballot(live_server, db, settings):
    members = _sessions(db, settings, 15)
    with db.begin() as s:
        p = make_proposal(s, method="single", options=("North", "South"), state="open")
        north, south = s.scalars(select(Option.id).where(Option.proposal_id == p.id).order_by(Option.position))
    barrier = threading.Barrier(len(members) * 2)
    statuses: list[int] = []
    lock = threading.Lock()

    def run(token: str, choice: int) -> None:
        status = _post(live_server, f"/proposals/{p.id}/vote", token, {"choice": str(choice)}, barrier)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=run, args=(token, choice))
               for _, token in members for choice in (north, south)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses.count(200) == len(members) * 2, statuses
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ballot).where(Ballot.proposal_id == p.id)) == 15
        assert s.scalar(select(func.count()).select_from(Participation).where(
            Participation.proposal_id == p.id)) == 15
    with db.begin() as s:
        services.close_proposal(s, settings, p.id, actor_id=None)
    with db.read() as s:
        result = s.get(Proposal, p.id).result
    assert result["ballots"] == 15 and sum(r["count"] for r in result["rows"]) == 15


def test_database_refuses_a_second_ballot_row(db, settings):
    from sqlalchemy.exc import IntegrityError

    with db.begin() as s:
        p = make_proposal(s, state="open")
        m = make_member(s)
        ref = services.voter_ref(p.ballot_key, m.id)
    row = {"proposal_id": p.id, "voter_ref": ref, "choice": "yes", "receipt_hash": "0" * 64, "group_ids": ""}
    with db.begin() as s:
        s.add(Ballot(id=secrets.token_bytes(16), **row))
    with pytest.raises(IntegrityError), db.begin() as s:
        s.add(Ballot(id=secrets.token_bytes(16), **row))


def _spearman(xs: list[int]) -> float:
    n = len(xs)
    ranks = {v: i for i, v in enumerate(sorted(xs))}
    d2 = sum((i - ranks[v]) ** 2 for i, v in enumerate(xs))
    return 1 - 6 * d2 / (n * (n * n - 1))


def test_after_close_nothing_links_a_ballot_to_a_member(db, settings):
    """Plays the database administrator after close: every column, hidden ones included."""
    n = 100
    with db.begin() as s:
        p = make_proposal(s, method="score", options=("A", "B", "C"), state="draft")
        voters = [make_member(s, email=f"secret{i}@example.org") for i in range(n)]
    with db.begin() as s:
        services.open_proposal(s, settings, p.id)
        a, b, c = s.scalars(select(Option.id).where(Option.proposal_id == p.id).order_by(Option.position))
    # Each voter's scores encode their position in the voting order, so a leak of order would show.
    receipts = []
    for i, m in enumerate(voters):
        scores = {str(a): i % 6, str(b): (i // 6) % 6, str(c): (i // 36) % 6}
        with db.begin() as s:
            receipts.append(services.cast_ballot(s, settings, proposal_id=p.id, member_id=m.id,
                                                 raw_choice=scores).receipt)
    with db.begin() as s:
        services.close_proposal(s, settings, p.id, actor_id=None)

    with db.read() as s:
        closed = s.get(Proposal, p.id)
        assert closed.ballot_key is None
        assert s.scalar(select(func.count()).select_from(Ballot).where(Ballot.proposal_id == p.id)) == 0
        columns = {col["name"] for col in inspect(s.get_bind()).get_columns("counted_ballots")}
        assert columns == {"id", "proposal_id", "choice", "receipt_hash", "group_ids", "voter_id"}
        assert not [col for col in inspect(s.get_bind()).get_columns("counted_ballots")
                    if "time" in str(col["type"]).lower() or "date" in str(col["type"]).lower()]
        assert s.scalar(select(func.count()).select_from(CountedBallot).where(
            CountedBallot.voter_id.is_not(None))) == 0
        # Every receipt issued is in the published list (and only those).
        published = {fp for fp, _ in services.receipts(s, closed)}
        assert published == {services.fingerprint(services.receipt_hash(r)) for r in receipts}

        if db.dialect == "postgresql":
            order_sql = ("SELECT choice::text, xmin::text AS x FROM counted_ballots WHERE proposal_id = :p "
                         "ORDER BY ctid")
            rows = s.execute(text(order_sql), {"p": p.id}).all()
            xmins = {r.x for r in rows}
            assert len(xmins) == 1  # all written by the close transaction
            shared = s.scalar(text("SELECT count(*) FROM participations WHERE proposal_id = :p "
                                   "AND xmin::text = ANY(:x)"), {"p": p.id, "x": list(xmins)})
            assert shared == 0
            choices = [__import__("json").loads(r[0]) for r in rows]
        else:
            with pytest.raises(Exception, match="rowid"):
                s.execute(text("SELECT rowid FROM counted_ballots")).all()
            with pytest.raises(Exception, match="rowid"):
                s.execute(text("SELECT rowid FROM ballots")).all()
            choices = list(s.scalars(select(CountedBallot.choice).where(CountedBallot.proposal_id == p.id)
                                     .order_by(CountedBallot.id)))
        order = [ch[str(a)] + 6 * ch[str(b)] + 36 * ch[str(c)] for ch in choices]
        assert sorted(order) == list(range(n))
        # Physical order against voting order: with N=100 a random order gives |rho| < 0.4 all but never.
        assert abs(_spearman(order)) < 0.4
        # The participation rows say who voted and nothing more.
        pcols = {col["name"] for col in inspect(s.get_bind()).get_columns("participations")}
        assert pcols == {"proposal_id", "member_id", "voted_on", "via"}
        assert s.scalar(select(func.count()).select_from(Member)) == n


def test_ballot_ids_are_random_not_sequential(db, settings):
    with db.begin() as s:
        p = make_proposal(s, state="draft")
        voters = [make_member(s) for _ in range(30)]
    with db.begin() as s:
        services.open_proposal(s, settings, p.id)
    for m in voters:
        with db.begin() as s:
            services.cast_ballot(s, settings, proposal_id=p.id, member_id=m.id, raw_choice="yes")
    with db.read() as s:
        ids = list(s.scalars(select(Ballot.id).where(Ballot.proposal_id == p.id)))
    assert len({len(i) for i in ids}) == 1 and len(ids[0]) == 16
    assert len(set(ids)) == 30
