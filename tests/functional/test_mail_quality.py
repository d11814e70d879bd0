"""Every kind of email Plenary sends, as it leaves: made by the real flows (opening, voting, reminding, closing,
digests, comments, campaigns, action steps, sign-in, invitations, email changes), sent by the real sender to a
real SMTP server, then checked as received: under 100 KB, a text/plain part, an HTML part that needs no images
and declares light and dark colour schemes, and a SpamAssassin score under 2.0 (offline rules, no Bayes).

A new folder under templates/email/ fails `test_every_kind_is_covered` until the scenario below sends it.
Without `spamassassin` on the machine the scoring is skipped with a notice, except in CI, where it fails
(`apt-get install -y spamassassin`). The scoring runs a few `spamassassin` processes at a time.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from app.actions import campaigns
from app.actions import services as actions
from app.actions.services import StepData
from app.comments import services as comments
from app.db import Database, utcnow
from app.mail.digest import run_due_digests
from app.mail.models import MailPreference, MemberMailSettings, OutboxMessage
from app.mail.outbox import EMAIL_TEMPLATES
from app.mail.sender import drain_once
from app.mail.sink import SinkMessage, SmtpSink
from app.members import auth
from app.members import services as members
from app.members.models import TokenPurpose
from app.middleware import CurrentMember
from app.proposals.models import Option, Proposal
from app.proposals.services import set_outcome
from app.settings import Settings
from app.voting import notify
from app.voting import services as voting
from tests.factories import _ctx, make_member, make_proposal
from tests.functional.test_mail_sender import run

MAX_BYTES = 100 * 1024
MAX_SCORE = 2.0
ORG = "Riverside Tenants"
BODY = """The stairwell of building B has not been painted since 2009. The board got three quotes:

- **Kowalski & Sons**: 4,200 EUR, two weeks in May
- *Fresh Coat*: 3,850 EUR, three weeks in June
- doing it ourselves on two Saturdays: about 900 EUR of paint and rollers

