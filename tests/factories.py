"""Plain `make_*` functions: they add and flush, never commit (the caller's unit of work does)."""

from __future__ import annotations

import itertools

from sqlalchemy.orm import Session

from app import security
from app.members.models import Group, GroupMembership, Member

_seq = itertools.count(1)
# Cheap hashing parameters for fixtures; the app's own hashing uses the test settings' parameters.
_ctx = security.password_context(1, 8192)


def make_member(session: Session, *, email: str | None = None, name: str | None = None, role: str = "member",
                status: str = "active", password: str | None = None, groups: tuple[Group, ...] = ()) -> Member:
    n = next(_seq)
    member = Member(
        email=(email or f"member{n}@example.org").lower(),
        name=name or f"Member {n}",
        role=role,
        status=status,
        password_hash=_ctx.hash(password) if password else None,
    )
    session.add(member)
    session.flush()
    for g in groups:
        session.add(GroupMembership(group_id=g.id, member_id=member.id))
    session.flush()
    return member


def make_group(session: Session, *, name: str | None = None, description: str = "") -> Group:
    group = Group(name=name or f"Group {next(_seq)}", description=description)
    session.add(group)
    session.flush()
    return group
