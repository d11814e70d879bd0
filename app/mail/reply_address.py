"""Reply addresses: `reply+TOKEN@reply-domain`, the Reply-To of notification mails and announcements.

The token names a member, a proposal and the comment being answered (0: none, a new top-level comment), and is
signed like the other links in mail (`security.sign`, HMAC-SHA256 with the app's secret, 128 bits kept) with a
purpose of its own, so no other token can stand in for it or it for another. It fits a local part (at most 64
characters with the `reply+` prefix) and survives mail servers that lower-case local parts: ids are lowercase
hex and the signature lowercase base32. It carries no expiry: it is good while its proposal is open, which the
inbound side checks against the database (a deadline moved by an admin moves it too).

Like a vote link, a reply address is the member's own: whoever holds it can post as them on that proposal while
it is open, which is why the inbound side also requires the message's From to be the member's address.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from app import security
from app.settings import Settings

_PURPOSE = "reply-to"
PREFIX = "reply+"
_ID = r"[1-9a-f][0-9a-f]{0,8}"
_TOKEN = re.compile(rf"^({_ID})-({_ID})-(0|{_ID})-([a-z2-7]{{26}})$")
_MAX_ID = 16**9 - 1  # nine hex digits: the longest token leaves the local part under 64 characters


@dataclass(frozen=True)
class ReplyToken:
    member_id: int
    proposal_id: int
    comment_id: int | None  # the comment answered; None: a new top-level comment


def _mac(settings: Settings, member_id: int, proposal_id: int, comment_id: int) -> str:
    digest = bytes.fromhex(security.sign(settings.secret_key, _PURPOSE, f"{member_id}:{proposal_id}:{comment_id}"))
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def reply_token(settings: Settings, *, member_id: int, proposal_id: int, comment_id: int | None = None) -> str:
    comment = comment_id or 0
    if not (0 < member_id <= _MAX_ID and 0 < proposal_id <= _MAX_ID and 0 <= comment <= _MAX_ID):
        raise ValueError("an id too large for a reply address")
    return f"{member_id:x}-{proposal_id:x}-{comment:x}-{_mac(settings, member_id, proposal_id, comment)}"


def read_reply_token(settings: Settings, token: str) -> ReplyToken | None:
    """What a token names, when it is one we signed; else None. Says nothing about whether it is still good."""
    match = _TOKEN.match((token or "").strip().lower())
    if match is None:
        return None
    member_id, proposal_id, comment_id = (int(match.group(i), 16) for i in (1, 2, 3))
    if not security.constant_equals(match.group(4), _mac(settings, member_id, proposal_id, comment_id)):
        return None
    return ReplyToken(member_id, proposal_id, comment_id or None)


def read_reply_address(settings: Settings, address: str) -> ReplyToken | None:
    """The token of an address `reply+TOKEN@any.domain` (case does not matter), or None. The domain is not
    checked: the signature is what counts, and forwarding set-ups may rewrite it."""
    local, at, domain = (address or "").strip().strip("<>").rpartition("@")
    if not at or not domain or not local.lower().startswith(PREFIX):
        return None
    return read_reply_token(settings, local[len(PREFIX):])


def reply_address(settings: Settings, *, member_id: int, proposal_id: int, comment_id: int | None = None) -> str | None:
    """The member's reply address for this proposal (and comment), or None when replies by email are off."""
    domain = settings.reply_to_domain
    if domain is None:
        return None
    token = reply_token(settings, member_id=member_id, proposal_id=proposal_id, comment_id=comment_id)
    return f"{PREFIX}{token}@{domain}"


def reply_headers(settings: Settings, *, member_id: int, proposal_id: int,
                  comment_id: int | None = None) -> dict[str, str]:
    """`{"Reply-To": address}`, or nothing when replies by email are off."""
    address = reply_address(settings, member_id=member_id, proposal_id=proposal_id, comment_id=comment_id)
    return {"Reply-To": address} if address else {}
