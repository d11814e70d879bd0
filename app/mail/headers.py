"""What marks a message as bulk mail and threads it: the signed unsubscribe token and the headers built from it.

Bulk mail (announcements, reminders, results, outcome updates, mail about comments, digests) carries
`List-Unsubscribe` with an https and a mailto address, `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
(RFC 8058), `List-Id` (RFC 2919) and `Auto-Submitted: auto-generated` (RFC 3834). Mail about a proposal also
carries `In-Reply-To` and `References` naming one stable id per proposal, so mail apps show a proposal's messages
as one thread.
Sign-in links, invitations, resets and email-change messages carry none of the List-* headers.

The unsubscribe token is an HMAC over (member, kind) with the app's secret. It can only unsubscribe: no page
that signs in, shows a profile or casts a vote accepts it (the signature's purpose differs from every other
token's), and it names nothing but a member id and a kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from app import security
from app.settings import Settings

BULK_KINDS = ("announcement", "reminder", "results", "outcome_update", "comment_reply", "mention",
              "official_response", "digest")
_PURPOSE = "unsubscribe"
_TOKEN = re.compile(r"^([1-9][0-9]{0,11})-([a-z_]{1,32})-([0-9a-f]{32})$")


def mail_domain(settings: Settings) -> str:
    """The domain in Message-IDs, List-Id and the unsubscribe mailto: the base URL's host name."""
    host = urlsplit(settings.base_url).hostname or "localhost"
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"


def org_slug(org_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", org_name.lower()).strip("-")[:60].strip("-")
    return slug or "plenary"


def unsubscribe_token(settings: Settings, member_id: int, kind: str) -> str:
    mac = security.sign(settings.secret_key, _PURPOSE, f"{member_id}:{kind}")
    return f"{member_id}-{kind}-{mac}"


def read_unsubscribe_token(settings: Settings, token: str) -> tuple[int, str] | None:
    """(member id, kind) when the token is one we signed, else None. Says nothing about whether the member
    still exists: callers answer a valid token for a deleted member the same way as for a present one."""
    match = _TOKEN.match(token or "")
    if match is None or match.group(2) not in BULK_KINDS:
        return None
    member_id, kind, mac = int(match.group(1)), match.group(2), match.group(3)
    if not security.constant_equals(mac, security.sign(settings.secret_key, _PURPOSE, f"{member_id}:{kind}")):
        return None
    return member_id, kind


def unsubscribe_url(settings: Settings, token: str) -> str:
    return settings.url(f"/unsubscribe/{token}")


def proposal_thread_id(settings: Settings, public_id: str) -> str:
    return f"<proposal-{public_id}@{mail_domain(settings)}>"


def bulk_headers(settings: Settings, *, org_name: str, token: str, public_id: str | None = None) -> dict[str, str]:
    return bulk_header_maker(settings, org_name=org_name, public_id=public_id)(token)


def bulk_header_maker(settings: Settings, *, org_name: str,
                      public_id: str | None = None) -> Callable[[str], dict[str, str]]:
    """`bulk_headers` for one mailing: what all its messages share is worked out once, the token per member."""
    domain = mail_domain(settings)
    unsubscribe = settings.url("/unsubscribe/")
    shared = {
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"<{org_slug(org_name)}.plenary.{domain}>",
        "Auto-Submitted": "auto-generated",
        **(thread_headers(settings, public_id) if public_id else {}),
    }

    def headers(token: str) -> dict[str, str]:
        return {"List-Unsubscribe": f"<{unsubscribe}{token}>, <mailto:unsubscribe+{token}@{domain}>", **shared}

    return headers


def thread_headers(settings: Settings, public_id: str) -> dict[str, str]:
    thread = proposal_thread_id(settings, public_id)
    return {"In-Reply-To": thread, "References": thread}
