"""The `plenary` command: serve, worker, inbound, migrate, setup-link, create-admin, import-members, demo, backup,
smtp-sink."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
from collections.abc import Sequence

from app.settings import ROOT, Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"plenary: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def migrate(settings: Settings) -> None:
    from alembic import command
    from alembic.config import Config

    if settings.is_sqlite:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def setup_link(settings: Settings) -> str | None:
    """A fresh one-time setup link while no admin exists (older links stop working)."""
    from app.db import Database
    from app.members.services import create_setup_token

    db = Database(settings.database_url)
    try:
        with db.begin() as s:
            token = create_setup_token(s)
    finally:
        db.dispose()
    return settings.url(f"/setup/{token}") if token else None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()
    migrate(settings)
    link = setup_link(settings)
    if link:
        print("\n  Plenary has no admin yet. Open this one-time link to set up your organization:\n"
              f"\n    {link}\n\n  (or run `make demo` for a sample organization)\n", flush=True)
    print(f"  Serving on http://{args.host}:{args.port}  (base URL for links: {settings.base_url})\n", flush=True)
    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port,
                log_level=settings.log_level.lower(), proxy_headers=args.proxy_headers,
                forwarded_allow_ips=args.forwarded_allow_ips)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from app.db import Database, set_db_threads
    from app.jobs.worker import run_forever

    settings = _settings()
    set_db_threads(settings.db_threads, settings.database_url)
    db = Database(settings.database_url)
    try:
        asyncio.run(run_forever(settings, db, name=args.name or f"worker-{secrets.token_hex(3)}",
                                job_lease_s=args.job_lease))
    except KeyboardInterrupt:
        pass
    finally:
        db.dispose()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    migrate(_settings())
    print("Database is up to date.")
    return 0


def cmd_setup_link(args: argparse.Namespace) -> int:
    settings = _settings()
    migrate(settings)
    link = setup_link(settings)
    if not link:
        print("An admin exists already; sign in instead.", file=sys.stderr)
        return 1
    print(link)
    return 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from app import security
    from app.db import Database
    from app.members.guard import audit
    from app.members.models import Member, Organization, Role, Status
    from app.members.services import MemberError, clean_name, normalize_email

    settings = _settings()
    migrate(settings)
    try:
        email = normalize_email(args.email)
        name = clean_name(args.name or email.split("@")[0])
    except MemberError as exc:
        print(f"plenary: {exc}", file=sys.stderr)
        return 2
    password = args.password or secrets.token_urlsafe(12)
    problem = security.password_problem(password, (email, name))
    if problem:
        print(f"plenary: {problem}", file=sys.stderr)
        return 2
    ctx = security.password_context(settings.password_hash_rounds, settings.password_hash_memory_kib)
    db = Database(settings.database_url)
    try:
        with db.begin() as s:
            if s.get(Organization, 1) is None:
                s.add(Organization(id=1, name=args.org or "Plenary", time_zone="UTC"))
            member = s.scalar(select(Member).where(Member.email == email))
            if member is None:
                member = Member(email=email, name=name)
                s.add(member)
            member.role, member.status = Role.ADMIN, Status.ACTIVE
            member.password_hash = security.hash_password(password, ctx)
            s.flush()
            audit(s, "member.create_admin", actor_id=None, object_type="member", object_id=member.id,
                  summary=f"{email} made admin from the command line")
    finally:
        db.dispose()
    print(f"Admin {email} is ready." + ("" if args.password else f" Password: {password}"))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.members.import_cli import run_import

    settings = _settings()
    migrate(settings)
    return run_import(args.file, dry_run=args.dry_run, skip_errors=args.skip_errors, settings=settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import fill_demo

    settings = _settings()
    migrate(settings)
    return fill_demo(settings)


def cmd_backup(args: argparse.Namespace) -> int:
    from app.backup import BackupError, backup

    try:
        path = backup(_settings(), args.output or None)
    except BackupError as exc:
        print(f"plenary: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"Backup written to {path} ({path.stat().st_size:,} bytes).")
    return 0


def cmd_smtp_sink(args: argparse.Namespace) -> int:
    from app.mail.sink import SmtpSink

    sink = SmtpSink(directory=args.dir)
    port = sink.start(args.host, args.port)
    print(f"SMTP sink on {args.host}:{port}, writing messages to {args.dir}. "
          f"Use PLENARY_SMTP_URL=smtp://{args.host}:{port}. Ctrl-C stops it.", flush=True)
    try:
        asyncio.run(_forever())
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
    return 0


def cmd_inbound(args: argparse.Namespace) -> int:
    from app.db import Database
    from app.mail.inbound_smtp import InboundServer

    settings = _settings()
    if settings.reply_to_domain is None:
        print("plenary: replies by email are off (set PLENARY_REPLY_DOMAIN, or a base URL with a domain name); "
              "serving anyway, but no message carries a reply address.", file=sys.stderr)
    db = Database(settings.database_url)
    server = InboundServer(db, settings)
    host = args.host or settings.inbound_host
    try:
        port = server.start(host, args.port if args.port is not None else settings.inbound_port)
    except OSError as exc:
        db.dispose()
        print(f"plenary: cannot listen on {host}: {exc}", file=sys.stderr)
        return 1
    print(f"Inbound SMTP on {host}:{port}: replies to reply+…@{settings.reply_to_domain or '(off)'} become "
          "comments. Ctrl-C stops it.", flush=True)
    try:
        asyncio.run(_forever())
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        db.dispose()
    return 0


async def _forever() -> None:
    while True:
        await asyncio.sleep(3600)


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 < seconds < 86_400 * 7:
        raise argparse.ArgumentTypeError(f"must be more than 0 and less than a week, not {value!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plenary", description="Plenary: ask all your members.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="migrate the database and serve the web app (with its worker)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* from --forwarded-allow-ips")
    s.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("worker", help="run background jobs and send mail (for more than one process)")
    s.add_argument("--name", default="")
    s.add_argument("--job-lease", type=_positive_seconds, default=300.0, metavar="SECONDS",
                   help="how long a job this worker claimed stays its own; if the worker dies, another one runs "
                        "the job after this (default 300; longer than your slowest job)")
    s.set_defaults(fn=cmd_worker)

    s = sub.add_parser("inbound", help="receive members' email replies over SMTP and post them as comments")
    s.add_argument("--host", default="", help="default: PLENARY_INBOUND_HOST")
    s.add_argument("--port", type=int, default=None, help="default: PLENARY_INBOUND_PORT")
    s.set_defaults(fn=cmd_inbound)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)
    sub.add_parser("setup-link", help="print a one-time link to create the first admin").set_defaults(
        fn=cmd_setup_link)

    s = sub.add_parser("create-admin", help="create an admin account (or make a member admin)")
    s.add_argument("email")
    s.add_argument("--name", default="")
    s.add_argument("--password", default="", help="default: a random password, printed")
    s.add_argument("--org", default="", help="organization name, if none exists yet")
    s.set_defaults(fn=cmd_create_admin)

    s = sub.add_parser("import-members", help="import members from a CSV file (name,email,groups)")
    s.add_argument("file")
    s.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    s.add_argument("--skip-errors", action="store_true", help="import the good rows of a file with errors")
    s.set_defaults(fn=cmd_import)

    sub.add_parser("demo", help="fill an empty database with a sample organization").set_defaults(fn=cmd_demo)

    s = sub.add_parser("backup", help="copy the database to a file, safely while Plenary runs")
    s.add_argument("--output", "-o", default="", metavar="FILE",
                   help="where to write it (default: var/backups/plenary-<UTC time>.db, or .dump on PostgreSQL)")
    s.set_defaults(fn=cmd_backup)

    s = sub.add_parser("smtp-sink", help="a local SMTP server that stores what it receives (development)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=1025)
    s.add_argument("--dir", default=str(ROOT / "var" / "mail"))
    s.set_defaults(fn=cmd_smtp_sink)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
