"""The benchmark's database, built once per backend and copied before every trial.

    python -m tests.bench.seed build --url sqlite:///DIR/plenary-template.sqlite3 --out DIR/plenary-sqlite.json
    python -m tests.bench.seed fresh --template-url URL --url URL   # copy the template, mark sessions as seen
    python -m tests.bench.seed drop --url URL [--url URL]          # PostgreSQL: drop what the bench created

What `build` creates, through the app's own services wherever the state matters:
- the organization and an admin (member 1), 50,000 members in all (bulk insert: the directory's haystack), and a
  group "Voters" of members 1..2,000 (the admin included), each of whom gets a session from `start_session`;
- proposal 1, open: single choice, 4 options, an open ballot with a live tally (what the Django polls peer
  shows), put to the Voters; 1,000 ballots cast by members 1..1,000 through `cast_ballot`;
- proposal 2, closed: the same, but a secret ballot; 1,000 ballots through `cast_ballot`, then closed through
  `close_proposal` (count, shuffle into counted_ballots, erase the key, queue 2,000 results emails);
- proposal 3, closed, 100,000 ballots: there are not 100,000 members, so its counted ballots are synthetic and
  bulk-inserted, and its stored result is computed by the real tally (`ballot_rules.count`, `build_result`,
  `breakdown`) over exactly those rows, as `close_proposal` does (the synthetic voters' groups feed the
  breakdown and, as at a real close, are not stored with the counted ballots);
- proposals 4 and 5, open, the same question with 5 and with 5,000 comments (a fifth of them replies, a mix of
  stances and endorsements; bulk-inserted, their counts rebuilt by `comments.services.recount`): the page of a
  short and of a long discussion.

`build` writes a JSON file for the driver: the CSRF token, the session tokens (first line: the admin) and the
proposal ids; the session tokens alone go to a text file beside it, one a line, for the wrk script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import secrets
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine, delete, insert, make_url, select, text, update

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app import security  # noqa: E402
from app.comments.models import Comment  # noqa: E402
from app.comments.services import recount  # noqa: E402
from app.db import Database, utcnow  # noqa: E402
from app.members.auth import start_session  # noqa: E402
from app.members.models import Group, GroupMembership, Member, Organization, Role, Status, UserSession  # noqa: E402
from app.proposals import services as proposal_services  # noqa: E402
from app.proposals.forms import ProposalInput  # noqa: E402
from app.proposals.models import Method, Option, Proposal, State, Visibility  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.voting import ballots as ballot_rules  # noqa: E402
from app.voting.breakdown import breakdown  # noqa: E402
from app.voting.models import BallotKey, CountedBallot  # noqa: E402
from app.voting.results import build_result  # noqa: E402
from app.voting.services import cast_ballot, close_proposal  # noqa: E402

MEMBERS = 50_000
VOTERS = 2_000  # members with a session, in the "Voters" group
BALLOTS = 1_000
BIG = 100_000
BIG_ELIGIBLE = 120_000
OPTIONS = ("Weekly digest email", "Monthly digest email", "In-app notifications only", "No notifications")

_FIRST = ("Ada Alan Amara Anders Ann Beatriz Bilal Camille Carlos Chen Dara Dmitri Elena Emeka Fatima Felix Grace "
          "Hana Hugo Ines Ivan Jamal Jana Jonas Kai Kamala Lars Leila Luca Maya Mateo Nadia Noah Olga Omar Priya "
          "Rafael Rosa Samir Sara Sofia Tariq Tomas Uma Victor Wei Yara Yusuf Zoe")
_LAST = ("Abbott Adeyemi Alvarez Andersen Baker Banerjee Becker Bianchi Castillo Chowdhury Costa Dubois Eriksson "
         "Fischer Garcia Gomez Haddad Hansen Ito Jansen Kaur Kim Kowalski Lambert Lopez Martin Meyer Mori Nakamura "
         "Nguyen Novak Okafor Olsen Park Patel Petrov Quinn Rossi Santos Schmidt Silva Smith Tanaka Urban Varga "
         "Wagner Weber Yilmaz Zhang Zimmermann")
FIRST, LAST = tuple(_FIRST.split()), tuple(_LAST.split())


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, base_url="http://127.0.0.1:8000", secret_key="b" * 40, env="test")


def _migrate(url: str) -> None:
    from app.cli import migrate

    migrate(settings_for(url))


def _proposal_input(*, title: str, secret: bool, visibility: str, group_id: int | None) -> ProposalInput:
    """A single-choice question with the four options; put to one group, or to everyone (group_id None)."""
    return ProposalInput(
        kind="question", title=title, summary="How should members hear about new proposals?",
        body_md="We can send a **weekly** or **monthly** digest, only notify in the app, or not notify at all.\n\n"
                "Pick the one you prefer; the most popular choice becomes the default for everyone.",
        current_text="", proposed_text="", method=Method.SINGLE, threshold="1/2", threshold_strict=True,
        quorum=None, allow_none=False, max_picks=None, max_score=5, options=list(OPTIONS), secret=secret,
        visibility=visibility, publish_choices=False, audience_all=group_id is None,
        group_ids=[] if group_id is None else [group_id], opens_at=None, closes_at=utcnow() + dt.timedelta(days=30))


def _members(db: Database) -> None:
    rng = random.Random(7)
    now = utcnow()
    rows = []
    for i in range(2, MEMBERS + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append({"id": i, "email": f"{first}.{last}.{i}@members.example".lower(), "name": f"{first} {last}",
                     "role": Role.MEMBER, "status": Status.ACTIVE, "created_at": now})
    with db.begin() as s:
        s.add(Organization(id=1, name="Bench Co-op", time_zone="UTC"))
        s.add(Member(id=1, email="admin@members.example", name="Ada Admin", role=Role.ADMIN, status=Status.ACTIVE))
        s.flush()
        for start in range(0, len(rows), 5_000):
            s.execute(insert(Member), rows[start:start + 5_000])
        voters = Group(name="Voters", description="Members who take part in the bench")
        s.add(voters)
        s.add(Group(name="Board", description="An empty group"))
        s.flush()
        s.execute(insert(GroupMembership), [{"group_id": voters.id, "member_id": m} for m in range(1, VOTERS + 1)])
    if db.dialect == "postgresql":  # ids were given explicitly: move the sequence past them
        with db.begin() as s:
            s.execute(text("SELECT setval(pg_get_serial_sequence('members', 'id'), (SELECT max(id) FROM members))"))


def _sessions(db: Database, settings: Settings) -> list[str]:
    with db.begin() as s:
        members = list(s.scalars(select(Member).where(Member.id <= VOTERS).order_by(Member.id)))
        return [start_session(s, settings, m, ip="127.0.0.1", user_agent="wrk") for m in members]


def _open(db: Database, settings: Settings, *, title: str, secret: bool, visibility: str) -> int:
    with db.begin() as s:
        group_id = s.scalar(select(Group.id).where(Group.name == "Voters"))
        p = proposal_services.create_proposal(
            s, _proposal_input(title=title, secret=secret, visibility=visibility, group_id=group_id), actor_id=1)
        s.flush()
        proposal_services.publish(s, settings, p.id, when="now", actor_id=1)
        return p.id


def _cast(db: Database, settings: Settings, proposal_id: int, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with db.begin() as s:
        option_ids = list(s.scalars(select(Option.id).where(Option.proposal_id == proposal_id)
                                    .order_by(Option.position)))
        weights = (40, 30, 20, 10)
        for member_id in range(1, n + 1):
            choice = str(rng.choices(option_ids, weights)[0])
            cast_ballot(s, settings, proposal_id=proposal_id, member_id=member_id, raw_choice=choice)


def _big_closed(db: Database, settings: Settings) -> int:
    """Proposal 3: 100,000 synthetic counted ballots, its result from the real tally over those rows."""
    pid = _open(db, settings, title="Which newsletter format should the federation adopt?", secret=True,
                visibility=Visibility.AFTER_CLOSE)
    rng = random.Random(11)
    with db.begin() as s:
        p = s.get(Proposal, pid)
        options = list(s.scalars(select(Option).where(Option.proposal_id == pid).order_by(Option.position)))
        group_id = s.scalar(select(Group.id).where(Group.name == "Voters"))
        ids = [str(o.id) for o in options]
        rows = []
        for _ in range(BIG):
            receipt = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=16))
            rows.append(SimpleNamespace(
                choice=rng.choices(ids, (35, 30, 25, 10))[0],
                receipt_hash=hashlib.sha256(f"receipt:{receipt}".encode()).hexdigest(),
                groups=(group_id,) if rng.random() < 0.3 else (), voter_id=None))
        counted = ballot_rules.count(p, [(o.id, o.label) for o in options], [r.choice for r in rows],
                                     eligible=BIG_ELIGIBLE)
        result = build_result(p, counted)
        result["integrity"] = {"ballots": BIG, "participants": BIG, "ok": True}
        result["breakdown"] = breakdown(p, options, [(r.choice, r.groups) for r in rows])
        for start in range(0, BIG, 10_000):
            s.execute(insert(CountedBallot), [
                {"id": secrets.token_bytes(16), "proposal_id": pid, "choice": r.choice,
                 "receipt_hash": r.receipt_hash, "voter_id": None}
                for r in rows[start:start + 10_000]])
        now = utcnow()
        p.eligible_count = BIG_ELIGIBLE
        s.execute(delete(BallotKey).where(BallotKey.proposal_id == pid))
        p.state, p.closed_at, p.result, p.ballots_counted = State.CLOSED, now, result, BIG
    return pid


_SENTENCES = (
    "I think the **weekly** digest is the right call: most of us read mail on Sunday evenings.",
    "Monthly is too slow when a vote only stays open for two weeks.",
    "Could we try in-app notifications first and see how many people actually open them?",
    "Please keep an option for members without a smartphone; email reaches everyone.",
    "Our branch voted on something similar last year, see [the minutes](https://example.org/minutes).",
    "Fewer emails would be welcome, but not at the price of missing a deadline.",
)


def _discussion(db: Database, settings: Settings, *, title: str, comments: int, seed: int) -> int:
    """An open proposal with `comments` comments by the voters, a fifth of them replies."""
    pid = _open(db, settings, title=title, secret=False, visibility=Visibility.LIVE)
    rng = random.Random(seed)
    now = utcnow()
    replies = comments // 5
    top = comments - replies

    def row(i: int, kind: str, parent_id: int | None) -> dict[str, object]:
        body = " ".join(rng.sample(_SENTENCES, rng.randint(1, 3)))
        return {"proposal_id": pid, "author_id": rng.randint(1, VOTERS), "kind": kind, "parent_id": parent_id,
                "paragraph": 0, "stance": rng.choice(("for", "against", "neutral", None)), "body_md": body,
                "endorsement_count": rng.choice((0, 0, 0, 1, 2, 5, 12)),
                "created_at": now - dt.timedelta(minutes=comments - i), "hidden_reason": ""}

    with db.begin() as s:
        for start in range(0, top, 1_000):
            s.execute(insert(Comment), [row(i, "comment", None) for i in range(start, min(top, start + 1_000))])
        parents = list(s.scalars(select(Comment.id).where(Comment.proposal_id == pid)))
        if replies:
            s.execute(insert(Comment), [row(top + i, "reply", rng.choice(parents)) for i in range(replies)])
        recount(s, pid)
    return pid


def build(url: str, out: Path) -> None:
    t0 = time.monotonic()
    _migrate(url)
    db = Database(url)
    settings = settings_for(url)
    try:
        _members(db)
        tokens = _sessions(db, settings)
        open_id = _open(db, settings, title="How should members hear about new proposals?", secret=False,
                        visibility=Visibility.LIVE)
        _cast(db, settings, open_id, BALLOTS, seed=1)
        closed_id = _open(db, settings, title="Which day should the general assembly meet?", secret=True,
                          visibility=Visibility.AFTER_CLOSE)
        _cast(db, settings, closed_id, BALLOTS, seed=2)
        with db.begin() as s:
            close_proposal(s, settings, closed_id, actor_id=1, org_name="Bench Co-op")
        big_id = _big_closed(db, settings)
        short_id = _discussion(db, settings, title="Should the newsletter have a members' letters page?",
                               comments=5, seed=3)
        long_id = _discussion(db, settings, title="Should the annual fee follow inflation?", comments=5_000,
                              seed=4)
        if db.dialect == "sqlite":
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        db.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    sessions_file = out.with_suffix(".sessions")
    sessions_file.write_text("\n".join(tokens) + "\n")
    out.write_text(json.dumps({
        "csrf": security.new_token(), "sessions_file": str(sessions_file), "sessions": len(tokens),
        "proposals": {"open": open_id, "closed_1k": closed_id, "closed_100k": big_id,
                      "comments_5": short_id, "comments_5k": long_id},
        "members": MEMBERS, "seconds": round(time.monotonic() - t0, 1)}, indent=1))
    print(f"seeded {url.split('://')[0]} in {time.monotonic() - t0:.1f} s: proposals open={open_id} "
          f"closed_1k={closed_id} closed_100k={big_id} comments_5={short_id} "
          f"comments_5k={long_id}, {len(tokens)} sessions", flush=True)


def fresh(template_url: str, url: str) -> None:
    """A trial's database: a copy of the template, with every session seen just now (as for members who are
    using the site), so no request pays for the once-every-5-minutes session touch."""
    if template_url.startswith("sqlite"):
        src, dst = Path(make_url(template_url).database), Path(make_url(url).database)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(dst) + suffix).unlink(missing_ok=True)
        shutil.copyfile(src, dst)
    else:
        name, template = make_url(url).database, make_url(template_url).database
        admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        admin.dispose()
    db = Database(url)
    try:
        with db.begin() as s:
            s.execute(update(UserSession).values(last_seen_at=utcnow()))
    finally:
        db.dispose()


def drop_pg_databases(urls: list[str]) -> None:
    for url in urls:
        admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
        admin.dispose()


def create_pg_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--url", required=True)
    b.add_argument("--out", required=True, type=Path)
    f = sub.add_parser("fresh")
    f.add_argument("--template-url", required=True)
    f.add_argument("--url", required=True)
    d = sub.add_parser("drop", help="drop the bench's PostgreSQL databases")
    d.add_argument("--url", action="append", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "build":
        if a.url.startswith("sqlite"):
            path = Path(make_url(a.url).database)
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        else:
            create_pg_database(a.url)
        build(a.url, a.out)
    elif a.cmd == "drop":
        drop_pg_databases(a.url)
    else:
        fresh(a.template_url, a.url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
