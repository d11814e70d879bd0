"""mail preferences: per member and kind, digests, the admins' defaults and weekly budget

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:44:34.689044
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('org_mail_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('weekly_budget', sa.Integer(), nullable=False),
    sa.Column('digest_every', sa.String(length=8), nullable=False),
    sa.Column('defaults', sa.JSON(), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("digest_every IN ('daily', 'weekly')", name=op.f('ck_org_mail_settings_digest_every')),
    sa.CheckConstraint('weekly_budget >= 0', name=op.f('ck_org_mail_settings_weekly_budget')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_mail_settings'))
    )
    op.create_table('mail_preferences',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("mode IN ('immediately', 'digest', 'never')", name=op.f('ck_mail_preferences_mode')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_mail_preferences_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', 'kind', name=op.f('pk_mail_preferences'))
    )
    op.create_table('member_mail_settings',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('digest_every', sa.String(length=8), nullable=True),
    sa.Column('unsubscribed_all', sa.Boolean(), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("digest_every IN ('daily', 'weekly')", name=op.f('ck_member_mail_settings_digest_every')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_mail_settings_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_mail_settings'))
    )
    op.create_table('mail_digest_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('digested_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_mail_digest_items_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_mail_digest_items_proposal_id_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_digest_items')),
    sa.UniqueConstraint('member_id', 'key', name='uq_mail_digest_items_member_key')
    )
    with op.batch_alter_table('mail_digest_items', schema=None) as batch_op:
        batch_op.create_index('ix_mail_digest_items_pending', ['digested_at', 'member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_digest_items_proposal_id'), ['proposal_id'], unique=False)

    op.create_table('proposal_reminders',
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_proposal_reminders_proposal_id_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('proposal_id', name=op.f('pk_proposal_reminders'))
    )



def downgrade() -> None:
    op.drop_table('proposal_reminders')
    with op.batch_alter_table('mail_digest_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_digest_items_proposal_id'))
        batch_op.drop_index('ix_mail_digest_items_pending')

    op.drop_table('mail_digest_items')
    op.drop_table('member_mail_settings')
    op.drop_table('mail_preferences')
    op.drop_table('org_mail_settings')