The money would come from the maintenance reserve, which holds 11,300 EUR today. Read the quotes on the
[shared drive](https://example.org/quotes) before you vote, and ask questions in the comments below.
"""


def kinds_on_disk() -> set[str]:
    return {p.name for p in EMAIL_TEMPLATES.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


def me(m: Any) -> CurrentMember:
    return CurrentMember(id=m.id, name=m.name, email=m.email, role=m.role, session_id=0)


def everything_plenary_sends(db: Database, settings: Settings) -> None:
    """One realistic organization's week, through the services the views and the worker call."""
    now = utcnow()
    with db.begin() as s:
        admin = make_member(s, email="ada.okafor@example.org", name="Ada Okafor", role="admin")
        mia = make_member(s, email="mia.schmidt@example.org", name="Mia Schmidt")
        jonas = make_member(s, email="jonas.weber@example.org", name="Jonas Weber")
        make_member(s, email="lea.fischer@example.org", name="Léa Fischer")
        s.add(MailPreference(member_id=jonas.id, kind="announcement", mode="digest"))
        s.add(MemberMailSettings(member_id=jonas.id, digest_every="daily"))
        stairs = make_proposal(s, title="Repaint the stairwell of building B", summary="Three quotes, one budget.",
                               body_md=BODY, method="single", secret=False, visibility="live",
                               options=("Kowalski & Sons", "Fresh Coat", "Do it ourselves"),
                               closes_in=dt.timedelta(days=7), created_by=admin.id)
        bins = make_proposal(s, title="Move the bins to the courtyard?", body_md="The city asks us to.",
                             closes_in=dt.timedelta(days=7), created_by=admin.id)
    with db.begin() as s:  # campaign_announcement (first: later ones meet the weekly budget)
        campaigns.create_campaign(s, settings, campaigns.CampaignData(
            title="Spring clean-up of the courtyard", body_md="Rakes and bags are in the bike shed. "
            "We start at 10 and finish with coffee in the common room.", group_id=None, publish=True),
            actor_id=admin.id)
    for pid in (stairs.id, bins.id):
        with db.begin() as s:
            voting.open_proposal(s, settings, pid)  # announcement (Jonas: folded into his digest)
    with db.begin() as s:
        [first] = s.scalars(select(Option.id).where(Option.proposal_id == stairs.id)
                            .order_by(Option.position).limit(1))
        voting.cast_ballot(s, settings, proposal_id=stairs.id, member_id=mia.id, raw_choice=str(first))
        notify.confirm_vote(s, settings, s.get(Proposal, stairs.id), member_id=mia.id, choice=str(first))
    with db.begin() as s:  # the conversation: a reply, a mention, an official response
        question = comments.post_comment(s, me(jonas), stairs.id, settings=settings, stance="against",
                                         body="Two Saturdays of our own work seems a lot to ask. Who has done "
                                              "this before, and how long did the first coat take?")
    with db.begin() as s:
        comments.post_comment(s, me(mia), stairs.id, settings=settings, parent_id=question.id,  # comment_reply
                              body="We painted building A ourselves in 2021: one Saturday per floor. "
                                   "@Léa_Fischer kept the list of who brought what.")  # mention
    with db.begin() as s:
        comments.post_comment(s, me(admin), stairs.id, settings=settings, response_status="review",
                              body="Thank you both. The board will ask Kowalski & Sons whether they can "
                                   "start in April and report back here.")  # official_response
    with db.begin() as s:
        notify.remind(s, settings, stairs.id, now=now + dt.timedelta(days=6))  # reminder to who has not voted
    with db.begin() as s:
        voting.close_proposal(s, settings, stairs.id, actor_id=admin.id, org_name=ORG)  # results
    with db.begin() as s:
        set_outcome(s, stairs.id, "We hire **Kowalski & Sons** for May. The board signs the contract on Monday.",
                    actor_id=admin.id, settings=settings, send_update=True)  # outcome_update
    with db.begin() as s:
        start = (now + dt.timedelta(hours=20)).replace(minute=0, second=0, microsecond=0)
        shift = actions.create_step(s, StepData(kind="shift", title="Clear the stairwell before the painters",
                                                place="Building B, ground floor", starts_at=start,
                                                ends_at=start + dt.timedelta(hours=3), capacity=6,
                                                description="Bring gloves. We carry bikes and plants outside."),
                                    proposal_id=stairs.id)
        actions.commit(s, settings, me(mia), shift.id)  # commitment, with its calendar file
    with db.begin() as s:
        actions.send_reminders(s, settings)  # shift_reminder
    with db.begin() as s:
        actions.message_committed(s, settings, s.get(actions.ActionStep, shift.id),
                                  subject="We meet at the back door",
                                  body="The front door is blocked by the scaffolding. See you at 9!")  # action_message
    assert run_due_digests(db, settings, now=now + dt.timedelta(days=1, minutes=1)) == 1  # Jonas's daily digest
    with db.begin() as s:
        auth.request_link(s, settings, email=mia.email, purpose=TokenPurpose.SIGNIN, ip="198.51.100.7", org_name=ORG)
        auth.request_link(s, settings, email=jonas.email, purpose=TokenPurpose.RESET, ip="198.51.100.7",
                          org_name=ORG)
        members.invite_member(s, settings, actor_id=admin.id, name="Noah Becker", email="noah.becker@example.org",
                              org_name=ORG)
    with db.begin() as s:
        auth.request_email_change(s, settings, _ctx, member_id=mia.id, new_email="mia@schmidt.example.net",
                                  password="", ip="198.51.100.7", org_name=ORG)


@pytest.fixture
def received(settings: Settings, db: Database, org: None, smtp_sink: SmtpSink) -> dict[str, SinkMessage]:
    """The first message of each kind, as the SMTP server received it."""
    # A production-like base URL: its host names the Message-IDs, List-Id and links. (With a bare "testserver",
    # SpamAssassin's __MSGID_NOFQDN2 fires, and one more rule with it reached 2.0.)
    sending = dataclasses.replace(settings, base_url="https://vote.riverside-tenants.example.org",
                                  smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}?timeout=10",
                                  mail_from=f"{ORG} <votes@riverside-tenants.example.org>")
    everything_plenary_sends(db, sending)
    with db.begin() as s:  # an outcome update and a reminder are due now, whatever the scenario's clock said
        s.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
    while run(drain_once(sending, db)):
        pass
    with db.read() as s:
        by_id = {m: k for m, k in s.execute(select(OutboxMessage.message_id, OutboxMessage.kind))}
        assert not s.scalars(select(OutboxMessage.last_error).where(OutboxMessage.status != "sent")).all()
    first: dict[str, SinkMessage] = {}
    for m in smtp_sink.messages:
        first.setdefault(by_id[m.message_id], m)
    return first


