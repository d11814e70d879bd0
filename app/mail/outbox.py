"""Compose a message from `templates/email/<kind>/` and write it to the outbox in the caller's transaction.

Nothing is sent here: the sender (app/mail/sender.py) drains the outbox after commit, so a rolled-back action
sends nothing, and the unique `dedupe_key` makes a second enqueue of the same message a no-op.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

import jinja2
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import per_dialect
from app.mail.models import OutboxMessage, OutboxStatus
from app.settings import ROOT, Settings

log = logging.getLogger("plenary.mail")

EMAIL_TEMPLATES = ROOT / "templates" / "email"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # C0, DEL, C1 (NEL), line separators

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(EMAIL_TEMPLATES)),
    autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Composed:
    subject: str
    text: str
    html: str


def one_line(value: str, limit: int = 300) -> str:
    """Header-safe: no CR, LF, other control characters or line separators survive into a header."""
    return _CONTROL.sub(" ", value).strip()[:limit]


def compose(kind: str, context: dict[str, Any]) -> Composed:
    subject = _env.get_template(f"{kind}/subject.txt").render(context)
    text = _env.get_template(f"{kind}/body.txt").render(context)
    html = _env.get_template(f"{kind}/body.html").render(context)
    return Composed(subject=one_line(subject), text=text, html=html)


def message_row(settings: Settings, *, kind: str, to_addr: str, to_name: str = "", member_id: int | None = None,
                context: dict[str, Any], dedupe: str, headers: dict[str, str] | None = None,
                attachments: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The outbox row for one message, composed; `insert_rows` writes many of them at once.

    `attachments`: small text files, each {"filename", "mime_type", "content"} (the sender accepts text/calendar).
    """
    ctx = {"org_name": context.get("org_name", "Plenary"), "base_url": settings.base_url, **context}
    msg = compose(kind, ctx)
    domain = urlsplit(settings.base_url).hostname or "localhost"
    return {
        "dedupe_key": f"{kind}:{dedupe}:{to_addr.lower()}"[:300],
        "kind": kind,
        "member_id": member_id,
        "to_addr": to_addr,
        "to_name": one_line(to_name, 100),
        "subject": msg.subject,
        "text_body": msg.text,
        "html_body": msg.html,
        "headers": headers or {},
        "attachments": attachments or None,
        "message_id": make_msgid(idstring=kind, domain=domain),
        "status": OutboxStatus.PENDING,
    }


# Rows whose dedupe key exists already are skipped. Run on the session's connection: one message's insert built
# per message and run through the ORM cost more than composing the message (a confirmation on every vote).
_INSERT = per_dialect(lambda insert: insert(OutboxMessage).on_conflict_do_nothing(index_elements=["dedupe_key"]))
_ENQUEUE = {name: stmt.returning(OutboxMessage.id) for name, stmt in _INSERT.items()}


def insert_rows(session: Session, settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Write composed rows in bulk; a row whose dedupe key exists already is skipped."""
    stmt = _INSERT[session.get_bind().dialect.name]
    for start in range(0, len(rows), 1000):
        session.execute(stmt, rows[start:start + 1000])
    if rows and not settings.smtp_url:
        log.info("%d message(s) queued (no SMTP configured; read them at /admin/outbox)", len(rows))


def enqueue(
    session: Session,
    settings: Settings,
    *,
    kind: str,
    to_addr: str,
    to_name: str = "",
    member_id: int | None = None,
    context: dict[str, Any],
    dedupe: str,
    headers: dict[str, str] | None = None,
    attachments: list[dict[str, str]] | None = None,
) -> bool:
    """Write one message to the outbox. Returns False when the same (kind, dedupe, recipient) already exists.

    `dedupe` names what the message is about (e.g. "token:17"), so the same event never mails twice.
    """
    values = message_row(settings, kind=kind, to_addr=to_addr, to_name=to_name, member_id=member_id,
                         context=context, dedupe=dedupe, headers=headers, attachments=attachments)
    conn = session.connection()
    inserted = conn.execute(_ENQUEUE[conn.dialect.name], values).first() is not None
    if inserted and not settings.smtp_url:
        log.info("mail queued (no SMTP configured; read it at /admin/outbox): %s to %s", kind, to_addr)
    return inserted


# --- reading the outbox (the admin pages) -------------------------------------------------------------------

PAGE_SIZE = 50
STATUSES: tuple[str, ...] = tuple(s.value for s in OutboxStatus)

_LIST_COLUMNS = (
    OutboxMessage.id, OutboxMessage.kind, OutboxMessage.to_addr, OutboxMessage.to_name, OutboxMessage.subject,
    OutboxMessage.status, OutboxMessage.attempts, OutboxMessage.created_at, OutboxMessage.sent_at,
    OutboxMessage.next_attempt_at, OutboxMessage.last_error,
)


@dataclass(frozen=True)
class OutboxPage:
    rows: list[Any]  # rows with the _LIST_COLUMNS (no bodies)
    counts: dict[str, int]  # status -> number of messages, over the whole outbox
    status: str  # the filter ("" = all)
    page: int
    pages: int

    @property
    def total(self) -> int:
        return self.counts.get(self.status, 0) if self.status else sum(self.counts.values())


def outbox_page(session: Session, *, status: str = "", page: int = 1) -> OutboxPage:
    """One page of the outbox, newest first, optionally only one status."""
    status = status if status in STATUSES else ""
    counts = dict.fromkeys(STATUSES, 0)
    for name, n in session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)):
        counts[name] = n
    total = counts[status] if status else sum(counts.values())
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    query = select(*_LIST_COLUMNS).order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    if status:
        query = query.where(OutboxMessage.status == status)
    rows = list(session.execute(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all())
    return OutboxPage(rows=rows, counts=counts, status=status, page=page, pages=pages)


def get_message(session: Session, message_id: int) -> OutboxMessage | None:
    return session.get(OutboxMessage, message_id)


def enqueue_many(
    session: Session,
    settings: Settings,
    *,
    kind: str,
    context: dict[str, Any],
    dedupe: str,
    recipients: list[tuple[int | None, str, str]],
) -> int:
    """One message to many members (member_id, address, name), composed once and inserted in bulk.

    Returns how many rows were new. A recipient who already has this (kind, dedupe) message gets nothing.
    """
    if not recipients:
        return 0
    template = message_row(settings, kind=kind, to_addr="", context=context, dedupe=dedupe)
    domain = urlsplit(settings.base_url).hostname or "localhost"
    rows = [{**template, "dedupe_key": f"{kind}:{dedupe}:{addr.lower()}"[:300], "member_id": mid,
             "to_addr": addr, "to_name": one_line(name, 100), "message_id": make_msgid(idstring=kind, domain=domain)}
            for mid, addr, name in recipients]
    count = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == kind)
    before = session.scalar(count) or 0
    insert_rows(session, settings, rows)
    return (session.scalar(count) or 0) - before
