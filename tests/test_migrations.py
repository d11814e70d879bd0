"""Migrations: empty to head, no drift between models and migrations, down to base and up again, one head."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from app.models import metadata
from tests.conftest import PG_URL, alembic_config, scratch_pg_database


@pytest.fixture(params=["sqlite"] + (["postgresql"] if PG_URL else []))
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/migrations.db"
        return
    with scratch_pg_database("plenary_mig") as url:
        yield url


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_check_downgrade_upgrade(empty_url):
    cfg = alembic_config(empty_url)
    command.upgrade(cfg, "head")
    assert tables(empty_url) == set(metadata.tables)
    command.check(cfg)  # raises if the models and the migrations differ
    command.downgrade(cfg, "base")
    assert tables(empty_url) == set()
    command.upgrade(cfg, "head")
    command.check(cfg)


def test_single_head():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_migration_keeps_rows_on_sqlite(tmp_path):
    """Batch mode rebuilds tables; with foreign keys on, that would cascade-delete children. Rows survive."""
    url = f"sqlite:///{tmp_path}/keep.db"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO members (id, email, name, role, status, created_at) "
                          "VALUES (1, 'a@example.org', 'A', 'member', 'active', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO groups (id, name, description, created_at) "
                          "VALUES (1, 'G', '', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO group_memberships (group_id, member_id) VALUES (1, 1)"))
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "0001")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM group_memberships")).scalar() == 1
    engine.dispose()
