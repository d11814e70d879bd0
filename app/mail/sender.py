"""The sender: drains the outbox through aiosmtplib, under a lease, so any number of senders can run.

One pass (`OutboxSender.drain_once`) claims a batch and sends it; no database transaction is open across SMTP
I/O:

1. claim: one short write transaction marks up to `batch` due rows `sending` with a lease and counts the
   attempt (`FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite the `BEGIN IMMEDIATE` lock serializes claims).
   In the same transaction, claimed mail to an address flagged as bouncing (other than account mail) is
   marked `cancelled` instead (see app/mail/bounces.py);
2. send each message over a reused SMTP connection (reconnected after a failure), outside any transaction,
   and record its outcome in a short write transaction of its own as soon as the server has answered, before
   the next message goes out on that connection. A batch is never recorded as a whole at its end.

Outcomes: 2xx -> `sent` (and the member's bounces in a row start again from 0); 4xx, connection errors and
timeouts -> `pending` again after an exponential backoff (30 s, 1 min, 2 min, ... capped at 1 hour, each
wait a random time between half and all of that), until 48 hours after the message was queued, then `failed`
with the last answer; a 5xx to the recipient or the data -> `failed` at once and counted as a hard bounce; a
row that cannot be built into a message (e.g. a header with a line break) -> `failed` alone.

Delivery is at least once, with at most one duplicate per connection and crash: if the process dies between
a server's 250 and the record of it, that one message (the only one in flight on its connection) is sent
again when its lease runs out, with the same Message-ID, so a receiving system that drops a Message-ID it
has seen shows it once. Every message recorded before the crash stays recorded. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import datetime as dt
import functools
import ipaddress
import logging
import math
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib
from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.engine import Row

from app.db import Database, run_db, utcnow
from app.mail import bounces
from app.mail.models import OutboxMessage, OutboxStatus
from app.settings import Settings

log = logging.getLogger("plenary.mail")

MAX_AGE = dt.timedelta(days=2)  # retries stop this long after a message was queued (or put back by an admin)
EXPIRED_ERROR = "expired before it could be sent"
EXPIRE_EVERY_S = 60.0  # how often a sender looks for messages queued too long ago


def gave_up(max_age: dt.timedelta = MAX_AGE) -> str:
    """What a message that could not be sent in time says, before the server's last answer."""
    return f"gave up after {max_age.total_seconds() / 3600:g} hours of retries; last answer: "

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# --- configuration ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to hand mail over, parsed from `PLENARY_SMTP_URL`.

    `smtp://user:pass@host:587?starttls=true` (STARTTLS required), `smtps://host:465` (TLS from the first
    byte), `smtp://127.0.0.1:1025` (plain, or upgraded if the server offers STARTTLS). Options: `starttls`
    (true/false; unset = upgrade when offered), `timeout` (seconds per SMTP command, default 30),
    `validate_certs` (default true), `connections` (how many messages go out at once, each on its own
    connection; default 16). User and password are percent-decoded.
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_tls: bool = False
    start_tls: bool | None = None
    timeout: float = 30.0
    validate_certs: bool = True
    connections: int = 16

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        try:
            parts = urlsplit((url or "").strip())
        except ValueError as exc:
            raise ValueError(f"PLENARY_SMTP_URL is not a valid URL: {exc}") from None
        shown = _redacted(parts)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"PLENARY_SMTP_URL must start with smtp:// or smtps://, not {shown!r}")
        if not parts.hostname:
            raise ValueError(f"PLENARY_SMTP_URL has no host name: {shown!r}")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError(f"PLENARY_SMTP_URL must not have a path or fragment: {shown!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"PLENARY_SMTP_URL has an invalid port: {shown!r}") from None

        options: dict[str, str] = {}
        try:
            pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise ValueError(f"PLENARY_SMTP_URL has a malformed query string: {shown!r}") from None
        for key, value in pairs:
            key = key.strip().lower()
            if key not in ("starttls", "timeout", "validate_certs", "connections"):
                raise ValueError(f"PLENARY_SMTP_URL: unknown option {key!r} "
                                 "(known: starttls, timeout, validate_certs, connections)")
            options[key] = value.strip()

        use_tls = parts.scheme == "smtps"
        start_tls = _flag("starttls", options["starttls"]) if "starttls" in options else None
        if use_tls and start_tls:
            raise ValueError("PLENARY_SMTP_URL: smtps:// already uses TLS, so starttls=true does not apply")
        timeout = 30.0
        if "timeout" in options:
            try:
                timeout = float(options["timeout"])
            except ValueError:
                timeout = -1.0
            if not 0 < timeout <= 3600:
                raise ValueError(
                    f"PLENARY_SMTP_URL: timeout must be a number of seconds, not {options['timeout']!r}"
                )
        validate = _flag("validate_certs", options["validate_certs"]) if "validate_certs" in options else True
        connections = 16
        if "connections" in options:
            value = options["connections"]
            connections = int(value) if value.isdigit() else 0
            if not 1 <= connections <= 64:
                raise ValueError(f"PLENARY_SMTP_URL: connections must be a whole number from 1 to 64, not {value!r}")
        if port is None:
            port = 465 if use_tls else (587 if start_tls else 25)
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            use_tls=use_tls,
            start_tls=False if use_tls else start_tls,
            timeout=timeout,
            validate_certs=validate,
            connections=connections,
        )

    def client(self, local_hostname: str | None = None) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            validate_certs=self.validate_certs,
            timeout=self.timeout,
            local_hostname=local_hostname,
        )


