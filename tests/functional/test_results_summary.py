"""The results email's summary, as a real SMTP server receives it: the strongest arguments for and against (most
endorsed, visible, shortened, escaped) and the action steps with links to sign up; the outcome update lists the
steps too."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import update

from app.actions import services as actions
from app.actions.services import StepData
from app.comments.models import Comment
from app.db import utcnow
from app.main import create_app
from app.voting import services as voting
from tests.conftest import Client
from tests.factories import make_comment, make_member, make_proposal
from tests.functional.test_mail_announce import text_of
from tests.functional.test_mail_links import deliver

LONG = ("Green is calm and cheap to maintain. " + "It also hides the scuffs that every hallway gets over the years, "
        "which matters more than anything else in a building with children. " * 4)


@pytest.fixture
def mail(settings, smtp_sink):  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")


@pytest.fixture
def closed(mail, db, admin, member):  # type: ignore[no-untyped-def]
    """A proposal with arguments on both sides and two action steps, then closed (results queued)."""
    with db.begin() as s:
        olu = make_member(s, email="olu@example.org", name="Olu Other")
        p = make_proposal(s, title="Paint the hall green?", state="open", created_by=admin.id)
        made = {
            "top_for": make_comment(s, p, member, body=LONG, stance="for"),
            "second_for": make_comment(s, p, olu, body="Cheaper than **blue** <b>really</b>.", stance="for"),
            "third_for": make_comment(s, p, olu, body="Also fine.", stance="for"),
            "hidden_for": make_comment(s, p, olu, body="Hidden but endorsed a lot.", stance="for"),
            "against": make_comment(s, p, olu, body="Green clashes with the brick. Also: cost.", stance="against"),
            "neutral": make_comment(s, p, member, body="No view, endorsed most.", stance="neutral"),
        }
        make_comment(s, p, member, body="A reply with a stance-less voice.", parent=made["against"])
        for key, n in (("top_for", 5), ("second_for", 3), ("third_for", 1), ("hidden_for", 50), ("against", 2),
                       ("neutral", 99)):
            s.execute(update(Comment).where(Comment.id == made[key].id).values(endorsement_count=n))
        s.get(Comment, made["hidden_for"].id).hidden_at = utcnow()
        start = (utcnow() + dt.timedelta(days=5)).replace(hour=9, minute=0, second=0, microsecond=0)
        shift = actions.create_step(s, StepData(kind="shift", title="Painting day", starts_at=start,
                                                ends_at=start + dt.timedelta(hours=3), place="The hall",
                                                capacity=8), proposal_id=p.id)
        pledge = actions.create_step(s, StepData(kind="pledge", title="Bring brushes", goal=20, unit="brushes"),
                                     proposal_id=p.id)
        voting.close_proposal(s, mail, p.id, actor_id=admin.id, reason="Done")
        return {"pid": p.id, "shift": shift.id, "pledge": pledge.id, **{k: c.id for k, c in made.items()}}


def test_the_results_mail_names_the_strongest_arguments_and_the_steps(mail, db, member, closed, smtp_sink):
    deliver(mail, db)
    [msg] = [m.message for m in smtp_sink.to(member.email) if m.message["Subject"].startswith("Result:")]
    text = text_of(msg)
    section = text[text.index("The strongest arguments:"):text.index("What you can do")]
    sides = re.findall(r"^- (For|Against): (.+?) \((.+?)\)$", section, flags=re.M)
    assert [s for s, _, _ in sides] == ["For", "For", "Against"]  # two a side at most, most endorsed first
    assert sides[0][1].startswith("Green is calm and cheap to maintain.") and len(sides[0][1]) < 300
    assert sides[0][2] == "Mia Member, 5 endorsements"
    assert sides[1][1] == "Cheaper than blue <b>really</b>."  # plain text: the Markdown is gone
    assert sides[2][1] == "Green clashes with the brick. Also: cost."
    assert "Hidden but endorsed" not in text and "No view" not in text and "Also fine." not in text
    assert f"http://testserver/comments/{closed['top_for']}#comment-{closed['top_for']}" in section
    steps = text[text.index("What you can do"):]
    pid = closed["pid"]
    assert "- Painting day (" in steps and "The hall, 8 places)" in steps
    assert f"http://testserver/proposals/{pid}/results#step-{closed['shift']}" in steps
    assert "- Bring brushes (goal: 20 brushes)" in steps

    html = BeautifulSoup(msg.get_body(preferencelist=("html",)).get_content(), "html.parser")
    items = html.select("#arguments li")
    assert len(items) == 3 and items[1].get_text(" ", strip=True).startswith("For: Cheaper than blue <b>really</b>.")
    assert not html.select("#arguments b")  # the comment's markup is text, escaped, not HTML
    links = [a["href"] for a in html.select("#action-steps a")]
    assert links == [f"http://testserver/proposals/{pid}/results#step-{closed['shift']}",
                     f"http://testserver/proposals/{pid}/results#step-{closed['pledge']}"]


def test_the_step_links_lead_to_the_sign_up_on_the_results_page(mail, db, admin, member, closed):
    app = create_app(mail, db=db)
    with Client(app, base_url="http://testserver") as c:
        c.sign_in(member.email)
        page = BeautifulSoup(c.get(f"/proposals/{closed['pid']}/results").text, "html.parser")
        for step in ("shift", "pledge"):
            article = page.select_one(f"#step-{closed[step]}")
            assert article is not None and article.find("form")  # where "I'm in" is


def test_the_outcome_update_lists_the_steps(mail, db, admin, member, closed, smtp_sink):
    app = create_app(mail, db=db)
    with Client(app, base_url="http://testserver") as boss:
        boss.sign_in(admin.email)
        r = boss.form(f"/admin/proposals/{closed['pid']}/outcome", {"outcome": "We paint in spring.", "notify": "1"})
        assert r.status_code == 303
    deliver(mail, db)
    [msg] = [m.message for m in smtp_sink.to(member.email) if m.message["Subject"].startswith("Outcome:")]
    text = text_of(msg)
    assert "We paint in spring." in text and "Painting day" in text and "Bring brushes" in text
    html = BeautifulSoup(msg.get_body(preferencelist=("html",)).get_content(), "html.parser")
    assert len(html.select("#action-steps a")) == 2


def test_without_arguments_or_steps_the_sections_are_left_out(mail, db, admin, member, smtp_sink):
    with db.begin() as s:
        p = make_proposal(s, title="Quiet question", state="open")
        voting.close_proposal(s, mail, p.id, actor_id=admin.id, reason="Done")
    deliver(mail, db)
    [msg] = [m.message for m in smtp_sink.to(member.email) if m.message["Subject"].startswith("Result:")]
    assert "strongest arguments" not in text_of(msg) and "What you can do" not in text_of(msg)
