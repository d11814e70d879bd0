"""bounces and cancelled mail

Members get a count of hard bounces in a row for their current address, when it was flagged as bouncing, and
the last refusal (when and the server's answer). Outbox messages can be cancelled (by an admin, or because
the address is bouncing), and remember when an admin put them back in the queue (their 48 hours of retries
count from then).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

outbox = sa.table('outbox', sa.column('status', sa.String), sa.column('last_error', sa.Text))


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bounce_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('bouncing_since', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_bounce_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_bounce', sa.Text(), server_default='', nullable=False))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requeued_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(op.f('ck_outbox_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_outbox_status'),
                                         "status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')")


def downgrade() -> None:
    # A cancelled message was never sent: before this revision the nearest status is failed.
    op.execute(outbox.update().where(outbox.c.status == 'cancelled')
               .values(status='failed', last_error='cancelled'))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_outbox_status'), "status IN ('pending', 'sending', 'sent', 'failed')")
        batch_op.drop_column('requeued_at')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('last_bounce')
        batch_op.drop_column('last_bounce_at')
        batch_op.drop_column('bouncing_since')
        batch_op.drop_column('bounce_count')
