"""The bench's in-process rows; prints one JSON line ({"rows": [...], ...}) for bench.py.

    python -m tests.bench.inprocess --work DIR --sink ../shared/bench/mailbench/sink.py --sink-python PY

- IRV: 100,000 ranked ballots x 8 options, counted by `count_irv` (random full rankings: the worst case for its
  grouping) and by the close path's `ballot_rules.count` over the stored JSON shape (lists of option ids).
- Mail: a proposal put to 10,000 members is closed through `close_proposal`, which queues the 10,000 results
  emails in the outbox; then a separate process (`send`, below) runs the real worker (`Worker.tick`, whose
  OutboxSender drains the outbox over SMTP) until the outbox is empty, against the shared aiosmtpd counting
  sink in a third process. Reported: messages/s over the drain, the sender process's peak RSS and CPU per
  message, and the sink's count, which must equal 10,000. Three trials (BENCH_MAIL_REPEATS), the median shown:
  one trial on a shared 2-core machine varied by a fifth from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CONNECTIONS = int(os.environ.get("BENCH_MAIL_CONNECTIONS", "16"))  # the sender's default; the plain loop uses as many
RECIPIENTS = 10_000
IRV_BALLOTS = 100_000
IRV_OPTIONS = 8


def _log(msg: str) -> None:
    print(f"inprocess: {msg}", file=sys.stderr, flush=True)


# --- IRV ------------------------------------------------------------------------------------------------------

def irv_rows() -> list[dict]:
    from app.voting import ballots as ballot_rules
    from app.voting.tally import count_irv

    rng = random.Random(2026)
    labels = [f"Option {chr(65 + i)}" for i in range(IRV_OPTIONS)]
    ids = [str(100 + i) for i in range(IRV_OPTIONS)]
    rankings = []
    for _ in range(IRV_BALLOTS):
        order = list(range(IRV_OPTIONS))
        rng.shuffle(order)
        rankings.append(order)
    as_labels = [tuple(labels[i] for i in r) for r in rankings]
    as_stored = [[ids[i] for i in r] for r in rankings]  # what the ballots table's JSON column gives back
    p = SimpleNamespace(method="ranked", public_id="bench-irv", eligible_count=IRV_BALLOTS)

    def best(fn, n: int = 3) -> tuple[float, object]:
        times, result = [], None
        for _ in range(n):
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        return min(times), result

    t_irv, res = best(lambda: count_irv(as_labels, labels, tie_seed="bench"))
    t_close, _ = best(lambda: ballot_rules.count(p, list(zip([int(i) for i in ids], labels, strict=True)),
                                                  as_stored, eligible=IRV_BALLOTS))
    distinct = len(set(as_labels))
    rounds = len(res.rounds)  # type: ignore[attr-defined]
    return [
        {"name": "IRV count, 100,000 ballots x 8 options (count_irv)", "figure": f"{t_irv:.3f} s",
         "detail": f"random full rankings ({distinct:,} distinct), {rounds} rounds; best of 3", "seconds": t_irv},
        {"name": "IRV count as at close (ballot_rules.count on stored choices)", "figure": f"{t_close:.3f} s",
         "detail": "option ids mapped to labels, then count_irv; best of 3", "seconds": t_close},
    ]


# --- mail -----------------------------------------------------------------------------------------------------

def _settings(url: str, smtp_url: str = ""):  # noqa: ANN202
    from app.settings import Settings

    return Settings(database_url=url, base_url="https://plenary.bench.example", secret_key="m" * 40,
                    env="production", smtp_url=smtp_url, mail_from="Bench Co-op <votes@plenary.bench.example>")


def seed_mail(url: str) -> float:
    """10,000 members, one proposal put to all of them, closed: returns the seconds the close took."""
    from sqlalchemy import delete, insert, select

    from app.cli import migrate
    from app.db import Database, utcnow
    from app.mail.models import OutboxMessage
    from app.members.models import Member, Organization, Role, Status
    from app.proposals import services as proposal_services
    from app.proposals.models import Option
    from app.voting.services import cast_ballot, close_proposal
    from tests.bench.seed import _proposal_input

    settings = _settings(url)
    migrate(settings)
    db = Database(url)
    rng = random.Random(5)
    try:
        with db.begin() as s:
            s.add(Organization(id=1, name="Bench Co-op", time_zone="UTC"))
            s.add(Member(id=1, email="admin@members.example", name="Ada Admin", role=Role.ADMIN,
                         status=Status.ACTIVE))
            s.flush()
            s.execute(insert(Member), [
                {"id": i, "email": f"member{i}@members.example", "name": f"Member Número {i}",
                 "role": Role.MEMBER, "status": Status.ACTIVE, "created_at": utcnow()}
                for i in range(2, RECIPIENTS + 1)])
            data = _proposal_input(title="How should members hear about new proposals?", secret=True,
                                   visibility="after_close", group_id=None)
            p = proposal_services.create_proposal(s, data, actor_id=1)
            s.flush()
            proposal_services.publish(s, settings, p.id, when="now", actor_id=1)
            pid = p.id
        with db.begin() as s:
            options = list(s.scalars(select(Option.id).where(Option.proposal_id == pid)))
            for m in range(1, 501):
                cast_ballot(s, settings, proposal_id=pid, member_id=m, raw_choice=str(rng.choice(options)))
            # The announcements opening the proposal queued are not what is measured: only the results go out.
            s.execute(delete(OutboxMessage))
        t0 = time.perf_counter()
        with db.begin() as s:
            close_proposal(s, settings, pid, actor_id=1, org_name="Bench Co-op",
                           now=utcnow() + dt.timedelta(seconds=1))
        return time.perf_counter() - t0
    finally:
        db.dispose()


def send(url: str, port: int) -> dict:
    """The worker, as `plenary worker` runs it, ticking until the outbox is empty (runs in its own process)."""
    from sqlalchemy import func, select

    from app.db import Database
    from app.jobs.worker import Worker
    from app.mail.models import OutboxMessage, OutboxStatus

    settings = _settings(url, smtp_url=f"smtp://127.0.0.1:{port}?connections={CONNECTIONS}")
    db = Database(url)

    def pending() -> int:
        with db.read() as s:
            return s.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)))) or 0

    async def run() -> tuple[float, int]:
        worker = Worker(settings, db, name="bench")
        t0 = time.perf_counter()
        ticks = 0
        try:
            while pending():
                await worker.tick()
                ticks += 1
        finally:
            await worker.close()
        return time.perf_counter() - t0, ticks

    cpu0 = time.process_time()
    seconds, ticks = asyncio.run(run())
    cpu = time.process_time() - cpu0
    with db.read() as s:
        counts = dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    db.dispose()
    return {"seconds": seconds, "ticks": ticks, "cpu_s": cpu, "counts": counts,
            "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def ceiling(url: str, port: int, connections: int) -> dict:
    """The plain loop: the same 10,000 messages as bytes built beforehand (not timed), sent by aiosmtplib over
    `connections` connections, with no database and no bookkeeping: what the SMTP server itself can take of
    this mail on this machine (runs in its own process, like the sender)."""
    from types import SimpleNamespace

    import aiosmtplib
    from sqlalchemy import select

    from app.db import Database
    from app.mail.models import OutboxMessage
    from app.mail.sender import MessageBuilder

    settings = _settings(url)
    db = Database(url)
    builder = MessageBuilder(settings.mail_from)
    date = builder.date_header()
    with db.read() as s:
        rows = s.execute(select(OutboxMessage.to_addr, OutboxMessage.to_name, OutboxMessage.subject,
                                OutboxMessage.text_body, OutboxMessage.html_body, OutboxMessage.headers,
                                OutboxMessage.message_id, OutboxMessage.attachments)).all()
    db.dispose()
    messages = [(r.to_addr, builder.build(SimpleNamespace(**r._mapping), date)) for r in rows]

    async def run() -> float:
        queue = list(reversed(messages))

        async def lane() -> None:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
            await smtp.connect()
            while queue:
                to, raw = queue.pop()
                await smtp.sendmail(builder.envelope_from, [to], raw)
            await smtp.quit()

        t0 = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(connections)))
        return time.perf_counter() - t0

    cpu0 = time.process_time()
    seconds = asyncio.run(run())
    return {"seconds": seconds, "sent": len(messages), "cpu_s": time.process_time() - cpu0,
            "bytes": sum(len(raw) for _, raw in messages) // max(1, len(messages))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MAIL_REPEATS = int(os.environ.get("BENCH_MAIL_REPEATS", "3"))


def _mail_once(work: Path, sink: str, sink_python: str) -> dict:
    """One trial: a fresh database with 10,000 results emails queued, a fresh sink, the worker's sender, then the
    plain loop with the same messages to the same sink."""
    db_path = work / "mail.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db_path}"
    close_s = seed_mail(url)
    _log(f"closed a proposal put to {RECIPIENTS:,} members in {close_s:.2f} s (results emails queued)")
    port = _free_port()
    count_file = work / "sink-count.json"
    count_file.unlink(missing_ok=True)
    sink_proc = subprocess.Popen([sink_python, sink, "--port", str(port), "--count-file", str(count_file)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = sink_proc.stdout.readline() if sink_proc.stdout else ""
        if "ready" not in ready:
            raise RuntimeError(f"the sink did not start: {ready!r}")
        sink_cpu0 = _proc_cpu(sink_proc.pid)
        r = subprocess.run([sys.executable, "-m", "tests.bench.inprocess", "send", "--url", url, "--port",
                            str(port)], cwd=REPO, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"sender failed: {r.stderr[-800:]}")
        sent = json.loads(r.stdout.strip().splitlines()[-1])
        sink_cpu = _proc_cpu(sink_proc.pid) - sink_cpu0
        r = subprocess.run([sys.executable, "-m", "tests.bench.inprocess", "ceiling", "--url", url, "--port",
                            str(port)], cwd=REPO, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"the plain loop failed: {r.stderr[-800:]}")
        plain = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        if sink_proc.poll() is None:
            os.kill(sink_proc.pid, signal.SIGTERM)
            try:
                sink_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(sink_proc.pid, signal.SIGKILL)
                sink_proc.wait(timeout=5)
    received = json.loads(count_file.read_text())["messages"] if count_file.exists() else -1
    received -= plain["sent"]  # the sink counts the plain loop's messages too
    trial = {"close_s": close_s, "sent": sent, "plain": plain, "received": received, "sink_cpu": sink_cpu,
             "rate": RECIPIENTS / sent["seconds"], "plain_rate": plain["sent"] / plain["seconds"]}
    _log(f"mail trial: sender {trial['rate']:,.0f} msgs/s, plain loop {trial['plain_rate']:,.0f} msgs/s, "
         f"sink received {received:,}")
    return trial


def mail_rows(work: Path, sink: str, sink_python: str) -> list[dict]:
    trials = [_mail_once(work, sink, sink_python) for _ in range(max(1, MAIL_REPEATS))]
    # The median trial by the sender's rate, and the plain loop's median rate beside it.
    t = sorted(trials, key=lambda x: x["rate"])[len(trials) // 2]
    plain_rate = sorted(x["plain_rate"] for x in trials)[len(trials) // 2]
    close_s = sorted(x["close_s"] for x in trials)[len(trials) // 2]
    sent, plain, rate = t["sent"], t["plain"], t["rate"]
    received = min(x["received"] for x in trials)
    rates = ", ".join(f"{x['rate']:,.0f}" for x in trials)
    runs = f"median of {len(trials)} trials ({rates} msgs/s)"
    return [
        {"name": "results emails: close + queue 10,000 (close_proposal)", "figure": f"{close_s:.2f} s",
         "detail": "count, shuffle, erase key, compose once, bulk insert", "seconds": close_s},
        {"name": "results emails: 10,000 through the worker's sender to the aiosmtpd sink",
         "figure": f"{rate:,.0f} msgs/s",
         "detail": (f"{runs}; {sent['seconds']:.1f} s; sender peak RSS {sent['maxrss_mib']:.0f} MiB, "
                    f"sender CPU {1000 * sent['cpu_s'] / RECIPIENTS:.2f} ms/msg, sink CPU "
                    f"{1000 * t['sink_cpu'] / RECIPIENTS:.2f} ms/msg; fewest received by the sink in a trial "
                    f"{received:,}; outbox {sent['counts']}"),
         "msgs_per_s": rate, "sender_rss_mib": sent["maxrss_mib"], "received": received,
         "sender_cpu_ms_per_msg": 1000 * sent["cpu_s"] / RECIPIENTS},
        {"name": "ceiling: the same 10,000 messages, plain aiosmtplib loop to the same sink",
         "figure": f"{plain_rate:,.0f} msgs/s",
         "detail": (f"median of {len(trials)} trials; {CONNECTIONS} connections, bytes built beforehand "
                    f"({plain['bytes']:,} bytes a message), no database, plain loop CPU "
                    f"{1000 * plain['cpu_s'] / plain['sent']:.2f} ms/msg; Plenary's sender reaches "
                    f"{100 * rate / plain_rate:.0f}% of it"),
         "msgs_per_s": plain_rate, "share": rate / plain_rate},
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", nargs="?", default="all", choices=["all", "send", "ceiling"])
    ap.add_argument("--work", default="")
    ap.add_argument("--sink", default=str(REPO.parent / "shared" / "bench" / "mailbench" / "sink.py"))
    ap.add_argument("--sink-python", default=sys.executable)
    ap.add_argument("--skip", default="")
    ap.add_argument("--url", default="")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "send":
        print(json.dumps(send(a.url, a.port)))
        return 0
    if a.cmd == "ceiling":
        print(json.dumps(ceiling(a.url, a.port, CONNECTIONS)))
        return 0
    skip = set(filter(None, a.skip.split(",")))
    work = Path(a.work or "var/bench/inprocess")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    rows: list[dict] = []
    if "irv" not in skip:
        rows += irv_rows()
        _log(rows[-2]["name"] + ": " + rows[-2]["figure"])
    if "mail" not in skip:
        rows += mail_rows(work, a.sink, a.sink_python)
        _log(rows[-1]["name"] + ": " + rows[-1]["figure"] + " " + rows[-1]["detail"])
    print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
