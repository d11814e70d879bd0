"""Imports every domain's models so `Base.metadata` is complete (Alembic and the tests import this module)."""

from app.db import Base
from app.jobs.models import Job
from app.mail.models import OutboxMessage
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
    "AuditEvent",
    "AuthToken",
    "Ballot",
    "Clarification",
    "CountedBallot",
    "Eligibility",
    "Option",
    "Participation",
    "Proposal",
    "ProposalGroup",
    "Revision",
    "Base",
    "Group",
    "GroupMembership",
    "Job",
    "Member",
    "Organization",
    "OutboxMessage",
    "RateEvent",
    "UserSession",
    "metadata",
]
