"""`make bench`: Plenary beside the reference peers in ../shared/bench, in one run on one machine.

Run it with the peers' interpreter (it imports their driver, which needs psutil); Plenary itself runs under
`--app-python`. Steps:

1. copy ../shared/bench (or $PLENARY_BENCH_SHARED) to a temporary folder and load its driver (run.py) from there,
   so nothing is ever written into the shared folder;
2. HTTP rows: the Django polls peer (gunicorn, 2 sync workers), the bare Starlette limits, and Plenary's targets
   from tests/bench/*.toml (SQLite, one process; PostgreSQL, one process and 2 workers). Every trial is the
   driver's own: fresh database, server started and stopped by PID, wrk -t2 -cN -dS on 127.0.0.1, peak RSS and
   CPU of the server's process tree. Plenary's trials sign in as seeded members (session cookie + CSRF cookie,
   token echoed in the form, Sec-Fetch-Site sent) with tests/bench/plenary.lua instead of the shared script;
   endpoints named "... (htmx)" also send HX-Request;
3. in-process rows (inprocess.py): an instant-runoff count of 100,000 ballots x 8 options, and 10,000 results
   emails through the real outbox sender to the shared aiosmtpd sink running as its own process;
4. one table (markdown) with req/s, p50/p99, server CPU ms per request, peak RSS and the ratios to the Django
   peer and to the Starlette limit of the same role; written to --out and printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

PEER = "django-gunicorn-sync"
LIMIT = "starlette-limit"
# What each role is compared with on the limit side: the same page from stdlib sqlite3 + Jinja, and for the
# vote the bare Starlette + SQLAlchemy Core upsert (prebuilt statement, sync engine) the targets name.
LIMIT_ROLE = {"detail": "detail(sqlite3+jinja)", "results": "results(sqlite3+jinja)",
              "vote": "vote(sa-sync core prebuilt inline)"}
PEER_ENDPOINTS = ("detail", "vote", "results")
LIMIT_ENDPOINTS = ("a:const-html", "b:jinja-const", "detail(sqlite3+jinja)", "results(sqlite3+jinja)",
                   "c:vote(sqlite3)", "vote(sa-sync core prebuilt inline)")


def load_driver(copy: Path) -> Any:
    spec = importlib.util.spec_from_file_location("bench_driver", copy / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def prepare_copy(shared: Path, work: Path) -> Path:
    copy = work / "bench"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(shared, copy, ignore=shutil.ignore_patterns(".venv", "data", "results", "__pycache__"))
    for path in [copy, *copy.rglob("*")]:  # the shared files are read-only; the copy's data/ must be writable
        path.chmod(path.stat().st_mode | 0o200)
    return copy


class PlenaryHooks:
    """Adapts the shared driver to Plenary's sign-in: sessions and CSRF for targets with csrf = "plenary"."""

    def __init__(self, driver: Any, app_python: str, pg_url: str) -> None:
        self.driver = driver
        self.app_python = app_python
        self.pg_url = pg_url.rstrip("/")
        self.shared_lua = driver.LUA
        self._trial = driver.trial
        self._http = driver.http_request
        self._expand = driver.expand
        self.active: tuple[int, dict[str, str]] | None = None
        driver.expand = self.expand
        driver.trial = self.trial
        driver.http_request = self.http_request

    def expand(self, s: str, t_vars: dict[str, str]) -> str:
        s = s.replace("{repo}", str(REPO)).replace("{app_python}", self.app_python).replace("{pg}", self.pg_url)
        return self._expand(s, t_vars)

    def http_request(self, method: str, port: int, path: str, body: str = "", headers: dict | None = None,
                     timeout: float = 10) -> Any:
        if self.active and self.active[0] == port:
            headers = {**self.active[1], **(headers or {})}
        return self._http(method, port, path, body, headers, timeout)

    def trial(self, t: Any, ep: Any, rep: int, args: Any, logdir: Path) -> dict:
        if t.csrf != "plenary":
            self.driver.LUA = self.shared_lua
            return self._trial(t, ep, rep, args, logdir)
        # The seed file exists once the target's `prepare` has run (before the first trial).
        seed = json.loads(Path(t.env["BENCH_SEED_JSON"]).read_text())
        cookie = t.env.get("BENCH_SESSION_COOKIE", "plenary_session")
        admin = Path(seed["sessions_file"]).read_text().split()[0]
        htmx = ep.name.endswith("(htmx)")
        env = {"BENCH_SESSIONS_FILE": seed["sessions_file"], "BENCH_CSRF": seed["csrf"],
               "BENCH_SESSION_COOKIE": cookie, "BENCH_HX": "1" if htmx else "0"}
        # The preflight request (one, before wrk) as the admin, the token in the header instead of the form.
        preflight = {"Cookie": f"{cookie}={admin}; plenary_csrf={seed['csrf']}", "X-CSRF-Token": seed["csrf"],
                     "Sec-Fetch-Site": "same-origin"}
        if htmx:
            preflight["HX-Request"] = "true"
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        self.driver.LUA = HERE / "plenary.lua"
        self.active = (t.port, preflight)
        try:
            return self._trial(t, ep, rep, args, logdir)
        finally:
            self.active = None
            self.driver.LUA = self.shared_lua
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


