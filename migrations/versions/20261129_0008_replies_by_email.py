"""replies by email: the messages that became comments, and digest items about a comment

`inbound_messages` records each email reply posted as a comment, unique per member and Message-ID, so a mail
server that delivers the same message twice gets "delivered" the second time and nothing is posted again.
`mail_digest_items.comment_id` names the comment a folded reply, mention or official response is about; the item
goes when the comment does.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 21:13:31.005187
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inbound_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=300), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('comment_id', sa.Integer(), nullable=True),
    sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['comment_id'], ['comments.id'], name=op.f('fk_inbound_messages_comment_id_comments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_inbound_messages_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], name=op.f('fk_inbound_messages_proposal_id_proposals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages')),
    sa.UniqueConstraint('member_id', 'message_id', name='uq_inbound_messages_member_message')
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_messages_comment_id'), ['comment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_messages_proposal_id'), ['proposal_id'], unique=False)

    with op.batch_alter_table('mail_digest_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('comment_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_mail_digest_items_comment_id'), ['comment_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_mail_digest_items_comment_id_comments'), 'comments', ['comment_id'], ['id'], ondelete='CASCADE')



def downgrade() -> None:
    with op.batch_alter_table('mail_digest_items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_mail_digest_items_comment_id_comments'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_mail_digest_items_comment_id'))
        batch_op.drop_column('comment_id')

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_proposal_id'))
        batch_op.drop_index(batch_op.f('ix_inbound_messages_comment_id'))

    op.drop_table('inbound_messages')
