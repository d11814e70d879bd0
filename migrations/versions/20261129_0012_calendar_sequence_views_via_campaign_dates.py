"""action steps: a calendar SEQUENCE per commitment, where a first view came from, campaign dates

A member who withdrew from a shift (METHOD:CANCEL) and signed up again got a REQUEST with the same UID and
SEQUENCE as the cancellation, which calendars may ignore: each commitment now counts its own calendar files
(`commitments.calendar_sequence`), starting from the shift's version for existing rows. `page_views.via` says
whether the first view was on the site or on the page a vote link in an email opens. Campaigns keep when they
were published and last changed.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

commitments = sa.table('commitments', sa.column('step_id', sa.Integer),
                       sa.column('calendar_sequence', sa.Integer))
steps = sa.table('action_steps', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                 sa.column('sequence', sa.Integer))
page_views = sa.table('page_views', sa.column('via', sa.String))
campaigns = sa.table('campaigns', sa.column('published', sa.Boolean),
                     sa.column('published_at', app.db.UTCDateTime(timezone=True)),
                     sa.column('created_at', app.db.UTCDateTime(timezone=True)),
                     sa.column('updated_at', app.db.UTCDateTime(timezone=True)))


def upgrade() -> None:
    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calendar_sequence', sa.Integer(), nullable=True))
    # Calendar files already sent for a shift carried the shift's sequence: the next one must go above it.
    op.execute(commitments.update().values(calendar_sequence=sa.select(steps.c.sequence).where(
        steps.c.id == commitments.c.step_id, steps.c.kind == 'shift').scalar_subquery()))

    with op.batch_alter_table('page_views', schema=None) as batch_op:
        batch_op.add_column(sa.Column('via', sa.String(length=8), nullable=True))
    op.execute(page_views.update().values(via='web'))
    with op.batch_alter_table('page_views', schema=None) as batch_op:
        batch_op.alter_column('via', existing_type=sa.String(length=8), nullable=False)
        batch_op.create_check_constraint(op.f('ck_page_views_via'), "via IN ('web', 'email')")

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=True))
    op.execute(campaigns.update().values(updated_at=campaigns.c.created_at))
    op.execute(campaigns.update().where(campaigns.c.published.is_(True)).values(published_at=campaigns.c.created_at))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.alter_column('updated_at', existing_type=app.db.UTCDateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('published_at')

    with op.batch_alter_table('page_views', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_page_views_via'), type_='check')
        batch_op.drop_column('via')

    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.drop_column('calendar_sequence')
