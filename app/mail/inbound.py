"""Email replies become comments. One path for both doors: `plenary inbound` (SMTP) and `POST /inbound/email`.

1. `check_recipient`: the address `reply+TOKEN@…` carries a token we signed (app/mail/reply_address.py) naming a
   member who is not deactivated, a proposal that is open and that the member can see, and (if any) a comment of
   that proposal. SMTP asks this at RCPT, so a bad address is refused before the message is sent.
2. `receive`: the message's From must be the member's own address; automatic replies and delivery reports are
   accepted and dropped (answering them with an error could start a mail loop); the text is what the member
   wrote above the quote (app/mail/reply_text.py); then, in one transaction, the Message-ID is recorded (unique
   per member) and the text is posted through `comments.services.post_comment`, with every rule, limit and the
   sanitizer of the web form, and its notifications. A second delivery of the same message finds the Message-ID
   and is answered "delivered" without posting again.

Each answer is an `Outcome` with an SMTP reply and the HTTP status the webhook uses for the same reason. A
refusal changes nothing: the transaction that would have posted is rolled back.
"""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import logging
import re
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from app.comments.models import Comment
from app.db import Database, utcnow
from app.mail.models import InboundMessage
from app.mail.reply_address import PREFIX, ReplyToken, read_reply_address
from app.mail.reply_text import NoText, reply_text
from app.members.models import Member, Status
from app.middleware import CurrentMember
from app.proposals.models import Proposal, State
from app.proposals.queries import can_see
from app.settings import Settings

log = logging.getLogger("plenary.mail.inbound")

_MESSAGE_ID_MAX = 300
_UNSAFE = re.compile(r"[^\x20-\x7e]+")


@dataclass(frozen=True)
class Outcome:
    outcome: str  # posted, duplicate, ignored, refused
    smtp: str  # code and enhanced status, e.g. "550 5.1.1"
    http: int
    message: str
    comment_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.smtp.startswith("2")

    @property
    def smtp_reply(self) -> str:
        """One line of printable ASCII, as an SMTP reply must be (and short: mail servers quote it in bounces)."""
        text = _UNSAFE.sub(" ", self.message.replace("’", "'").replace("–", "-")).strip()
        return f"{self.smtp} {text}"[:480]

    def as_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "smtp": self.smtp_reply, "message": self.message,
                "comment_id": self.comment_id}


class Refused(Exception):
    def __init__(self, smtp: str, http: int, message: str) -> None:
        super().__init__(message)
        self.outcome = Outcome("refused", smtp, http, message)


NOT_VALID = ("550 5.1.1", 404, "This reply address is not valid. Open the proposal on the site to comment there.")
CLOSED = ("550 5.7.1", 409, "Voting on this proposal has closed, and so have its comments; nothing was posted. "
          "You can still read them on the site.")
NOT_YOURS = ("550 5.7.1", 403, "This reply address belongs to another member, so nothing was posted. "
             "Reply from the address the email was sent to, or comment on the site.")
EMPTY = ("550 5.6.0", 422, "Your reply is empty, so nothing was posted. Write your answer above the quoted "
         "message and send it again.")
FILES_ONLY = ("550 5.6.0", 422, "Your reply has only attachments, and comments are text, so nothing was posted. "
              "Write your answer in the email itself and send it again.")
NO_ADDRESS = ("550 5.1.1", 404, "This message is not addressed to a reply address, so nothing was posted.")
TOO_FAST = ("You have posted many comments in the last minute, so this one is not posted yet. Your mail server "
            "will send it again in a while.")
# A comment service refusal (CommentError.status) as an SMTP reply: what the member's mail server will say.
_COMMENT_SMTP = {400: "550 5.6.0", 403: "550 5.7.1", 404: "550 5.1.1", 409: "550 5.7.1", 429: "451 4.7.1"}


def too_big(limit_kb: int) -> Refused:
    return Refused("552 5.3.4", 413, f"Your reply is larger than {limit_kb:,} KiB, so nothing was posted. "
                                     "Leave out attachments and pictures and send it again.")


# --- 1. the address --------------------------------------------------------------------------------------------

def check_recipient(db: Database, settings: Settings, address: str, *,
                    now: dt.datetime | None = None) -> ReplyToken:
    """The reply token of `address` if a reply to it could be posted now; raises Refused otherwise."""
    token = read_reply_address(settings, address)
    if token is None:
        raise Refused(*NOT_VALID)
    now = now or utcnow()
    with db.read() as s:
        member = s.get(Member, token.member_id)
        p = s.get(Proposal, token.proposal_id)
        if member is None or member.status == Status.DEACTIVATED or p is None or p.state == State.DRAFT:
            raise Refused(*NOT_VALID)
        if not can_see(s, _as_current(member), p):
            raise Refused(*NOT_VALID)
        if token.comment_id is not None:
            c = s.get(Comment, token.comment_id)
            if c is None or c.proposal_id != p.id:
                raise Refused(*NOT_VALID)
        if p.state != State.OPEN or (p.closes_at is not None and p.closes_at <= now):
            raise Refused(*CLOSED)
    return token


def _as_current(member: Member) -> CurrentMember:
    """The member as the comment services expect the one asking; there is no web session behind it."""
    return CurrentMember(id=member.id, name=member.name, email=member.email, role=member.role, session_id=0)


# --- 2. the message --------------------------------------------------------------------------------------------

def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email_policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _header(msg: EmailMessage, name: str) -> str:
    try:
        return str(msg.get(name, "") or "")
    except (ValueError, TypeError, IndexError):  # a header the parser cannot read is as good as none
        return ""


