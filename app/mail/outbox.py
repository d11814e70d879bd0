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
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.mail.models import OutboxMessage, OutboxStatus
from app.settings import ROOT, Settings

log = logging.getLogger("plenary.mail")

EMAIL_TEMPLATES = ROOT / "templates" / "email"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")

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
) -> bool:
    """Write one message to the outbox. Returns False when the same (kind, dedupe, recipient) already exists.

    `dedupe` names what the message is about (e.g. "token:17"), so the same event never mails twice.
    """
    ctx = {"org_name": context.get("org_name", "Plenary"), "base_url": settings.base_url, **context}
    msg = compose(kind, ctx)
    key = f"{kind}:{dedupe}:{to_addr.lower()}"[:300]
    domain = urlsplit(settings.base_url).hostname or "localhost"
    values = {
        "dedupe_key": key,
        "kind": kind,
        "member_id": member_id,
        "to_addr": to_addr,
        "to_name": one_line(to_name, 100),
        "subject": msg.subject,
        "text_body": msg.text,
        "html_body": msg.html,
        "headers": headers or {},
        "message_id": make_msgid(idstring=kind, domain=domain),
        "status": OutboxStatus.PENDING,
    }
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite_insert if dialect == "sqlite" else pg_insert
        stmt = insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
        inserted = session.execute(stmt.returning(OutboxMessage.id)).first() is not None
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)):
            return False
        session.add(OutboxMessage(**values))
        inserted = True
    if inserted and not settings.smtp_url:
        log.info("mail queued (no SMTP configured; read it at /admin/outbox): %s to %s", kind, to_addr)
    return inserted
