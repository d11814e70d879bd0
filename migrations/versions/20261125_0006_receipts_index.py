"""counted ballots: one index on (proposal_id, receipt_hash) instead of (proposal_id), for receipts in pages

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 11:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('counted_ballots', schema=None) as batch_op:
        batch_op.create_index('ix_counted_ballots_proposal_id_receipt_hash', ['proposal_id', 'receipt_hash'],
                              unique=False)
        batch_op.drop_index(batch_op.f('ix_counted_ballots_proposal_id'))


def downgrade() -> None:
    with op.batch_alter_table('counted_ballots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_counted_ballots_proposal_id'), ['proposal_id'], unique=False)
        batch_op.drop_index('ix_counted_ballots_proposal_id_receipt_hash')
