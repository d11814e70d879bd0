"""`POST /inbound/email`: the webhook door for replies (the raw MIME message as the body, a shared secret in a
header or as Basic auth). Same work and reasons as SMTP, answered as JSON with 4xx codes; off (404) without a
secret; wrong secrets are rate-limited; no CSRF token is needed (it authenticates itself)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from sqlalchemy import func, select

from app.comments.models import Comment
from app.mail.reply_address import reply_address
from app.main import create_app
from tests.conftest import Client
from tests.functional.test_comment_mail import REPLY_DOMAIN, make_people, open_proposal, post
from tests.functional.test_inbound_smtp import gmail_quote, reply

SECRET = "inbound-" + "s" * 40


@pytest.fixture
def mail(settings):  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, reply_domain=REPLY_DOMAIN, inbound_secret=SECRET, inbound_max_kb=64,
                               rate_limit_count=3)


@pytest.fixture
def mail_app(mail, db):  # type: ignore[no-untyped-def]
    return create_app(mail, db=db)


@pytest.fixture
def people(db, admin, member):  # type: ignore[no-untyped-def]
    return make_people(db, admin, member)


@pytest.fixture
def proposal(db, admin, people) -> int:  # type: ignore[no-untyped-def]
    return open_proposal(db, admin)


@pytest.fixture
def provider(mail_app):  # type: ignore[no-untyped-def]
    """A mail provider: no cookies, no CSRF token, just the message and the secret."""
    with Client(mail_app, base_url="http://testserver") as c:
        yield c


def deliver(provider, raw: bytes, secret: str | None = SECRET, **headers: str):  # type: ignore[no-untyped-def]
    sent = {"content-type": "message/rfc822", **{k.replace("_", "-"): v for k, v in headers.items()}}
    if secret is not None:
        sent["x-plenary-inbound-secret"] = secret
    return provider.post("/inbound/email", content=raw, headers=sent)


def count(db) -> int:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Comment))


def test_the_right_secret_posts_the_reply(provider, mail, db, people, proposal):
    mia = people["mia"]
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal)
    msg = reply(mia.email, address, "Sent through the provider.\n\n" + gmail_quote("Vote: green?", address))
    r = deliver(provider, msg.as_bytes())
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["outcome"] == "posted" and body["smtp"].startswith("250")
    with db.read() as s:
        c = s.get(Comment, body["comment_id"])
        assert (c.author_id, c.body_md, c.parent_id) == (mia.id, "Sent through the provider.", None)
    again = deliver(provider, msg.as_bytes())  # the provider retries: nothing new
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate" and count(db) == 1


def test_basic_auth_and_the_recipient_header(provider, mail, db, people, proposal):
    mia = people["mia"]
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal)
    # The provider rewrote To (a forwarding alias) but says who the envelope recipient was.
    msg = reply(mia.email, "comments@example.org", "Forwarded to the webhook.")
    auth = "Basic " + base64.b64encode(f"provider:{SECRET}".encode()).decode()
    r = deliver(provider, msg.as_bytes(), secret=None, authorization=auth, x_plenary_recipient=address)
    assert r.status_code == 200 and r.json()["outcome"] == "posted"
    lost = deliver(provider, reply(mia.email, "comments@example.org", "No address anywhere.").as_bytes())
    assert lost.status_code == 404 and "not addressed to a reply address" in lost.json()["message"]
    assert count(db) == 1


@pytest.mark.parametrize(("case", "status", "says"), [
    ("bad token", 404, "This reply address is not valid"),
    ("forged From", 403, "belongs to another member"),
    ("empty", 422, "Your reply is empty"),
    ("attachment only", 422, "only attachments"),
    ("hidden parent", 409, "A moderator hid this comment"),
])
def test_refusals_have_the_smtp_reasons_as_4xx(case, status, says, provider, mail_app, mail, db, admin, people,
                                               proposal):
    mia, olu = people["mia"], people["olu"]
    top = post(mail_app, olu, proposal, "Olu's comment.")
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal, comment_id=top)
    msg = reply(mia.email, address, "An answer.")
    if case == "bad token":
        msg.replace_header("To", f"reply+{'a' * 40}@{REPLY_DOMAIN}")
    elif case == "forged From":
        msg.replace_header("From", "someone@elsewhere.example")
    elif case == "empty":
        msg = reply(mia.email, address, "\n\n-- \nMia\n")
    elif case == "attachment only":
        msg = reply(mia.email, address, None, attachment=b"\x89PNG" + b"0" * 50)
    elif case == "hidden parent":
        with Client(mail_app, base_url="http://testserver") as boss:
            boss.sign_in(admin.email)
            assert boss.form(f"/comments/{top}/hide", {"reason": "Off topic"}).status_code == 303
    r = deliver(provider, msg.as_bytes())
    assert r.status_code == status and says in r.json()["message"], r.text
    assert r.json()["outcome"] == "refused" and r.json()["smtp"].startswith("550")
    assert count(db) == 1


def test_wrong_secrets_are_refused_and_rate_limited(provider, mail, db, people, proposal):
    mia = people["mia"]
    good = reply(mia.email, reply_address(mail, member_id=mia.id, proposal_id=proposal), "Hello.").as_bytes()
    assert deliver(provider, good, secret=None).status_code == 401
    assert deliver(provider, good, secret=SECRET[:-1] + "x").status_code == 401
    assert deliver(provider, good, secret="Basic nonsense").status_code == 401
    # Three wrong secrets (the limit here): from now on this client is refused before its secret is looked at.
    limited = deliver(provider, good)
    assert limited.status_code == 429 and count(db) == 0


def test_no_secret_configured_means_no_webhook(settings, db, people, proposal):
    off = dataclasses.replace(settings, reply_domain=REPLY_DOMAIN)
    with Client(create_app(off, db=db), base_url="http://testserver") as c:
        assert c.post("/inbound/email", content=b"From: x@y\r\n\r\nhi",
                      headers={"x-plenary-inbound-secret": ""}).status_code == 404
        assert c.post("/inbound/email", content=b"x", headers={"x-plenary-inbound-secret": "anything"}
                      ).status_code == 404


def test_an_oversize_body_is_refused(provider, mail, db, people, proposal):
    mia = people["mia"]
    address = reply_address(mail, member_id=mia.id, proposal_id=proposal)
    big = reply(mia.email, address, "Long. " * 20_000).as_bytes()
    assert len(big) > 64 * 1024
    r = deliver(provider, big)
    assert r.status_code == 413 and "larger than 64 KiB" in r.json()["message"]
    huge = deliver(provider, b"x" * (6 * 1024 * 1024 + 1))  # past what the web server takes at all
    assert huge.status_code == 413
    assert deliver(provider, b"").status_code == 400
    assert count(db) == 0
