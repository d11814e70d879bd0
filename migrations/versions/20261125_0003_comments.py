"""comments

Comments, their earlier versions, endorsements (one per member: the primary key), flags, per-proposal counts,
admins' blocks and closures, and members' notifications. New tables only; no existing table changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:42:30.851601
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('comment_blocks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('until', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('lifted_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lifted_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['members.id'], name=op.f('fk_comment_blocks_created_by_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lifted_by'], ['members.id'], name=op.f('fk_comment_blocks_lifted_by_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_comment_blocks_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comment_blocks'))
    )
    with op.batch_alter_table('comment_blocks', schema=None) as batch_op:
        batch_op.create_index('ix_comment_blocks_member_until', ['member_id', 'until'], unique=False)

    op.create_table('comment_closures',
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('closed_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['closed_by'], ['members.id'], name=op.f('fk_comment_closures_closed_by_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_comment_closures_proposal_id_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('proposal_id', name=op.f('pk_comment_closures'))
    )
    op.create_table('comment_counts',
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('paragraph', sa.Integer(), nullable=False),
    sa.Column('stance', sa.String(length=8), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_comment_counts_proposal_id_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('proposal_id', 'paragraph', 'stance', name=op.f('pk_comment_counts'))
    )
    op.create_table('comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('paragraph', sa.Integer(), nullable=True),
    sa.Column('stance', sa.String(length=8), nullable=True),
    sa.Column('response_status', sa.String(length=16), nullable=True),
    sa.Column('body_md', sa.Text(), nullable=False),
    sa.Column('endorsement_count', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('edited_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('hidden_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('hidden_reason', sa.String(length=500), nullable=False),
    sa.Column('hidden_by', sa.Integer(), nullable=True),
    sa.CheckConstraint("response_status IN ('review', 'accepted', 'changed', 'declined')", name=op.f('ck_comments_response_status')),
    sa.CheckConstraint("stance IN ('for', 'against', 'neutral')", name=op.f('ck_comments_stance')),
    sa.CheckConstraint('paragraph > 0', name=op.f('ck_comments_paragraph')),
    sa.ForeignKeyConstraint(['author_id'], ['members.id'], name=op.f('fk_comments_author_id_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['hidden_by'], ['members.id'], name=op.f('fk_comments_hidden_by_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['parent_id'], ['comments.id'], name=op.f('fk_comments_parent_id_comments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_comments_proposal_id_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comments'))
    )
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comments_author_id'), ['author_id'], unique=False)
        batch_op.create_index('ix_comments_endorsed', ['proposal_id', 'parent_id', 'paragraph', 'response_status', 'endorsement_count', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_comments_hidden_at'), ['hidden_at'], unique=False)
        batch_op.create_index('ix_comments_list', ['proposal_id', 'parent_id', 'paragraph', 'response_status', 'id'], unique=False)
        batch_op.create_index('ix_comments_parent', ['parent_id', 'id'], unique=False)

    op.create_table('comment_endorsements',
    sa.Column('comment_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['comment_id'], ['comments.id'], name=op.f('fk_comment_endorsements_comment_id_comments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_comment_endorsements_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('comment_id', 'member_id', name=op.f('pk_comment_endorsements'))
    )
    with op.batch_alter_table('comment_endorsements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comment_endorsements_member_id'), ['member_id'], unique=False)

    op.create_table('comment_flags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('comment_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.Integer(), nullable=True),
    sa.Column('resolution', sa.String(length=8), nullable=True),
    sa.CheckConstraint("resolution IN ('hidden', 'kept')", name=op.f('ck_comment_flags_resolution')),
    sa.ForeignKeyConstraint(['comment_id'], ['comments.id'], name=op.f('fk_comment_flags_comment_id_comments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_comment_flags_member_id_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['resolved_by'], ['members.id'], name=op.f('fk_comment_flags_resolved_by_members'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comment_flags')),
    sa.UniqueConstraint('comment_id', 'member_id', name='uq_comment_flags_comment_member')
    )
    with op.batch_alter_table('comment_flags', schema=None) as batch_op:
        batch_op.create_index('ix_comment_flags_open', ['resolved_at', 'comment_id'], unique=False)

    op.create_table('comment_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('comment_id', sa.Integer(), nullable=False),
    sa.Column('body_md', sa.Text(), nullable=False),
    sa.Column('stance', sa.String(length=8), nullable=True),
    sa.Column('written_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('replaced_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['comment_id'], ['comments.id'], name=op.f('fk_comment_revisions_comment_id_comments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comment_revisions'))
    )
    with op.batch_alter_table('comment_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comment_revisions_comment_id'), ['comment_id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('comment_id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('read_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('mention', 'response')", name=op.f('ck_notifications_kind')),
    sa.ForeignKeyConstraint(['actor_id'], ['members.id'], name=op.f('fk_notifications_actor_id_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['comment_id'], ['comments.id'], name=op.f('fk_notifications_comment_id_comments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_notifications_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_notifications_proposal_id_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('member_id', 'kind', 'comment_id', name='uq_notifications_member_kind_comment')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_comment_id'), ['comment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_proposal_id'), ['proposal_id'], unique=False)
        batch_op.create_index('ix_notifications_unsent', ['sent_at', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_unsent')
        batch_op.drop_index(batch_op.f('ix_notifications_proposal_id'))
        batch_op.drop_index(batch_op.f('ix_notifications_comment_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('comment_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comment_revisions_comment_id'))

    op.drop_table('comment_revisions')
    with op.batch_alter_table('comment_flags', schema=None) as batch_op:
        batch_op.drop_index('ix_comment_flags_open')

    op.drop_table('comment_flags')
    with op.batch_alter_table('comment_endorsements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comment_endorsements_member_id'))

    op.drop_table('comment_endorsements')
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_index('ix_comments_parent')
        batch_op.drop_index('ix_comments_list')
        batch_op.drop_index(batch_op.f('ix_comments_hidden_at'))
        batch_op.drop_index('ix_comments_endorsed')
        batch_op.drop_index(batch_op.f('ix_comments_author_id'))

    op.drop_table('comments')
    op.drop_table('comment_counts')
    op.drop_table('comment_closures')
    with op.batch_alter_table('comment_blocks', schema=None) as batch_op:
        batch_op.drop_index('ix_comment_blocks_member_until')

    op.drop_table('comment_blocks')
