"""One ballot per member under real concurrent HTTP requests, and secret ballots that nothing links after close."""

from __future__ import annotations

import secrets
import threading

import pytest
from sqlalchemy import func, inspect, select, text

from app.members.models import Member
from app.proposals.models import Option, Proposal
from app.voting import services
from app.voting.models import Ballot, CountedBallot, Participation
from tests.factories import make_member, make_proposal
from tests.live import post, sessions


def test_two_simultaneous_votes_per_member_leave_one_ballot(live_server, db, settings):
    members = sessions(db, settings, 15)
    with db.begin() as s:
        p = make_proposal(s, method="single", options=("North", "South"), state="open")
        north, south = s.scalars(select(Option.id).where(Option.proposal_id == p.id).order_by(Option.position))
    barrier = threading.Barrier(len(members) * 2)
    statuses: list[int] = []
    lock = threading.Lock()

    def run(token: str, choice: int) -> None:
        status, _ = post(live_server, f"/proposals/{p.id}/vote", token, {"choice": str(choice)}, barrier)
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
