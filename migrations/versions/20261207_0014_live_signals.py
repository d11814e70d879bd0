"""live_signals: SQLite's live-update announcements between processes

On PostgreSQL an announcement is a NOTIFY; on SQLite it was a hook in the one web process, so a second web
process, or a separate `plenary worker` closing a proposal, could not reach the pages open on another. Each
announcement now raises its (proposal, kind) row's version in the transaction that makes the change, and every
process with open streams reads the rows raised since its last look (app/live.py). PostgreSQL gets the table
too, unused, so both schemas stay the same.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'live_signals',
        sa.Column('proposal_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('origin', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('proposal_id', 'kind', name=op.f('pk_live_signals')),
    )
    op.create_index('ix_live_signals_version', 'live_signals', ['version'])


def downgrade() -> None:
    op.drop_index('ix_live_signals_version', table_name='live_signals')
    op.drop_table('live_signals')