# The mail content is the same whatever the database: one scenario, on SQLite.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
def test_every_kind_is_covered_small_with_text_and_safe_html(received: dict[str, SinkMessage]) -> None:
    assert set(received) == kinds_on_disk(), "add the new kind to everything_plenary_sends()"
    for kind, m in received.items():
        assert len(m.raw) < MAX_BYTES, (kind, len(m.raw))
        msg = m.message
        for header in ("Date", "Message-ID", "From", "To", "Subject", "MIME-Version"):
            assert msg[header], (kind, header)
        plain = msg.get_body(("plain",))
        assert plain is not None and len(plain.get_content().split()) >= 10, kind
        html_part = msg.get_body(("html",))
        assert html_part is not None, kind
        html = html_part.get_content()
        assert '<meta name="color-scheme" content="light dark">' in html, kind
        assert '<meta name="supported-color-schemes" content="light dark">' in html, kind
        assert "@media (prefers-color-scheme: dark)" in html, kind
        assert not re.search(r"<img\b|background-image|url\(", html, re.IGNORECASE), kind  # nothing to load
        # Every background set is set with a text colour next to it or inherited from one that is.
        assert re.search(r'<body[^>]*style="[^"]*background:#[0-9a-f]{6};color:#[0-9a-f]{6}', html), kind
    bulk = {"announcement", "reminder", "results", "outcome_update", "digest", "action_message",
            "campaign_announcement", "comment_reply", "mention", "official_response"}
    for kind in bulk & set(received):
        msg = received[kind].message
        assert msg["List-Unsubscribe"] and msg["List-Id"], kind
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", kind


# --- SpamAssassin --------------------------------------------------------------------------------------------

SCORE = re.compile(rb"^X-Spam-Status: \w+, score=(-?[0-9.]+) required=[0-9.]+ tests=(.*?)(?=^\S)",
                   re.MULTILINE | re.DOTALL)


def in_ci() -> bool:  # as tests/browser/harness.py decides it
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found is None:
        if in_ci():
            pytest.fail("spamassassin is not installed: apt-get install -y spamassassin (.ci/run does this)")
        pytest.skip("spamassassin is not installed (apt-get install -y spamassassin): mail is not scored")
    return found


def score(binary: str, raw: bytes, home: Path) -> tuple[float, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    out = subprocess.run([binary, "-L", "-t", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"], input=raw,
                         capture_output=True, env=env, timeout=120, check=False).stdout
    found = SCORE.search(out)
    assert found is not None, out[:2000]
    return float(found.group(1)), " ".join(found.group(2).decode().split())


@pytest.fixture
def sa_home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "sa-home"


def careless(raw: bytes) -> bytes:
    """The control: the same message as a careless sender would send it (no Date, no Message-ID, HTML only,
    a shouting subject), which the same scoring must put over the limit, or the scoring proves nothing."""
    head, _, _ = raw.partition(b"\r\n\r\n")
    keep = [line for line in re.split(rb"\r\n(?![ \t])", head)
            if line.split(b":", 1)[0].lower() in (b"from", b"to")]
    return b"\r\n".join([*keep, b"Subject: FREE MONEY!!! ACT NOW", b"MIME-Version: 1.0",
                           b'Content-Type: text/html; charset="utf-8"', b"", b"<html><body><p><font size=7>"
                           b"CLICK <a href=http://192.0.2.7/x>HERE</a> TO CLAIM YOUR PRIZE</font></p></body></html>",
                           b""])


@sqlite_only
def test_every_kind_scores_under_two_with_spamassassin(received: dict[str, SinkMessage], sa_home: Path) -> None:
    binary = spamassassin()
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        control = pool.submit(score, binary, careless(received["announcement"].raw), sa_home / "control")
        futures = {kind: pool.submit(score, binary, m.raw, sa_home / kind) for kind, m in received.items()}
        scores = {kind: f.result() for kind, f in futures.items()}
    too_high = {kind: s for kind, s in scores.items() if s[0] >= MAX_SCORE}
    assert not too_high, too_high
    assert set(scores) == kinds_on_disk()
    assert control.result()[0] >= MAX_SCORE, control.result()
