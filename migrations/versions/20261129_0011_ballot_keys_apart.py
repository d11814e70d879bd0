"""ballot keys apart, and no groups on ballots

A proposal's ballot key moves from `proposals.ballot_key` to a table of its own, `ballot_keys`: erasing it at
close then deletes one small row instead of writing a new version of the whole proposal row (on PostgreSQL the
old version, key included, stays on disk until vacuumed), and the scrub after close rewrites only this table.

`ballots.group_ids` and `counted_ballots.group_ids` go: a voter's set of groups identifies a member whose
combination of groups is unique. The breakdown by group is computed at close and stored with the result.

On PostgreSQL, statistics are never collected on the key or the voter references (ANALYZE would copy sample
values into pg_statistic), and the tables that held keys and ballots are rewritten once, so no old row version
or free space left in their pages still holds a key erased before this revision.

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-29 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pg() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def _rewrite(*tables: str) -> None:
    """VACUUM FULL cannot run in a transaction: commit what came before, then rewrite each table."""
    with op.get_context().autocommit_block():
        for table in tables:
            op.execute(f'VACUUM (FULL) {table}')


def upgrade() -> None:
    op.create_table(
        'ballot_keys',
        sa.Column('proposal_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_ballot_keys_proposal_id_proposals'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('proposal_id', name=op.f('pk_ballot_keys')),
    )
    op.execute('INSERT INTO ballot_keys (proposal_id, key) '
               'SELECT id, ballot_key FROM proposals WHERE ballot_key IS NOT NULL')
    op.execute('UPDATE proposals SET ballot_key = NULL WHERE ballot_key IS NOT NULL')
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.drop_column('ballot_key')
    with op.batch_alter_table('ballots', schema=None) as batch_op:
        batch_op.drop_column('group_ids')
    with op.batch_alter_table('counted_ballots', schema=None) as batch_op:
        batch_op.drop_column('group_ids')
    if _pg():
        op.execute('ALTER TABLE ballot_keys ALTER COLUMN key SET STATISTICS 0')
        op.execute('ALTER TABLE ballots ALTER COLUMN voter_ref SET STATISTICS 0')
        _rewrite('proposals', 'ballots', 'counted_ballots')


def downgrade() -> None:
    with op.batch_alter_table('counted_ballots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_ids', sa.String(length=500), nullable=False, server_default=''))
    with op.batch_alter_table('ballots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_ids', sa.String(length=500), nullable=False, server_default=''))
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ballot_key', sa.LargeBinary(length=32), nullable=True))
    op.execute('UPDATE proposals SET ballot_key = (SELECT k.key FROM ballot_keys k WHERE k.proposal_id = proposals.id) '
               'WHERE id IN (SELECT proposal_id FROM ballot_keys)')
    if _pg():
        op.execute('ALTER TABLE ballots ALTER COLUMN voter_ref SET STATISTICS -1')
    op.drop_table('ballot_keys')