def is_automatic(msg: EmailMessage, envelope_from: str | None = None) -> bool:
    """An out-of-office answer, a delivery report or a list's mail (RFC 3834 and the headers in common use)."""
    if envelope_from is not None and envelope_from.strip("<> ") == "":  # the null sender: a bounce
        return True
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return True
    if _header(msg, "Precedence").strip().lower() in ("bulk", "junk", "list", "auto_reply"):
        return True
    if any(_header(msg, h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "List-Id")):
        return True
    return msg.get_content_type() == "multipart/report"


def recipients_in(msg: EmailMessage) -> list[str]:
    """Addresses a provider's copy of the message may carry its envelope recipient in, most specific first."""
    found: list[str] = []
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc"):
        for value in msg.get_all(name, []) or []:
            try:
                found.extend(addr for _, addr in getaddresses([str(value)]) if addr)
            except (ValueError, TypeError, IndexError):
                continue
    return found


def sender_address(msg: EmailMessage) -> str | None:
    """The one address in From, lower-cased; None when there is none or more than one."""
    values = msg.get_all("From", []) or []
    try:
        addresses = [addr for _, addr in getaddresses([str(v) for v in values]) if addr]
    except (ValueError, TypeError, IndexError):
        return None
    return addresses[0].strip().lower() if len(addresses) == 1 else None


def message_key(msg: EmailMessage, raw: bytes) -> str:
    """The Message-ID as sent; too long a one, or none, is replaced by a digest (of it, or of the message)."""
    value = _header(msg, "Message-ID").strip()
    if value and len(value) <= _MESSAGE_ID_MAX:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape") if value else raw).hexdigest()


def receive(db: Database, settings: Settings, raw: bytes, *, recipient: str | None = None,
            token: ReplyToken | None = None, envelope_from: str | None = None,
            now: dt.datetime | None = None) -> Outcome:
    """Post one email reply as a comment (see the module's docstring). Never raises for what a message says."""
    try:
        return _receive(db, settings, raw, recipient=recipient, token=token, envelope_from=envelope_from, now=now)
    except Refused as refused:
        log.info("inbound reply refused: %s", refused.outcome.smtp)
        return refused.outcome
    except SQLAlchemyError:
        # The database is busy or away: the sending server keeps the message and tries again later.
        log.exception("inbound: the reply could not be stored")
        return Outcome("refused", "451 4.3.0", 503, "The reply could not be stored just now; it will be tried "
                                                    "again later.")
    except (ValueError, TypeError, IndexError, LookupError, AttributeError):
        # A message the email package cannot take apart (its parser has corner cases that raise).
        log.exception("inbound: a message could not be read")
        return Outcome("refused", "550 5.6.0", 422, "This message could not be read, so nothing was posted. "
                                                    "Send your reply as plain text.")


def _receive(db: Database, settings: Settings, raw: bytes, *, recipient: str | None, token: ReplyToken | None,
             envelope_from: str | None, now: dt.datetime | None) -> Outcome:
    from app.comments.services import CommentError, post_comment

    limit = settings.inbound_max_kb * 1024
    if len(raw) > limit:
        raise too_big(settings.inbound_max_kb)
    msg = parse(raw)
    if token is None:
        found = [recipient] if recipient else [a for a in recipients_in(msg) if a.lower().startswith(PREFIX)]
        valid = [a for a in found if read_reply_address(settings, a) is not None]
        if not found:
            raise Refused(*NO_ADDRESS)
        token = check_recipient(db, settings, (valid or found)[0], now=now)
    if is_automatic(msg, envelope_from):
        log.info("inbound: an automatic message to a reply address was dropped")
        return Outcome("ignored", "250 2.0.0", 200, "Automatic replies are not posted; this one was dropped.")
    with db.read() as s:
        member = s.get(Member, token.member_id)
        if member is None:
            raise Refused(*NOT_VALID)
        me = _as_current(member)
    if sender_address(msg) != me.email.lower():
        raise Refused(*NOT_YOURS)
    try:
        text = reply_text(msg)
    except NoText as exc:
        raise Refused(*(FILES_ONLY if exc.attachments_only else EMPTY)) from None
    key = message_key(msg, raw)
    now = now or utcnow()
    with db.begin() as s:
        ins = (sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert)(InboundMessage)
        row_id = s.execute(ins.values(member_id=me.id, message_id=key, proposal_id=token.proposal_id,
                                      received_at=now)
                           .on_conflict_do_nothing(index_elements=["member_id", "message_id"])
                           .returning(InboundMessage.id)).scalar()
        if row_id is None:
            return Outcome("duplicate", "250 2.0.0", 200, "This message was posted already; nothing was posted "
                                                          "again.")
        try:
            c = post_comment(s, me, token.proposal_id, body=text, parent_id=token.comment_id, settings=settings,
                             now=now)
        except CommentError as exc:
            # Leaving the block by an exception rolls back the Message-ID too: a later retry is judged afresh.
            message = TOO_FAST if exc.status == 429 else f"{exc} Nothing was posted."
            raise Refused(_COMMENT_SMTP.get(exc.status, "550 5.7.1"), exc.status, message) from None
        s.execute(update(InboundMessage).where(InboundMessage.id == row_id).values(comment_id=c.id))
        comment_id = c.id
    log.info("inbound: comment %d posted from an email reply", comment_id)
    return Outcome("posted", "250 2.0.0", 200, "Your reply is posted as a comment.", comment_id)
