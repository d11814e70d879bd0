"""Imports every domain's models so `Base.metadata` is complete (Alembic and the tests import this module)."""

from app.actions.models import ActionStep, Campaign, Commitment, PageView
from app.comments.models import (
    Comment,
    CommentBlock,
    CommentClosure,
    CommentCount,
    CommentRevision,
    Endorsement,
    Flag,
    Notification,
)
from app.db import Base
from app.jobs.models import Job
from app.live import live_signals
from app.mail.models import InboundMessage, OutboxMessage
from app.members.models import (
    AuditEvent,
    AuthToken,
    Group,
    GroupMembership,
    Member,
    Organization,
    RateEvent,
    UserSession,
)
from app.proposals.models import Clarification, Option, Proposal, ProposalGroup, Revision
from app.voting.models import Ballot, CountedBallot, Eligibility, Participation

metadata = Base.metadata

__all__ = [
    "ActionStep",
    "Campaign",
    "Commitment",
    "PageView",
    "AuditEvent",
    "AuthToken",
    "Ballot",
    "Clarification",
    "Comment",
    "CommentBlock",
    "CommentClosure",
    "CommentCount",
    "CommentRevision",
    "CountedBallot",
    "Eligibility",
    "Endorsement",
    "Flag",
    "Option",
    "Participation",
    "Proposal",
    "ProposalGroup",
    "Revision",
    "Base",
    "Group",
    "InboundMessage",
    "GroupMembership",
    "Job",
    "live_signals",
    "Member",
    "Notification",
    "Organization",
    "OutboxMessage",
    "RateEvent",
    "UserSession",
    "metadata",
]
