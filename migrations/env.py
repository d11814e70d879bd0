"""Alembic environment: the URL comes from Plenary's settings unless the caller set `sqlalchemy.url`.

SQLite migrations run in batch mode with foreign keys OFF on a connection of their own: batch mode rebuilds a
table by copy-and-drop, and with foreign keys on, dropping a parent table cascades and deletes child rows.

An index the models create on one dialect only (`Index(...).ddl_if(dialect=...)`) is left out of the comparison
on the others, which autogenerate does not do by itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from app.models import metadata

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from app.settings import Settings

    return Settings.from_env().database_url


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _for_this_dialect(dialect: str):  # type: ignore[no-untyped-def]
    def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        only = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        return only is None or only == dialect
    return include_object


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    is_sqlite = connection.dialect.name == "sqlite"
    if is_sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()  # else the PRAGMA's implicit transaction swallows the alembic_version update
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=is_sqlite,
        compare_type=True,
        include_object=_for_this_dialect(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
