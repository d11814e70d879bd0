"""actions: campaigns, action steps, commitments, first page views; attachments on outbox messages

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:55:44.617145
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body_md', sa.Text(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['members.id'], name=op.f('fk_campaigns_created_by_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_campaigns_group_id_groups'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    op.create_table('action_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('starts_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('place', sa.String(length=300), nullable=False),
    sa.Column('link', sa.String(length=500), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.Column('goal', sa.Integer(), nullable=True),
    sa.Column('unit', sa.String(length=40), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('shift', 'pledge', 'task', 'external')", name=op.f('ck_action_steps_kind')),
    sa.CheckConstraint('(proposal_id IS NULL) <> (campaign_id IS NULL)', name=op.f('ck_action_steps_one_parent')),
    sa.CheckConstraint('capacity IS NULL OR capacity > 0', name=op.f('ck_action_steps_capacity')),
    sa.CheckConstraint('goal IS NULL OR goal > 0', name=op.f('ck_action_steps_goal')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_action_steps_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_action_steps_proposal_id_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_steps'))
    )
    with op.batch_alter_table('action_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_steps_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_steps_proposal_id'), ['proposal_id'], unique=False)

    op.create_table('page_views',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('first_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_page_views_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_page_views_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_page_views_proposal_id_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_page_views')),
    sa.UniqueConstraint('member_id', 'campaign_id', name='uq_page_views_member_campaign'),
    sa.UniqueConstraint('member_id', 'proposal_id', name='uq_page_views_member_proposal')
    )
    with op.batch_alter_table('page_views', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_page_views_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_page_views_proposal_id'), ['proposal_id'], unique=False)

    op.create_table('commitments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('committed', 'waitlisted', 'withdrawn', 'done')", name=op.f('ck_commitments_status')),
    sa.CheckConstraint('quantity IS NULL OR quantity > 0', name=op.f('ck_commitments_quantity')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_commitments_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['step_id'], ['action_steps.id'], name=op.f('fk_commitments_step_id_action_steps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commitments')),
    sa.UniqueConstraint('step_id', 'member_id', name='uq_commitments_step_member')
    )
    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commitments_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_commitments_step_status', ['step_id', 'status', 'position'], unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attachments', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('attachments')

    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.drop_index('ix_commitments_step_status')
        batch_op.drop_index(batch_op.f('ix_commitments_member_id'))

    op.drop_table('commitments')
    with op.batch_alter_table('page_views', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_page_views_proposal_id'))
        batch_op.drop_index(batch_op.f('ix_page_views_campaign_id'))

    op.drop_table('page_views')
    with op.batch_alter_table('action_steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_steps_proposal_id'))
        batch_op.drop_index(batch_op.f('ix_action_steps_campaign_id'))

    op.drop_table('action_steps')
    op.drop_table('campaigns')
