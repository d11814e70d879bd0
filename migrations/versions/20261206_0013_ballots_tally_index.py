"""ballots: an index on (proposal_id, choice) on SQLite, for the live tally

Every proposal page with a visible tally and every cast counts the open proposal's ballots by choice. On SQLite
the ballots table has no rowid, so that count walked the (proposal_id, voter_ref) index and looked every ballot
up again by its key; with this index it reads the counts from the index alone, already grouped. PostgreSQL's
json type has no b-tree ordering, so the index is SQLite's only.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.create_index('ix_ballots_proposal_id_choice', 'ballots', ['proposal_id', 'choice'])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.drop_index('ix_ballots_proposal_id_choice', table_name='ballots')
