"""Attachments on outbox rows: a calendar file travels as multipart/mixed; anything else is refused."""

from __future__ import annotations

import email
from email import policy
from types import SimpleNamespace

import pytest

from app.mail.sender import MessageBuilder

ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"


def _row(attachments: object) -> SimpleNamespace:
    return SimpleNamespace(to_addr="zoe@example.org", to_name="Zoë", subject="You're in: river clean-up",
                           message_id="<1.commitment@example.org>", text_body="hi", html_body="<p>hi</p>",
                           headers={}, attachments=attachments)


def test_calendar_attachment_is_sent_beside_the_alternative() -> None:
    att = [{"filename": "shift.ics", "mime_type": "text/calendar", "method": "REQUEST", "content": ICS}]
    raw = (MessageBuilder("Riverside <votes@example.org>").build(_row(att)))
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    alternative, calendar = msg.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_filename() == "shift.ics"
    assert calendar.get_payload(decode=True) == ICS.encode()  # CRLF line ends kept (RFC 5545)


def test_no_attachments_keeps_the_plain_alternative() -> None:
    raw = MessageBuilder("Riverside <votes@example.org>").build(_row(None))
    assert email.message_from_bytes(raw, policy=policy.default).get_content_type() == "multipart/alternative"


@pytest.mark.parametrize("att", [
    {"filename": "x.html", "mime_type": "text/html", "content": "<script>"},
    {"filename": "../etc/passwd", "mime_type": "text/calendar", "content": ICS},
    {"filename": "a.ics\r\nBcc: x@example.org", "mime_type": "text/calendar", "content": ICS},
    {"filename": "a.ics", "mime_type": "text/calendar", "content": b"bytes"},
])
def test_unsafe_attachments_are_refused(att: dict) -> None:
    with pytest.raises(ValueError):
        MessageBuilder("Riverside <votes@example.org>").build(_row([att]))