# --- the table ----------------------------------------------------------------------------------------------

def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}x" if b else "-"


def render_http(rows: list[dict], args: Any) -> str:
    by = {(r["target"], r["endpoint"]): r for r in rows if r.get("n")}
    peer = {r["role"]: r for r in rows if r["target"] == PEER and r.get("role") and r.get("n")}
    limit = {role: by.get((LIMIT, name)) for role, name in LIMIT_ROLE.items()}
    out = [f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s after a {args.warmup}s warm-up, "
           f"{args.repeats} repeat(s), medians. Ratios: req/s over the peer's (or the limit's) req/s for the same "
           f"role; CPU: server CPU ms/req over the peer's. procs = server processes (master + workers).\n",
           "| target | endpoint | req/s | p50 ms | p99 ms | server CPU ms/req | peak RSS MiB (procs) | errors "
           "| vs Django req/s | vs Django CPU/req | vs limit req/s |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if not r.get("n"):
            out.append(f"| {r['target']} | {r['endpoint']} | FAILED: {r.get('error', '')[:100]} ||||||||")
            continue
        role = r.get("role") or ""
        p, lim = peer.get(role), limit.get(role)
        out.append(
            f"| {r['target']} | {r['endpoint']} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['cpu_ms_per_req']:.2f} | {r['peak_rss_mib']:.0f} ({r['server_procs']}) | "
            f"{r['errors']}/{r['requests']} | {_ratio(r['rps'], p['rps'] if p else None)} | "
            f"{_ratio(r['cpu_ms_per_req'], p['cpu_ms_per_req'] if p else None)} | "
            f"{_ratio(r['rps'], lim['rps'] if lim else None)} |")
    return "\n".join(out) + "\n"


def render_inprocess(res: dict) -> str:
    out = ["| in-process row | figure | detail |", "|---|---:|---|"]
    for row in res.get("rows", []):
        out.append(f"| {row['name']} | {row['figure']} | {row['detail']} |")
    return "\n".join(out) + "\n"


# --- main ---------------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.environ.get("PLENARY_BENCH_SHARED", str(REPO.parent / "shared" / "bench")),
                    help="the shared bench folder (default: ../shared/bench next to the repository)")
    ap.add_argument("--app-python", default=str(REPO / ".venv" / "bin" / "python"),
                    help="the interpreter with Plenary and its dev extra installed")
    ap.add_argument("--pg-url", default=os.environ.get("PLENARY_BENCH_PG_URL",
                                                        "postgresql+psycopg://postgres@127.0.0.1:5432"),
                    help="PostgreSQL server (without a database name); '' skips the PostgreSQL targets")
    ap.add_argument("--work", default="", help="work folder (default: a new temporary one, removed afterwards)")
    ap.add_argument("--only", default="", help="comma list of target names (default: all)")
    ap.add_argument("--endpoints", default="", help="comma list of endpoint names (default: the table's)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: http, irv, mail")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--base-port", type=int, default=8100)
    ap.add_argument("--out", default=str(REPO / "var" / "bench" / "latest.md"))
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    started = time.monotonic()

    shared = Path(args.shared).resolve()
    if not (shared / "run.py").is_file():
        print(f"bench: no shared bench at {shared} (set PLENARY_BENCH_SHARED)", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    own_work = not args.work
    work = Path(args.work or tempfile.mkdtemp(prefix="plenary-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sections = [f"# Plenary bench {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n",
                f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]} (peers); "
                f"shared bench: {shared.name}\n"]
    try:
        copy = prepare_copy(shared, work)
        driver = load_driver(copy)
        hooks = PlenaryHooks(driver, args.app_python, args.pg_url)
        if "http" not in skip:
            table = run_http(driver, hooks, copy, args)
            sections += ["## HTTP\n", table]
        inproc = {}
        if not {"irv", "mail"} <= skip:
            inproc = run_inprocess(args, copy, work, skip)
            sections += ["## In process\n", render_inprocess(inproc)]
        sections.append(f"\nWhole run: {time.monotonic() - started:.0f} s.\n")
        text = "\n".join(sections)
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps({"inprocess": inproc}, indent=1))
        print(text)
        print(f"bench: written to {out}", file=sys.stderr)
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def run_http(driver: Any, hooks: PlenaryHooks, copy: Path, args: Any) -> str:
    targets = driver.load_targets([copy / "targets"], args.base_port)
    targets = [t for t in targets if t.name in (PEER, LIMIT)]
    for t in targets:
        keep = PEER_ENDPOINTS if t.name == PEER else LIMIT_ENDPOINTS
        t.endpoints = [e for e in t.endpoints if e.name in keep]
    ours = driver.load_targets([HERE], args.base_port + len(targets))
    if not args.pg_url:
        ours = [t for t in ours if t.env.get("PLENARY_DATABASE_URL", "").startswith("sqlite")]
    targets += ours
    if args.only:
        keep_t = set(args.only.split(","))
        targets = [t for t in targets if t.name in keep_t]
    if args.endpoints:
        keep_e = set(args.endpoints.split(","))
        for t in targets:
            t.endpoints = [e for e in t.endpoints if e.name in keep_e]
    driver.DATA.mkdir(exist_ok=True)
    logdir = driver.RESULTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    done_prepare: set[str] = set()
    for t in targets:
        env = {**os.environ, **t.env}
        for cmd in t.prepare:
            if cmd in done_prepare:  # the PostgreSQL targets share one seeded template
                continue
            t0 = time.monotonic()
            driver.run_shell(cmd, t.cwd, env)
            done_prepare.add(cmd)
            print(f"bench: prepared {t.name} in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    records = []
    total = args.repeats * sum(len(t.endpoints) for t in targets)
    i = 0
    for rep in range(1, args.repeats + 1):
        for t in targets:
            for ep in t.endpoints:
                i += 1
                rec = driver.trial(t, ep, rep, args, logdir)
                records.append(rec)
                if rec["ok"]:
                    print(f"[{i}/{total}] {t.name} {ep.name}: {rec['rps']:,.0f} req/s p99={rec['p99_us'] / 1000:.1f}ms "
                          f"cpu/req={rec['cpu_ms_per_req']:.2f}ms rss={rec['peak_rss_mib']:.0f}MiB "
                          f"non2xx={rec['non_2xx_3xx']}", file=sys.stderr, flush=True)
                else:
                    print(f"[{i}/{total}] {t.name} {ep.name}: FAILED {rec.get('error')}", file=sys.stderr, flush=True)
    pg = sorted({t.env["PLENARY_DATABASE_URL"] for t in targets
                 if t.env.get("PLENARY_DATABASE_URL", "").startswith("postgresql")})
    if pg:  # the trial database and the template it was copied from
        drop = [args.app_python, "-m", "tests.bench.seed", "drop"]
        for url in pg:
            drop += ["--url", url, "--url", url + "_template"]
        subprocess.run(drop, cwd=REPO, check=False)
    rows = driver.aggregate(records, targets)
    (driver.RESULTS / "plenary-http.json").write_text(json.dumps({"rows": rows, "records": records}, indent=1))
    return render_http(rows, args)


def run_inprocess(args: Any, copy: Path, work: Path, skip: set[str]) -> dict:
    bench_python = str(Path(os.environ.get("BENCH_VENV", copy / ".venv")).resolve() / "bin" / "python")
    cmd = [args.app_python, "-m", "tests.bench.inprocess", "--work", str(work / "inprocess"),
           "--sink", str(copy / "mailbench" / "sink.py"), "--sink-python", bench_python,
           "--skip", ",".join(sorted(skip))]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        return {"rows": [{"name": "in-process rows", "figure": "FAILED", "detail": r.stderr.strip()[-300:]}]}
    return json.loads(r.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
