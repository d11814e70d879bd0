"""One ballot per member under real concurrent HTTP requests, and secret ballots that nothing links after close."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import threading

import pytest
from sqlalchemy import func, inspect, select, text

from app.db import utcnow
from app.members.models import Group, GroupMembership, Member
from app.proposals.models import Option, Proposal
from app.voting import services
from app.voting.models import Ballot, BallotKey, CountedBallot, Participation
from app.voting.scrub import erase_residue
from tests.factories import make_group, make_member, make_proposal
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
        ref = services.voter_ref(services.ballot_key(s, p.id), m.id)
    row = {"proposal_id": p.id, "voter_ref": ref, "choice": "yes", "receipt_hash": "0" * 64}
    with db.begin() as s:
        s.add(Ballot(id=secrets.token_bytes(16), **row))
    with pytest.raises(IntegrityError), db.begin() as s:
        s.add(Ballot(id=secrets.token_bytes(16), **row))


def _spearman(xs: list[int]) -> float:
    n = len(xs)
    ranks = {v: i for i, v in enumerate(sorted(xs))}
    d2 = sum((i - ranks[v]) ** 2 for i, v in enumerate(xs))
    return 1 - 6 * d2 / (n * (n * n - 1))


GROUP_NAMES = ("Riverside", "Hillside", "Board", "Finance", "Youth")


def _group_sets(n: int) -> list[tuple[str, ...]]:
    """Overlapping groups: everyone in Riverside or Hillside, every seventh also on the Board, every fifth in
    Youth; and three members whose combination of groups nobody else has."""
    sets = []
    for i in range(n):
        g = ["Riverside" if i % 2 else "Hillside"]
        if i % 7 == 0:
            g.append("Board")
        if i % 5 == 0:
            g.append("Youth")
        sets.append(tuple(g))
    sets[1] = ("Board", "Finance")                       # the treasurer
    sets[2] = ("Finance", "Youth", "Riverside")
    sets[3] = ("Finance",)
    return sets


def _secret_vote(db, settings, n: int = 100):  # type: ignore[no-untyped-def]
    """A secret score vote by `n` members in overlapping groups; each ballot's scores encode its voter's
    position in the voting order, so a leak of order would show. Returns what the test needs, before close."""
    sets = _group_sets(n)
    with db.begin() as s:
        groups = {name: make_group(s, name=name) for name in GROUP_NAMES}
        p = make_proposal(s, method="score", options=("A", "B", "C"), state="draft")
        voters = [make_member(s, email=f"secret{i}@example.org", groups=tuple(groups[g] for g in sets[i]))
                  for i in range(n)]
    with db.begin() as s:
        services.open_proposal(s, settings, p.id)
        a, b, c = s.scalars(select(Option.id).where(Option.proposal_id == p.id).order_by(Option.position))
        key = services.ballot_key(s, p.id)
    receipts = []
    for i, m in enumerate(voters):
        scores = {str(a): i % 6, str(b): (i // 6) % 6, str(c): (i // 36) % 6}
        with db.begin() as s:
            receipts.append(services.cast_ballot(s, settings, proposal_id=p.id, member_id=m.id,
                                                 raw_choice=scores).receipt)
    # A few members change their mind: the replaced ballot versions must leave no trace either.
    for m in voters[:5]:
        with db.begin() as s:
            services.cast_ballot(s, settings, proposal_id=p.id, member_id=m.id,
                                 raw_choice={str(a): 5, str(b): 5, str(c): 5})
    with db.begin() as s:
        receipts[:5] = [services.cast_ballot(
            s, settings, proposal_id=p.id, member_id=m.id,
            raw_choice={str(a): i % 6, str(b): (i // 6) % 6, str(c): (i // 36) % 6}).receipt
            for i, m in enumerate(voters[:5])]
    refs = [services.voter_ref(key, m.id) for m in voters]
    return p, (a, b, c), voters, receipts, key, refs


def _columns(s, table: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every column a query can read, hidden ones included."""
    cols = [col["name"] for col in inspect(s.get_bind()).get_columns(table)]
    if s.get_bind().dialect.name == "postgresql":
        return cols + ["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"]
    try:
        s.execute(text(f'SELECT rowid FROM "{table}" LIMIT 1')).all()  # noqa: S608 (a table of the schema)
    except Exception:
        return cols  # WITHOUT ROWID
    return cols + ["rowid"]


