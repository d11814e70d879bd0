"""The live tally (grouped by the database) equals the count of every ballot one by one, for every method."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.proposals.models import Option, Proposal
from app.voting import ballots as ballot_rules
from app.voting import services
from app.voting.models import Ballot
from tests.factories import make_member, make_proposal

OPTIONS = ("Red", "Green", "Blue", "Gold")


def _ballots(method: str, ids: list[str]) -> list[object]:
    a, b, c, d = ids
    if method == "yes_no":
        return ["yes", "no", "yes", "abstain", "yes", "no"]
    if method == "single":
        return [a, b, a, c, a, d, b]
    if method == "multiple":
        return [[a, b], [b, a], [c], [a, b], [d, c, a]]
    if method == "ranked":
        return [[a, b, c], [b, a], [a, b, c], [c], [d, c, b, a], [b, a]]
    # score: the same ballot with its keys in another order must count the same
    return [{a: 5, b: 1}, {b: 1, a: 5}, {c: 4}, {a: 0, d: 3}, {d: 3, a: 0}]


@pytest.mark.parametrize("method", ["yes_no", "single", "multiple", "ranked", "score"])
def test_live_tally_counts_like_the_close(db, settings, org, method):
    with db.begin() as s:
        voters = [make_member(s) for _ in range(8)]  # before opening: the audience is frozen then
        p = make_proposal(s, method=method, options=() if method == "yes_no" else OPTIONS, secret=False,
                          visibility="live", state="open")
        pid = p.id
        ids = [str(i) for i in s.scalars(select(Option.id).where(Option.proposal_id == pid)
                                          .order_by(Option.position))] or ["x", "y", "z", "w"]
        for voter, choice in zip(voters, _ballots(method, ids), strict=False):
            services.cast_ballot(s, settings, proposal_id=pid, member_id=voter.id, raw_choice=choice)
    with db.read() as s:
        p = s.get(Proposal, pid)
        options = list(s.scalars(select(Option).where(Option.proposal_id == pid).order_by(Option.position)))
        live = services.live_result(s, p, options)
        every = list(s.scalars(select(Ballot.choice).where(Ballot.proposal_id == pid)))
        one_by_one = services.build_result(p, ballot_rules.count(
            p, [(o.id, o.label) for o in options], every, eligible=max(p.eligible_count, len(every))))
    assert live == one_by_one
    assert sum(row["count"] for row in live["rows"]) > 0


@pytest.mark.parametrize("method", ["yes_no", "single"])
@pytest.mark.parametrize("seed", range(5))
def test_counting_groups_equals_counting_every_ballot(method, seed):
    """The live tally's shortcut for yes/no and single choice (counts taken as they are) against the plain count,
    on random ballots with ties likely (few ballots, few options) and a 'none of these' choice."""
    import random
    from collections import Counter
    from types import SimpleNamespace

    from app.voting.tally import NONE_OF_THESE

    rng = random.Random(seed)
    options = [(11, "Red"), (12, "Green"), (13, "Blue")]
    p = SimpleNamespace(method=method, public_id=f"p{seed}", allow_none=True, threshold="1/2", threshold_strict=False,
                        quorum=None)
    pool = ["yes", "no", "abstain"] if method == "yes_no" else ["11", "12", "13", NONE_OF_THESE]
    every = [rng.choice(pool) for _ in range(rng.randint(0, 12))]
    groups = list(Counter(every).items())
    eligible = 20
    assert ballot_rules.count_groups(p, options, groups, eligible=eligible) == ballot_rules.count(
        p, options, every, eligible=eligible)


def test_sqlite_reads_the_live_tally_from_its_index_alone(db):
    """On SQLite the tally of an open proposal is read from the (proposal_id, choice) index, already grouped:
    no visit to the ballots' rows and no sort (PostgreSQL has no such index: its json has no b-tree order)."""
    if db.dialect != "sqlite":
        pytest.skip("the index is SQLite's")
    with db.read_connection() as conn:
        stmt = services._LIVE_COUNTS["sqlite"]
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": False}))
        plan = " ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", (1,)))
    assert "COVERING INDEX ix_ballots_proposal_id_choice" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
