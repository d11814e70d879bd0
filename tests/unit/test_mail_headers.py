"""Headers we build ourselves (List-Unsubscribe, List-Id, threading) leave the sender as plain ASCII."""

from __future__ import annotations

import email
from email import policy
from types import SimpleNamespace

from app.mail.sender import MessageBuilder

HOST = "plenary.riverside-tenants.example.org"
TOKEN = "12345-outcome_update-" + "a" * 32


def _row(**headers: str) -> SimpleNamespace:
    return SimpleNamespace(to_addr="zoe@example.org", to_name="Zoë", subject="Result: paint the hall?",
                           message_id=f"<1.results@{HOST}>", text_body="hi", html_body="<p>hi</p>",
                           headers=headers)


def test_long_list_unsubscribe_is_folded_between_items_never_encoded() -> None:
    value = f"<https://{HOST}/unsubscribe/{TOKEN}>, <mailto:unsubscribe+{TOKEN}@{HOST}>"
    row = _row(**{"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                  "List-Id": f"<riverside-tenants.plenary.{HOST}>",
                  "In-Reply-To": f"<proposal-abcdefghijklmnop@{HOST}>",
                  "References": f"<proposal-abcdefghijklmnop@{HOST}>"})
    raw = (MessageBuilder("Riverside <votes@example.org>").build(row))
    head = raw.split(b"\r\n\r\n", 1)[0]
    ours = [line for line in head.split(b"\r\n") if line.startswith((b"List-", b"In-Reply-To", b"References", b" <"))]
    assert len(ours) == 6 and not any(b"=?" in line for line in ours)
    assert f"List-Unsubscribe: <https://{HOST}/unsubscribe/{TOKEN}>,\r\n <mailto:".encode() in head
    assert max(len(line) for line in head.split(b"\r\n")) < 998
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["List-Unsubscribe"] == value
    assert parsed["References"] == f"<proposal-abcdefghijklmnop@{HOST}>"
