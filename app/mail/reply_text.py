"""What a member wrote in an email reply: the text part (or the HTML part as text), without the quoted message
and the signature.

Quotes and signatures are recognised by mail-parser-reply (the "On … wrote:" lines of Gmail and Apple Mail in
several languages, Outlook's "From: … Sent: …" block and its line of underscores, "-- " signatures, "Sent from
my phone" and common sign-offs such as "Best regards"). Cutting is from the first such line to the end, as
those clients write replies above the quote. A reply written below or between the quoted lines (the header line
comes first) keeps the member's own lines and drops the quoted ones. Leading spaces on lines do not survive.
"""

from __future__ import annotations

import contextlib
from email.message import EmailMessage, Message

from mailparser_reply import EmailMessage as ParsedReply
from mailparser_reply.constants import MAIL_LANGUAGES

from app.text import html_to_text

# Every language the parser knows headers for, except its entry for one vendor's software.
LANGUAGES = tuple(lang for lang in MAIL_LANGUAGES if lang != "david")


class NoText(ValueError):
    """The message has nothing to post. `attachments_only`: it had files but no text."""

    def __init__(self, attachments_only: bool) -> None:
        super().__init__("attachments only" if attachments_only else "empty")
        self.attachments_only = attachments_only


def _decoded(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, UnicodeError, ValueError, AttributeError):
        content = None
    if isinstance(content, str):
        return content
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    with contextlib.suppress(LookupError):
        return payload.decode(charset, errors="replace")
    return payload.decode("utf-8", errors="replace")


def has_attachments(msg: Message) -> bool:
    return any(part.get_content_disposition() == "attachment" or
               part.get_content_maintype() not in ("text", "multipart", "message")
               for part in msg.walk())


def body_text(msg: EmailMessage) -> str:
    """The message's text: its text/plain body, else (or when that is blank) its HTML body as text."""
    part = msg.get_body(preferencelist=("plain",))
    text = _decoded(part) if part is not None else ""
    if text.strip():
        return text
    part = msg.get_body(preferencelist=("html",))  # HTML only, or an empty text part beside the HTML
    return html_to_text(_decoded(part)) if part is not None else text


def strip_quotes(text: str) -> str:
    """The newest reply in `text`, without the quoted message and the signature."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    parsed = ParsedReply(text=normalized, languages=list(LANGUAGES), keep_hyphen_lists=True).read()
    if not parsed.replies:
        return ""
    first = parsed.replies[0]
    lines = first.body.split("\n")
    if first.headers:
        # The quote header came first: the member answered below (or between) the quoted lines.
        lines = [line for line in lines if not line.lstrip().startswith(">")]
    else:
        while lines and (lines[-1].lstrip().startswith(">") or not lines[-1].strip()):
            lines.pop()  # a quote at the end, without a header line before it
    return "\n".join(lines).strip()


def reply_text(msg: EmailMessage) -> str:
    """What to post. Raises NoText when nothing is left (or the message carried only attachments)."""
    text = strip_quotes(body_text(msg))
    if not text.strip():
        raise NoText(attachments_only=has_attachments(msg) and not body_text(msg).strip())
    return text