def _flag(name: str, value: str) -> bool:
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"PLENARY_SMTP_URL: {name} must be true or false, not {value!r}")


def _redacted(parts: Any) -> str:
    """The URL for an error message, without the password."""
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    return parts._replace(netloc=netloc).geturl()


def _helo_name(base_url: str) -> str:
    host = urlsplit(base_url).hostname or "localhost"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{host}]"


# --- building messages --------------------------------------------------------------------------------------
#
# A message is composed as bytes, not as an `email.message.EmailMessage`: building and flattening one of those
# costs about 1.6 ms, more than sending it, and a mailing to 10,000 members spent most of its time there. The
# parts every message shares (From, the MIME headers, the boundary) are encoded once per sender; each message
# adds its own To, Subject, Message-ID, extra headers and bodies. The rules are the ones the email package
# applies: no line breaks in header values (header injection), RFC 2047 for non-ASCII header text, lines of at
# most 998 octets, and a transfer encoding that needs nothing of the server (7bit for ASCII, quoted-printable
# otherwise, base64 for attachments).

_LINE_BREAK = re.compile(r"[\r\n\x00\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")  # what str.splitlines splits on
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")
# Headers the builder sets itself: a stored extra header must not add a second one or change the structure.
_RESERVED = frozenset({
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "sender", "mime-version", "content-type",
    "content-transfer-encoding", "return-path", "received",
})
# List-Unsubscribe, List-Id, In-Reply-To, References: ASCII items in angle brackets. Encoded as RFC 2047 words
# they would be broken for mail clients (which do not decode them there), so they fold only after the commas
# between items.
_BRACKETED = frozenset({"list-unsubscribe", "list-id", "in-reply-to", "references"})
_MAX_LINE = 998  # octets, RFC 5322 2.1.1
_CRLF = "\r\n"


def _check_header(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} header is not text")
    if _LINE_BREAK.search(value):
        raise ValueError(f"{name} header contains a line break")


def _text_header(name: str, value: str) -> str:
    """`Name: value` with CRLF: folded at spaces near 78 columns; RFC 2047 (UTF-8) when not ASCII."""
    if value.isascii() and len(name) + len(value) <= 76:
        return f"{name}: {value}{_CRLF}"
    return _encoded_header(name, value)


