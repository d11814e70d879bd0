"""Migration 0007 moves existing comments to `kind` and paragraph 0 and back, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from tests.conftest import alembic_config
from tests.test_migrations import empty_url  # noqa: F401 - the fixture

ROWS = [  # id, parent_id, paragraph, response_status
    (1, None, None, None), (2, 1, None, None), (3, None, 2, None), (4, None, None, "accepted"), (5, 1, None, "review"),
]


def test_kind_and_paragraph_zero_both_ways(empty_url):  # noqa: F811
    cfg = alembic_config(empty_url)
    command.upgrade(cfg, "0006")
    engine = create_engine(empty_url)
    with engine.begin() as c:
        c.execute(text("INSERT INTO members (id, email, name, role, status, created_at) "
                       "VALUES (1, 'a@example.org', 'A', 'member', 'active', '2026-01-01 00:00:00+00')"))
        c.execute(text(
            "INSERT INTO proposals (id, public_id, kind, title, summary, body_md, current_text, proposed_text, method,"
            " threshold, threshold_strict, allow_none, max_score, secret, visibility, publish_choices, audience_all,"
            " state, close_reason, eligible_count, ballots_counted, outcome_md, created_at, updated_at) VALUES (1, 'x',"
            " 'policy', 't', '', '', '', 'a', 'yes_no', '1/2', true, false, 5, true, 'after_close', false, true,"
            " 'open', '', 0, 0, '', '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')"))
        for cid, parent, paragraph, status in ROWS:
            c.execute(text("INSERT INTO comments (id, proposal_id, author_id, parent_id, paragraph, response_status,"
                           " body_md, endorsement_count, created_at, hidden_reason) VALUES (:i, 1, 1, :p, :g, :s, 'x',"
                           " 0, '2026-01-01 00:00:00+00', '')"), {"i": cid, "p": parent, "g": paragraph, "s": status})
    try:
        command.upgrade(cfg, "head")
        command.check(cfg)
        with engine.connect() as c:
            assert c.execute(text("SELECT id, kind, paragraph FROM comments ORDER BY id")).all() == [
                (1, "comment", 0), (2, "reply", 0), (3, "comment", 2), (4, "response", 0), (5, "reply", 0)]
        for wrong in ("UPDATE comments SET kind = 'comment' WHERE id = 2",
                      "UPDATE comments SET kind = 'response' WHERE id = 1",
                      "UPDATE comments SET paragraph = NULL WHERE id = 1"):
            with pytest.raises(IntegrityError), engine.begin() as c:
                c.execute(text(wrong))
        command.downgrade(cfg, "0006")
        with engine.connect() as c:
            assert c.execute(text("SELECT id, parent_id, paragraph, response_status FROM comments ORDER BY id")
                             ).all() == ROWS
        command.upgrade(cfg, "head")
        command.check(cfg)
    finally:
        engine.dispose()