HIDDEN = ("ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "rowid")


def _select(db, col: str) -> str:  # type: ignore[no-untyped-def]
    return f"{col}::text" if col in HIDDEN and db.dialect == "postgresql" else (
        col if col in HIDDEN else f'"{col}"')


def _norm(value: object) -> str | None:
    """One text form per value, so that equal values in columns of different types compare equal."""
    if value is None:
        return None
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _member_columns(s) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """Tables that name members, and the columns that do (foreign keys to members.id, and members.id itself)."""
    found: dict[str, list[str]] = {"members": ["id"]}
    insp = inspect(s.get_bind())
    for table in insp.get_table_names():
        for fk in insp.get_foreign_keys(table):
            if fk["referred_table"] == "members":
                found.setdefault(table, []).extend(fk["constrained_columns"])
    return found


def test_after_close_nothing_links_a_ballot_to_a_member(db, settings):
    """Plays the database administrator after close: joins every column of the counted ballots, hidden ones
    included (SQLite's rowid, PostgreSQL's ctid, xmin, xmax, cmin, cmax), to every column, hidden ones included,
    of every table that names members; no join tells one ballot's voters from another's."""
    n = 100
    p, (a, b, c), voters, receipts, _key, _refs = _secret_vote(db, settings, n)
    with db.begin() as s:
        services.close_proposal(s, settings, p.id, actor_id=None)
    erase_residue(db)

    with db.read() as s:
        closed = s.get(Proposal, p.id)
        assert services.ballot_key(s, p.id) is None
        assert s.scalar(select(func.count()).select_from(BallotKey)) == 0
        assert s.scalar(select(func.count()).select_from(Ballot).where(Ballot.proposal_id == p.id)) == 0
        # The counted ballots hold the choice and the receipt; no group, no voter, no time.
        columns = {col["name"] for col in inspect(s.get_bind()).get_columns("counted_ballots")}
        assert columns == {"id", "proposal_id", "choice", "receipt_hash", "voter_id"}
        assert not [col for col in inspect(s.get_bind()).get_columns("counted_ballots")
                    if "time" in str(col["type"]).lower() or "date" in str(col["type"]).lower()]
        assert s.scalar(select(func.count()).select_from(CountedBallot).where(
            CountedBallot.voter_id.is_not(None))) == 0
        # Every receipt issued is in the published list (and only those).
        published = {fp for fp, _ in services.receipts(s, closed)}
        assert published == {services.fingerprint(services.receipt_hash(r)) for r in receipts}

        # Every join: for each column of the counted ballots and each column of a table naming members, the
        # members each ballot reaches through equal values. A link would make those sets differ by ballot.
        # (Their physical position, PostgreSQL's ctid, is the shuffled order: tested against the voting order
        # below. Every other column, cmin included, must be the same for every ballot or join nothing.)
        cb_cols = [col for col in _columns(s, "counted_ballots") if col != "ctid"]
        query = f"SELECT {', '.join(_select(db, col) for col in cb_cols)} FROM counted_ballots "  # noqa: S608
        ballots = [tuple(map(_norm, row)) for row in s.execute(text(query + "WHERE proposal_id = :p"), {"p": p.id})]
        assert len(ballots) == n
        joins = 0
        for table, member_cols in _member_columns(s).items():
            for col in _columns(s, table):
                for mcol in member_cols:
                    reach: dict[str, set[object]] = {}
                    query = f'SELECT {_select(db, col)}, "{mcol}" FROM "{table}"'  # noqa: S608 (the schema's)
                    for value, member in s.execute(text(query)):
                        if value is not None:
                            reach.setdefault(_norm(value), set()).add(member)
                    for i in range(len(cb_cols)):
                        sets = {frozenset(reach.get(row[i], ())) for row in ballots if row[i] is not None}
                        assert len(sets) <= 1, (f"counted_ballots.{cb_cols[i]} = {table}.{col} links ballots to "
                                                f"different {table}.{mcol}")
                        joins += 1
        assert joins > 500

        # The group-set attack: each member's groups in every shape a column could have held them.
        for m in voters[1:4]:
            gids = sorted(s.scalars(select(GroupMembership.group_id).where(GroupMembership.member_id == m.id)))
            shapes = {",".join(map(str, gids)), json.dumps(gids), json.dumps([str(g) for g in gids])}
            for row in ballots:
                assert not shapes & {str(v) for v in row}

        if db.dialect == "postgresql":
            rows = s.execute(text("SELECT choice::text, xmin::text AS x FROM counted_ballots WHERE proposal_id = :p "
                                  "ORDER BY ctid"), {"p": p.id}).all()
            assert len({r.x for r in rows}) == 1  # all written by the close transaction
            choices = [json.loads(r[0]) for r in rows]
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


def test_breakdown_by_overlapping_groups_is_stored_with_the_result(db, settings):
    """The breakdown is computed at close from each voter's groups and stored suppressed; the unique
    combinations of groups leave no group-sized cell that names anyone."""
    p, _opts, _voters, _receipts, _key, _refs = _secret_vote(db, settings, 100)
    with db.begin() as s:
        services.close_proposal(s, settings, p.id, actor_id=None)
        names = {g.id: g.name for g in s.scalars(select(Group))}
        result = s.get(Proposal, p.id).result
    rows = {names[r["group_id"]]: r for r in result["breakdown"]}
    sets = _group_sets(100)
    for name in GROUP_NAMES:
        size = sum(name in g for g in sets)
        row = rows[name]
        if size < 5:
            assert row["hidden"] and row["ballots"] is None and row["cells"] is None, name
        elif not row["hidden"]:
            assert row["ballots"] == size
            assert all(c["count"] is None or c["count"] == 0 or c["count"] >= 5 for c in row["cells"])
    assert rows["Finance"]["hidden"]  # three members: hidden whole
    assert rows["Riverside"]["ballots"] == sum("Riverside" in g for g in sets)


# --- what erased data leaves in the files ----------------------------------------------------------------------

def _pg_pages(db) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Every page of every relation of the database (tables, indexes, TOAST, catalogs), read raw."""
    with db.engine.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        conn.commit()
        pages: dict[str, list[bytes]] = {}
        rels = conn.execute(text(
            "SELECT c.oid::regclass::text, pg_relation_size(c.oid) / current_setting('block_size')::int "
            "FROM pg_class c WHERE c.relkind IN ('r', 'i', 't', 'm') AND c.relpersistence <> 't'")).all()
        for rel, count in rels:
            for block in range(count):
                page = conn.execute(text("SELECT get_raw_page(:r, 'main', :b)"), {"r": rel, "b": block}).scalar()
                pages.setdefault(rel, []).append(bytes(page))
        conn.rollback()
    return {rel: b"".join(p) for rel, p in pages.items()}


def _sqlite_files(db) -> bytes:  # type: ignore[no-untyped-def]
    path = db.engine.url.database
    blob = b""
    for suffix in ("", "-wal", "-journal"):
        if os.path.exists(path + suffix):
            with open(path + suffix, "rb") as f:
                blob += f.read()
    return blob


def _assert_gone(db, needles: dict[str, bytes]) -> None:  # type: ignore[no-untyped-def]
    if db.dialect == "postgresql":
        pages = _pg_pages(db)
        assert {"proposals", "counted_ballots", "members", "pg_statistic"} <= set(pages)  # read, not skipped
        where = {name: [rel for rel, data in pages.items() if needle in data] for name, needle in needles.items()}
    else:
        data = _sqlite_files(db)
        where = {name: ["file"] for name, needle in needles.items() if needle in data}
    assert not any(where.values()), {k: v for k, v in where.items() if v}


def _needles(key: bytes, refs: list[bytes]) -> dict[str, bytes]:
    return {"ballot key": key} | {f"voter_ref {i}": r for i, r in enumerate(refs)}


def test_deleted_key_and_ballots_are_nowhere_in_the_files(db, settings):
    """Reads the database as a thief with the files would: every page on PostgreSQL (pageinspect), the
    database file and its WAL on SQLite. Before the scrub the key is there to find; after it, nowhere."""
    p, _opts, _voters, _receipts, key, refs = _secret_vote(db, settings, 30)
    # Another proposal stays open: its key and ballots share the pages, and must survive.
    with db.begin() as s:
        other = make_proposal(s, state="open")
        other_key = services.ballot_key(s, other.id)
    with db.begin() as s:
        services.cast_ballot(s, settings, proposal_id=other.id, member_id=_voters[0].id, raw_choice="yes")
    if db.dialect == "sqlite":
        assert key in _sqlite_files(db)  # the test can see what it looks for
    else:
        assert any(key in data for data in _pg_pages(db).values())
    with db.begin() as s:
        services.close_proposal(s, settings, p.id, actor_id=None)
    assert erase_residue(db) is True
    _assert_gone(db, _needles(key, refs))
    if db.dialect == "sqlite":
        assert os.path.getsize(db.engine.url.database + "-wal") == 0
    with db.read() as s:  # the other proposal's key and ballot are intact
        assert services.ballot_key(s, other.id) == other_key
        assert services.current_choice(s, s.get(Proposal, other.id), _voters[0].id) == "yes"


def test_admin_close_and_deadline_close_scrub_after_commit(app, db, settings, admin):
    """The two ways a proposal closes (an admin's early close, the worker at the deadline) both scrub."""
    from tests.conftest import Client

    p, _opts, _voters, _receipts, key, refs = _secret_vote(db, settings, 12)
    with Client(app, base_url="http://testserver") as c:
        c.sign_in(admin.email)
        r = c.form(f"/admin/proposals/{p.id}/close", {"reason": "Decided at the meeting"})
        assert r.status_code == 303
    with db.read() as s:
        assert s.get(Proposal, p.id).state == "closed"
    _assert_gone(db, _needles(key, refs))

    with db.begin() as s:
        due = make_proposal(s, state="open", closes_in=dt.timedelta(hours=1))
        due_key = services.ballot_key(s, due.id)
    with db.begin() as s:
        services.cast_ballot(s, settings, proposal_id=due.id, member_id=_voters[0].id, raw_choice="no")
    assert services.run_due_transitions(db, settings, now=utcnow() + dt.timedelta(hours=2)) == 1
    _assert_gone(db, _needles(due_key, [services.voter_ref(due_key, _voters[0].id)]))


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


def test_scrub_waits_for_a_transaction_that_still_sees_the_deleted_rows(db, settings):
    """A read transaction begun before the close still sees the deleted ballots: the rewrite (PostgreSQL) would
    copy them and the checkpoint (SQLite) cannot finish. The scrub says so, and succeeds once it has ended."""
    p, _opts, _voters, _receipts, key, refs = _secret_vote(db, settings, 6)
    with db.engine.connect() as reader:
        if db.dialect == "postgresql":
            reader.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # (It reads another table: it holds a snapshot, not a lock on the ballots.)
        assert reader.execute(select(func.count()).select_from(Participation)).scalar() == 6
        with db.begin() as s:
            services.close_proposal(s, settings, p.id, actor_id=None)
        assert erase_residue(db, attempts=1) is False
        reader.rollback()
    assert erase_residue(db, attempts=3, wait_s=0.2) is True
    _assert_gone(db, _needles(key, refs))