@functools.lru_cache(maxsize=512)
def _encoded_header(name: str, value: str) -> str:
    # Cached: a mailing shares its subject and most of its headers.
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, header_name=name).encode(linesep=_CRLF, maxlinelen=78)
    return f"{name}: {encoded}{_CRLF}"


def _bracketed_header(name: str, value: str) -> str:
    if not value.isascii():
        return _text_header(name, value)
    return f"{name}: " + value.replace(", ", "," + _CRLF + " ") + _CRLF


def _address(name: str, addr: str) -> str:
    if not addr.isascii():  # an internationalized address: sent as UTF-8 (the sender asks for SMTPUTF8)
        return f"{name} <{addr}>" if name else addr
    if not name:
        return addr
    return formataddr((name, addr), charset="utf-8")


def _body(content_type: str, text: str) -> str:
    """A MIME part's headers and body: 7bit when the text is ASCII with short lines, quoted-printable otherwise."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    if text.isascii() and max(map(len, text.split("\n"))) <= _MAX_LINE:
        cte, payload = "7bit", text
    else:
        cte, payload = "quoted-printable", binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")
    return (f"Content-Type: {content_type}; charset=\"utf-8\"{_CRLF}Content-Transfer-Encoding: {cte}{_CRLF}{_CRLF}"
            + payload.replace("\n", _CRLF) + _CRLF)  # that last CRLF belongs to the boundary that follows


class MessageBuilder:
    """Turns outbox rows into the bytes of a multipart/alternative message (multipart/mixed with attachments).

    `build` raises ValueError when a row cannot become a safe message (header injection, bad header names or
    attachments): such a row fails alone.
    """

    def __init__(self, mail_from: str) -> None:
        _check_header("From", mail_from)
        name, addr = parseaddr(mail_from)
        if not addr or "@" not in addr:
            raise ValueError(f"PLENARY_MAIL_FROM is not an email address: {mail_from!r}")
        self.envelope_from = addr
        self._from = f"From: {_address(name, addr)}{_CRLF}"
        self._boundary = "=_plenary_" + secrets.token_hex(12)

    def date_header(self, when: float | None = None) -> str:
        return formatdate(when, localtime=False, usegmt=True)

    def build(self, row: Any, date: str | None = None) -> bytes:
        """One message from a row with to_addr, to_name, subject, text_body, html_body, headers, message_id and
        optionally attachments."""
        to_addr, to_name = row.to_addr, row.to_name or ""
        _check_header("To", to_addr)
        _check_header("To", to_name)
        _check_header("Subject", row.subject)
        _check_header("Message-ID", row.message_id)
        head = [self._from, _text_header("To", _address(to_name, to_addr)) if to_addr.isascii()
                else f"To: {_address(to_name, to_addr)}{_CRLF}",
                _text_header("Subject", row.subject),
                f"Date: {date or self.date_header()}{_CRLF}",
                f"Message-ID: {row.message_id}{_CRLF}"]
        for name, value in (row.headers or {}).items():
            if not isinstance(name, str) or not _HEADER_NAME.match(name) or name.lower() in _RESERVED:
                raise ValueError(f"not an allowed header name: {name!r}")
            value = str(value)
            _check_header(name, value)
            head.append(_bracketed_header(name, value) if name.lower() in _BRACKETED
                        else _text_header(name, value))
        text, html = row.text_body or "", row.html_body or ""
        boundary = self._boundary
        if boundary in text or boundary in html:  # never in practice: the boundary is random
            boundary = "=_plenary_" + secrets.token_hex(16)
        alternative = (f"--{boundary}{_CRLF}{_body('text/plain', text)}"
                       f"--{boundary}{_CRLF}{_body('text/html', html)}--{boundary}--{_CRLF}")
        alternative_type = f"multipart/alternative;{_CRLF} boundary=\"{boundary}\""
        attachments = getattr(row, "attachments", None) or []
        if attachments:
            files = [_attachment(a) for a in attachments]
            mixed = "=_plenary_mixed_" + secrets.token_hex(8)
            body = (f"--{mixed}{_CRLF}Content-Type: {alternative_type}{_CRLF}{_CRLF}{alternative}"
                    + "".join(f"--{mixed}{_CRLF}{f}" for f in files) + f"--{mixed}--{_CRLF}")
            content_type = f"multipart/mixed;{_CRLF} boundary=\"{mixed}\""
        else:
            body, content_type = alternative, alternative_type
        head.append(f"MIME-Version: 1.0{_CRLF}Content-Type: {content_type}{_CRLF}")
        return ("".join(head) + _CRLF + body).encode("utf-8")


_ATTACHMENT_TYPES = {"text/calendar"}
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def _attachment(item: Any) -> str:
    """A small text file from an outbox row (only the types Plenary writes itself), as a base64 MIME part."""
    if not isinstance(item, dict):
        raise ValueError("attachment is not an object")
    filename, mime_type, content = item.get("filename"), item.get("mime_type"), item.get("content")
    if mime_type not in _ATTACHMENT_TYPES:
        raise ValueError(f"attachment type not allowed: {mime_type!r}")
    if not isinstance(filename, str) or not _FILENAME.match(filename):
        raise ValueError(f"attachment file name not allowed: {filename!r}")
    if not isinstance(content, str):
        raise ValueError("attachment content is not text")
    params = "; charset=\"utf-8\""
    if item.get("method") in ("REQUEST", "CANCEL", "PUBLISH"):
        params += f"; method={item['method']}"
    # Base64 keeps the CRLF line ends RFC 5545 asks for, and any line length.
    encoded = base64.encodebytes(content.encode("utf-8")).decode("ascii").replace("\n", _CRLF)
    return (f"Content-Type: {mime_type}{params}; name=\"{filename}\"{_CRLF}"
            f"Content-Disposition: attachment; filename=\"{filename}\"{_CRLF}"
            f"Content-Transfer-Encoding: base64{_CRLF}{_CRLF}{encoded}{_CRLF}")


# --- the database side --------------------------------------------------------------------------------------

_t = OutboxMessage.__table__
_c = _t.c
_DT = _c.next_attempt_at.type

_CLAIMED_COLUMNS = (_c.id, _c.kind, _c.member_id, _c.to_addr, _c.to_name, _c.subject, _c.text_body,
                    _c.html_body, _c.headers, _c.attachments, _c.message_id, _c.attempts, _c.created_at,
                    _c.requeued_at)
_queued_at = func.coalesce(_c.requeued_at, _c.created_at)


def _due(now: Any) -> Any:
    return or_(
        and_(_c.status == OutboxStatus.PENDING, _c.next_attempt_at <= now),
        and_(_c.status == OutboxStatus.SENDING, _c.locked_until < now),
    )


_EXPIRE = (
    update(_t)
    # `created_at <` first: the index on created_at finds the old rows, so the rest is not read for each claim
    # (a message is requeued after it was created, so the coalesce alone says the same).
    .where(_c.created_at < bindparam("cutoff", type_=_DT), _queued_at < bindparam("cutoff", type_=_DT),
           _due(bindparam("now", type_=_DT)))
    .values(status=OutboxStatus.FAILED, locked_until=None,
            last_error=case((_c.last_error == "", EXPIRED_ERROR),
                            else_=bindparam("gave_up", type_=_c.last_error.type) + _c.last_error))
)
_SKIP = (
    update(_t)
    .where(_c.id == bindparam("b_id"), _c.status == OutboxStatus.SENDING)
    .values(status=OutboxStatus.CANCELLED, locked_until=None, last_error=bindparam("b_error"),
            attempts=_c.attempts - 1)  # claimed, never tried
)

_RECORD_SENT = (
    update(_t)
    .where(_c.id == bindparam("b_id"))
    .values(status=OutboxStatus.SENT, sent_at=bindparam("b_now", type_=_DT), locked_until=None, last_error="")
)
# Retry and failure only touch the row if no other sender has claimed it since (its attempt count is ours).
_RECORD_RETRY = (
    update(_t)
    .where(_c.id == bindparam("b_id"), _c.attempts == bindparam("b_attempts"),
           _c.status == OutboxStatus.SENDING)
    .values(status=OutboxStatus.PENDING, next_attempt_at=bindparam("b_next", type_=_DT), locked_until=None,
            last_error=bindparam("b_error"))
)
_RECORD_FAILED = (
    update(_t)
    .where(_c.id == bindparam("b_id"), _c.attempts == bindparam("b_attempts"),
           _c.status == OutboxStatus.SENDING)
    .values(status=OutboxStatus.FAILED, locked_until=None, last_error=bindparam("b_error"))
)
# A row claimed but never tried (the lease ran short, the sender was stopped): back to the queue, uncounted.
_RELEASE = (
    update(_t)
    .where(_c.id == bindparam("b_id"), _c.attempts == bindparam("b_attempts"),
           _c.status == OutboxStatus.SENDING)
    .values(status=OutboxStatus.PENDING, attempts=_c.attempts - 1, locked_until=None)
)


def claim_batch(db: Database, *, batch: int, lease_s: float, max_age: dt.timedelta = MAX_AGE,
                expire: bool = True) -> tuple[list[Row], int]:
    """Claim up to `batch` due rows for sending, fail due rows too old to send (when `expire`: it reads every
    due row, so a busy sender does it now and then, not at every claim), and cancel claimed mail to addresses
    flagged as bouncing. Returns (rows to send, rows expired or cancelled)."""
    now = utcnow()
    with db.write_connection(durable=False) as s:  # a claim lost in a power cut only waits for its lease
        expired = s.execute(_EXPIRE, {"now": now, "cutoff": now - max_age,
                                      "gave_up": gave_up(max_age)}).rowcount or 0 if expire else 0
        if expired:
            log.warning("%d queued message(s) failed: not sent within %s of queueing", expired, max_age)
        # Two look-ups, each read off the (status, next_attempt_at) index in order: rows whose sender's lease
        # ran out (rare), then pending rows by their due time. One query with OR sorted every due row instead.
        lapsed = select(_c.id).where(_c.status == OutboxStatus.SENDING, _c.locked_until < now).limit(batch)
        pending = (select(_c.id).where(_c.status == OutboxStatus.PENDING, _c.next_attempt_at <= now)
                   .order_by(_c.next_attempt_at))
        if db.dialect == "postgresql":
            # Rows another sender is claiming right now are skipped, not waited for.
            lapsed, pending = (q.with_for_update(skip_locked=True) for q in (lapsed, pending))
        ids = list(s.scalars(lapsed))
        if len(ids) < batch:
            ids += s.scalars(pending.limit(batch - len(ids))).all()
        rows = []
        if ids:
            rows = sorted(s.execute(
                update(_t).where(_c.id.in_(ids))
                .values(status=OutboxStatus.SENDING, locked_until=now + dt.timedelta(seconds=lease_s),
                        attempts=_c.attempts + 1)
                .returning(*_CLAIMED_COLUMNS)).all(), key=lambda r: r.id)
        skipped = bounces.bouncing(s, rows)
        if skipped:
            s.execute(_SKIP, [{"b_id": i, "b_error": why} for i, why in skipped.items()])
            log.info("%d message(s) not sent: their addresses are flagged as bouncing", len(skipped))
            rows = [r for r in rows if r.id not in skipped]
    return rows, expired + len(skipped)


@dataclass
class _Outcomes:
    sent: list[dict[str, Any]] = field(default_factory=list)
    retry: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    release: list[dict[str, Any]] = field(default_factory=list)
    # What the members' bounce counts learn from the same outcomes (app/mail/bounces.py).
    delivered: list[dict[str, Any]] = field(default_factory=list)
    bounced: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.retry) + len(self.failed) + len(self.release)

    def ids(self) -> set[int]:
        return {p["b_id"] for group in (self.sent, self.retry, self.failed, self.release) for p in group}

    def extend(self, other: _Outcomes) -> None:
        for name in ("sent", "retry", "failed", "release", "delivered", "bounced"):
            getattr(self, name).extend(getattr(other, name))


def record_outcomes(db: Database, outcomes: _Outcomes) -> None:
    """In one transaction that does not wait for the disk: a process crash keeps it (the database has it); a
    power cut may lose the last records, and those messages go out again, with the same Message-ID."""
    if not len(outcomes):
        return
    with db.write_connection(durable=False) as conn:
        for stmt, params in ((_RECORD_SENT, outcomes.sent), (_RECORD_RETRY, outcomes.retry),
                             (_RECORD_FAILED, outcomes.failed), (_RELEASE, outcomes.release)):
            if params:
                conn.execute(stmt, params)
        bounces.record_deliveries(conn, outcomes.delivered)
        bounces.record_bounces(conn, outcomes.bounced)


class _Recorder:
    """Records outcomes for every connection of a sender, several in one transaction (a group commit).

    Each connection waits for its own message's record before it sends the next. One write runs at a time; the
    outcomes handed in while it runs go into the next one together, so under load a transaction records about
    one message per connection instead of one message. Making the writer also wait for every connection's
    outcome (at most 2 ms) cost 15% of the throughput (10,000 messages, 16 connections: 1,015 against 1,190 a
    second), so it does not wait.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.written: set[int] = set()  # the outbox ids whose outcome is in the database
        self._waiting: list[tuple[_Outcomes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, outcome: _Outcomes) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Retrieved even when its sender was cancelled meanwhile (nobody awaits it then).
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append((outcome, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        # Shielded: a cancelled sender still gets its outcome written by the writer task.
        await asyncio.shield(future)

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                merged = _Outcomes()
                for outcome, _future in batch:
                    merged.extend(outcome)
                try:
                    await run_db(record_outcomes, self.db, merged)
                except Exception as exc:
                    for _outcome, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.written |= merged.ids()
                for _outcome, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._writer = None

    async def wait(self) -> None:
        """Until every outcome handed over is written (or has failed)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)


def retry_delay(attempts: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with equal jitter: uniform in [c/2, c] for c = min(cap, base * 2^(attempts-1)). The
    waits really grow (each is at least half its ceiling), and messages that failed together spread out."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempts - 1, 0), 60))
    return random.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0


# --- the SMTP side ------------------------------------------------------------------------------------------

class _Transient(Exception):
    """Worth trying again later (4xx, connection trouble, timeouts)."""


class _Permanent(Exception):
    """Will never succeed (5xx for this recipient or message, a message that cannot be built)."""


class _Bounce(_Permanent):
    """A 5xx answer to RCPT or DATA: a hard bounce, counted against the address."""


class _NoConnection(_Transient):
    """No connection to the server could be made: the rest of the batch waits too."""


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        r = exc.recipients[0]
        text = f"{r.code} {r.message}"
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.strip()[:1000]


class OutboxSender:
    """Drains the outbox; keep one per process (or per worker task) so SMTP connections are reused.

    `backoff_base_s`/`backoff_cap_s` are parameters so tests can compress time (production: 30 s and 1 h).
    Retries stop `max_age` after a message was queued; `max_attempts` (none by default) can stop them sooner.
    `connections` bounds how many SMTP connections (and messages in flight) one sender uses (default: the
    `connections` option of PLENARY_SMTP_URL, 16).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        config: SmtpConfig | None = None,
        batch: int = 200,
        lease_s: float = 300.0,
        backoff_base_s: float = 30.0,
        backoff_cap_s: float = 3600.0,
        max_attempts: int | None = None,
        max_age: dt.timedelta = MAX_AGE,
        connections: int | None = None,
    ) -> None:
        if config is None:
            if not settings.smtp_url:
                raise ValueError("No SMTP server is configured (PLENARY_SMTP_URL)")
            config = SmtpConfig.from_url(settings.smtp_url)
        self.settings = settings
        self.db = db
        self.config = config
        self.batch = max(1, batch)
        self.lease_s = lease_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_attempts = max(1, max_attempts) if max_attempts is not None else None
        self.max_age = max_age
        self.builder = MessageBuilder(settings.mail_from)
        self._helo = _helo_name(settings.base_url)
        self._clients: list[aiosmtplib.SMTP | None] = [None] * max(1, connections or config.connections)
        self._expired_at = -math.inf  # the first claim fails what has waited too long

    async def drain_once(self) -> int:
        """Claim one batch of due messages, send them, record the outcomes. Returns how many were handled."""
        now = asyncio.get_running_loop().time()
        expire = now - self._expired_at >= EXPIRE_EVERY_S
        rows, expired = await run_db(claim_batch, self.db, batch=self.batch, lease_s=self.lease_s,
                                     max_age=self.max_age, expire=expire)
        if expire:
            self._expired_at = now
        if not rows:
            return expired
        unrecorded = _Outcomes()  # outcomes not yet in the database (each send's is recorded at once)
        recorder = _Recorder(self.db)
        try:
            await self._send_all(rows, unrecorded, recorder)
        except BaseException:
            self.close()  # a send was interrupted mid-conversation: those connections are of no further use
            raise
        finally:
            # Also on cancellation: what was sent is recorded, and what was not goes back to the queue now
            # rather than after the lease.
            with contextlib.suppress(Exception):
                await recorder.wait()
            done = recorder.written | unrecorded.ids()
            unrecorded.release.extend({"b_id": r.id, "b_attempts": r.attempts} for r in rows if r.id not in done)
            await run_db(record_outcomes, self.db, unrecorded)
        return len(rows) + expired

    async def _send_all(self, rows: Sequence[Row], unrecorded: _Outcomes, recorder: _Recorder) -> None:
        loop = asyncio.get_running_loop()
        # Stop starting new sends well before the lease runs out, so no other sender can get the same row.
        deadline = loop.time() + max(self.lease_s - 2 * self.config.timeout, self.lease_s / 2)
        queue = collections.deque(rows)
        date = self.builder.date_header()
        down: list[str] = []  # the server cannot be reached: the rest of the batch waits without trying
        stop: list[BaseException] = []  # the database could not record an outcome: send nothing more

        async def lane(index: int) -> None:
            while queue and not stop:
                row = queue.popleft()
                if down:
                    self._retry(unrecorded, row, down[0])
                    continue
                if loop.time() > deadline:
                    queue.appendleft(row)
                    return
                outcome = _Outcomes()
                try:
                    await self._send_one(index, row, date)
                except _NoConnection as exc:
                    down.append(str(exc))
                    self._retry(outcome, row, str(exc))
                except _Transient as exc:
                    self._retry(outcome, row, str(exc))
                except _Permanent as exc:
                    log.warning("outbox message %d failed: %s", row.id, exc)
                    outcome.failed.append({"b_id": row.id, "b_attempts": row.attempts, "b_error": str(exc)})
                    if isinstance(exc, _Bounce) and row.member_id is not None:
                        outcome.bounced.append({"b_member": row.member_id, "b_addr": row.to_addr.lower(),
                                                "b_error": str(exc), "b_at": utcnow()})
                except Exception as exc:  # a bug must not stop the batch; the row is retried, then fails
                    log.exception("unexpected error sending outbox message %d", row.id)
                    self._drop(index)
                    self._retry(outcome, row, _error_text(exc))
                else:
                    outcome.sent.append({"b_id": row.id, "b_now": utcnow()})
                    if row.member_id is not None:
                        outcome.delivered.append({"b_member": row.member_id, "b_addr": row.to_addr.lower()})
                # Recorded before this connection sends anything else: a crash from here on can repeat only
                # this one message.
                try:
                    await recorder.record(outcome)
                except Exception as exc:
                    log.exception("could not record the outcome of outbox message %d; stopping this batch",
                                  row.id)
                    unrecorded.extend(outcome)
                    stop.append(exc)
                    return

        lanes = min(len(self._clients), len(rows))
        await asyncio.gather(*(lane(i) for i in range(lanes)))
        if stop:
            raise stop[0]

    def _retry(self, outcomes: _Outcomes, row: Row, error: str) -> None:
        if self.max_attempts is not None and row.attempts >= self.max_attempts:
            log.warning("outbox message %d failed after %d attempts: %s", row.id, row.attempts, error)
            outcomes.failed.append({"b_id": row.id, "b_attempts": row.attempts, "b_error": error})
            return
        next_at = utcnow() + dt.timedelta(seconds=retry_delay(row.attempts, self.backoff_base_s,
                                                              self.backoff_cap_s))
        if next_at >= (row.requeued_at or row.created_at) + self.max_age:
            log.warning("outbox message %d failed: no retry within %s of queueing: %s", row.id, self.max_age,
                        error)
            outcomes.failed.append({"b_id": row.id, "b_attempts": row.attempts,
                                    "b_error": (gave_up(self.max_age) + error)[:1000]})
            return
        outcomes.retry.append({"b_id": row.id, "b_attempts": row.attempts, "b_error": error, "b_next": next_at})

    async def _send_one(self, index: int, row: Row, date: Any) -> None:
        try:
            raw = self.builder.build(row, date)
        except Exception as exc:  # a poison row (bad header, malformed stored data) fails alone
            raise _Permanent(f"cannot build the message: {exc}") from None
        smtp = await self._connection(index)
        try:
            # Internationalized addresses need SMTPUTF8, which the server must offer (else a permanent failure).
            options = [] if row.to_addr.isascii() else ["SMTPUTF8"]
            await smtp.sendmail(self.builder.envelope_from, [row.to_addr], raw, mail_options=options)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            code = exc.recipients[0].code if exc.recipients else 451
            raise (_Bounce if code >= 500 else _Transient)(_error_text(exc)) from None
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPAuthenticationError,
                aiosmtplib.SMTPHeloError) as exc:
            # About our session or configuration, not this message: retried, and every row says why.
            self._drop(index)
            raise _Transient(_error_text(exc)) from None
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or exc.code < 400:
                self._drop(index)
            raise (_Bounce if 500 <= exc.code < 600 else _Transient)(_error_text(exc)) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise _Permanent(_error_text(exc)) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._drop(index)
            raise _Transient(_error_text(exc)) from None
        except ValueError as exc:  # aiosmtplib refuses an address it cannot quote safely
            raise _Permanent(f"cannot send to this address: {exc}") from None

    async def _connection(self, index: int) -> aiosmtplib.SMTP:
        smtp = self._clients[index]
        if smtp is not None and smtp.is_connected:
            return smtp
        self._drop(index)
        smtp = self.config.client(local_hostname=self._helo)
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            raise _NoConnection(f"cannot connect to {self.config.host}:{self.config.port}: "
                                f"{_error_text(exc)}") from None
        self._clients[index] = smtp
        return smtp

    def _drop(self, index: int) -> None:
        smtp, self._clients[index] = self._clients[index], None
        if smtp is not None:
            smtp.close()

    async def aclose(self, timeout: float = 2.0) -> None:
        """Say QUIT on open connections (briefly), then close them."""
        for index, smtp in enumerate(self._clients):
            if smtp is not None and smtp.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                    await asyncio.wait_for(smtp.quit(), timeout)
            self._drop(index)

    def close(self) -> None:
        for index in range(len(self._clients)):
            self._drop(index)


async def drain_once(settings: Settings, db: Database, *, batch: int = 50, config: SmtpConfig | None = None,
                     **options: Any) -> int:
    """One pass over the outbox with a sender of its own (the worker keeps one sender to reuse connections).

    `options` are OutboxSender's: lease_s, backoff_base_s, backoff_cap_s, max_attempts, max_age, connections.
    """
    sender = OutboxSender(settings, db, config=config, batch=batch, **options)
    try:
        return await sender.drain_once()
    finally:
        await sender.aclose()
