"""Members' domain rules: the organization, accounts, invitations, groups, roles and the directory.

Plain functions over a Session. They never commit and never see a Request; they raise `MemberError` with a
message meant for the person who asked.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from app import security
from app.db import like_escape, utcnow
from app.mail.outbox import enqueue, insert_rows, message_row
from app.members.guard import audit
from app.members.models import (
    AuditEvent,
    AuthToken,
    Group,
    GroupMembership,
    Member,
    Organization,
    Role,
    Status,
    TokenPurpose,
    UserSession,
)
from app.settings import Settings

log = logging.getLogger("plenary.members")

INVITE_DAYS = 7
NAME_MAX = 100
GROUP_NAME_MAX = 100
EMAIL_RE = re.compile(r"^[^@\s<>(),;:\"\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
PAGE_SIZE = 50


class MemberError(ValueError):
    """A request the domain refuses; the message is shown to the person who made it."""


class NotFound(MemberError):
    """The member or group named does not exist (views answer 404)."""


# --- the organization -----------------------------------------------------------------------------------------

def get_org(session: Session) -> Organization | None:
    return session.get(Organization, 1)


def admin_exists(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(Member).where(
        Member.role == Role.ADMIN, Member.status != Status.DEACTIVATED)) > 0


def load_org_state(app: Any) -> None:
    """Cache the organization's name and time zone on app.state for templates. A database that is down at
    start-up is not fatal: /healthz reports it, and the names fill in at the next setup or restart."""
    try:
        with app.state.db.read() as s:
            org = get_org(s)
    except SQLAlchemyError:
        log.warning("database unreachable at start-up; organization name not loaded")
        return
    app.state.org_name = org.name if org else None
    app.state.org_tz = org.time_zone if org else "UTC"


def create_setup_token(session: Session) -> str | None:
    """A one-time link to create the first admin, or None when an admin exists. Earlier links stop working."""
    if admin_exists(session):
        return None
    session.execute(delete(AuthToken).where(AuthToken.purpose == TokenPurpose.SETUP))
    return issue_token(session, TokenPurpose.SETUP, None, dt.timedelta(days=1))


def complete_setup(session: Session, token: str, *, org_name: str, time_zone: str, name: str, email: str,
                   password: str, pwd_ctx: Any, ip: str) -> Member:
    if admin_exists(session):
        raise MemberError("Plenary is already set up. Sign in instead.")
    take_token(session, token, TokenPurpose.SETUP)
    org_name = clean_name(org_name, "Organization name", 200)
    _check_tz(time_zone)
    org = get_org(session)
    if org is None:
        session.add(Organization(id=1, name=org_name, time_zone=time_zone))
    else:
        org.name, org.time_zone = org_name, time_zone
    member = session.scalar(select(Member).where(Member.email == normalize_email(email)))
    if member is None:
        member = Member(email=normalize_email(email), name=clean_name(name))
        session.add(member)
    member.role, member.status = Role.ADMIN, Status.ACTIVE
    set_password(member, password, pwd_ctx)
    session.flush()  # the audit row needs the member's id
    audit(session, "setup", actor_id=member.id, ip=ip, object_type="organization", object_id=1,
          summary=f"Set up {org_name}")
    return member


def _check_tz(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MemberError(f"Unknown time zone {name!r}. Use a name like Europe/Berlin.") from exc


# --- validation ------------------------------------------------------------------------------------------------

def normalize_email(email: str) -> str:
    value = (email or "").strip()
    if not value or len(value) > 254 or not EMAIL_RE.match(value):
        raise MemberError("Enter a valid email address, like name@example.org.")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}".lower()


def clean_name(name: str, label: str = "Name", limit: int = NAME_MAX) -> str:
    value = " ".join((name or "").split())
    if not value:
        raise MemberError(f"{label} is required.")
    if len(value) > limit:
        raise MemberError(f"{label} can be at most {limit} characters.")
    if any(ord(c) < 32 or c in "\u2028\u2029" for c in value):
        raise MemberError(f"{label} contains characters that are not allowed.")
    return value


def set_password(member: Member, password: str, pwd_ctx: Any) -> None:
    problem = security.password_problem(password or "", (member.email, member.name))
    if problem:
        raise MemberError(problem)
    member.password_hash = security.hash_password(password, pwd_ctx)


# --- one-time tokens ------------------------------------------------------------------------------------------

def issue_token(session: Session, purpose: str, member_id: int | None, lifetime: dt.timedelta,
                new_email: str | None = None) -> str:
    token = security.new_token()
    session.add(AuthToken(token_hash=security.token_hash(token), purpose=purpose, member_id=member_id,
                          new_email=new_email, expires_at=utcnow() + lifetime))
    return token


def peek_token(session: Session, token: str, purpose: str) -> AuthToken:
    """The live token, without using it up (for the confirmation page a link opens)."""
    row = session.scalar(select(AuthToken).where(AuthToken.token_hash == security.token_hash(token or "")))
    if row is None or row.purpose != purpose:
        raise MemberError("This link is not valid. Ask for a new one.")
    if row.used_at is not None:
        raise MemberError("This link has already been used. Ask for a new one.")
    if row.expires_at <= utcnow():
        raise MemberError("This link has expired. Ask for a new one.")
    return row


def take_token(session: Session, token: str, purpose: str) -> AuthToken:
    """Use up a one-time token; a second use, or a token of another purpose, fails."""
    row = peek_token(session, token, purpose)
    row.used_at = utcnow()
    return row


# --- members ---------------------------------------------------------------------------------------------------

def invite_member(session: Session, settings: Settings, *, actor_id: int | None, name: str, email: str,
                  group_ids: list[int] | None = None, role: str = Role.MEMBER, ip: str = "",
                  org_name: str = "Plenary") -> Member:
    email = normalize_email(email)
    name = clean_name(name)
    if role not in (Role.MEMBER, Role.ADMIN):
        raise MemberError("Role must be member or admin.")
    if session.scalar(select(Member.id).where(Member.email == email)):
        raise MemberError(f"{email} is already a member.")
    member = Member(email=email, name=name, role=role, status=Status.INVITED)
    session.add(member)
    session.flush()  # ids for the memberships, token and audit row
    if group_ids:
        set_groups(session, member.id, group_ids)
    send_invitation(session, settings, member, org_name=org_name)
    audit(session, "member.invite", actor_id=actor_id, ip=ip, object_type="member", object_id=member.id,
          summary=f"Invited {name} <{email}>")
    return member


def invite_many(session: Session, settings: Settings, *, actor_id: int | None, people: list[tuple[str, str]],
                ip: str = "", org_name: str = "Plenary") -> dict[str, int]:
    """Invite many new members at once: the same rows `invite_member` writes, in a handful of bulk statements
    (an import of thousands must not hold SQLite's write lock for long). `people` are (name, email) pairs,
    already validated and not yet members. Returns email -> new member id."""
    if not people:
        return {}
    now = utcnow()
    ids: dict[str, int] = {}
    for start in range(0, len(people), 500):
        chunk = people[start:start + 500]
        rows = session.execute(insert(Member).returning(Member.id, Member.email), [
            {"email": email, "name": name, "role": Role.MEMBER, "status": Status.INVITED, "created_at": now}
            for name, email in chunk])
        ids.update({email: mid for mid, email in rows})
    expires = now + dt.timedelta(days=INVITE_DAYS)
    tokens = {email: security.new_token() for _, email in people}
    session.execute(insert(AuthToken), [
        {"token_hash": security.token_hash(tokens[email]), "purpose": TokenPurpose.INVITE, "member_id": ids[email],
         "created_at": now, "expires_at": expires} for _, email in people])
    insert_rows(session, settings, [
        message_row(settings, kind="invitation", to_addr=email, to_name=name, member_id=ids[email],
                    dedupe=f"token:{security.token_hash(tokens[email])[:16]}",
                    context={"name": name, "org_name": org_name, "days": INVITE_DAYS,
                             "link": settings.url(f"/invite/{tokens[email]}")})
        for name, email in people])
    session.execute(insert(AuditEvent), [
        {"at": now, "actor_id": actor_id, "action": "member.invite", "object_type": "member",
         "object_id": ids[email], "ip": ip[:64], "summary": f"Invited {name} <{email}>", "detail": {}}
        for name, email in people])
    return ids


def send_invitation(session: Session, settings: Settings, member: Member, *, org_name: str) -> None:
    token = issue_token(session, TokenPurpose.INVITE, member.id, dt.timedelta(days=INVITE_DAYS))
    session.flush()
    enqueue(session, settings, kind="invitation", to_addr=member.email, to_name=member.name,
            member_id=member.id, dedupe=f"token:{security.token_hash(token)[:16]}",
            context={"name": member.name, "org_name": org_name, "days": INVITE_DAYS,
                     "link": settings.url(f"/invite/{token}")})


def set_groups(session: Session, member_id: int, group_ids: list[int]) -> None:
    wanted = set(group_ids)
    known = set(session.scalars(select(Group.id).where(Group.id.in_(wanted)))) if wanted else set()
    if wanted - known:
        raise MemberError("One of the chosen groups does not exist.")
    session.execute(delete(GroupMembership).where(GroupMembership.member_id == member_id))
    for gid in sorted(known):
        session.add(GroupMembership(member_id=member_id, group_id=gid))


def get_member(session: Session, member_id: int) -> Member:
    member = session.scalar(select(Member).options(selectinload(Member.groups)).where(Member.id == member_id))
    if member is None:
        raise NotFound("No such member.")
    return member


def change_role(session: Session, *, actor_id: int, member_id: int, role: str, ip: str) -> Member:
    if role not in (Role.MEMBER, Role.ADMIN):
        raise MemberError("Role must be member or admin.")
    member = get_member(session, member_id)
    if member.role == role:
        return member
    if member.role == Role.ADMIN and _active_admins(session) <= 1:
        raise MemberError("This is the last admin. Make someone else an admin first.")
    old, member.role = member.role, role
    audit(session, "member.role", actor_id=actor_id, ip=ip, object_type="member", object_id=member.id,
          summary=f"{member.name}: {old} -> {role}", old=old, new=role)
    return member


def set_active(session: Session, *, actor_id: int, member_id: int, active: bool, ip: str) -> Member:
    member = get_member(session, member_id)
    if not active:
        if member.id == actor_id:
            raise MemberError("You cannot deactivate yourself.")
        if member.role == Role.ADMIN and member.status != Status.DEACTIVATED and _active_admins(session) <= 1:
            raise MemberError("This is the last admin. Make someone else an admin first.")
        if member.status == Status.DEACTIVATED:
            return member
        member.status = Status.DEACTIVATED
        session.execute(delete(UserSession).where(UserSession.member_id == member.id))
        session.execute(delete(AuthToken).where(AuthToken.member_id == member.id, AuthToken.used_at.is_(None)))
        action = "member.deactivate"
    else:
        if member.status != Status.DEACTIVATED:
            return member
        member.status = Status.ACTIVE if member.password_hash or member.last_sign_in_at else Status.INVITED
        action = "member.reactivate"
    audit(session, action, actor_id=actor_id, ip=ip, object_type="member", object_id=member.id,
          summary=member.name)
    return member


def _active_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Member).where(
        Member.role == Role.ADMIN, Member.status != Status.DEACTIVATED)) or 0


def update_member_groups(session: Session, *, actor_id: int, member_id: int, group_ids: list[int],
                         ip: str) -> Member:
    member = get_member(session, member_id)
    set_groups(session, member.id, group_ids)
    audit(session, "member.groups", actor_id=actor_id, ip=ip, object_type="member", object_id=member.id,
          summary=member.name, groups=sorted(group_ids))
    session.flush()
    session.expire(member)
    return get_member(session, member_id)


# --- groups ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupRow:
    id: int
    name: str
    description: str
    size: int


def list_groups(session: Session) -> list[GroupRow]:
    size = (select(func.count()).select_from(GroupMembership)
            .where(GroupMembership.group_id == Group.id).scalar_subquery())
    rows = session.execute(select(Group.id, Group.name, Group.description, size).order_by(Group.name))
    return [GroupRow(*r) for r in rows]


def create_group(session: Session, *, actor_id: int | None, name: str, description: str = "", ip: str = "") -> Group:
    name = clean_name(name, "Group name", GROUP_NAME_MAX)
    description = (description or "").strip()[:500]
    if session.scalar(select(Group.id).where(func.lower(Group.name) == name.lower())):
        raise MemberError(f"A group called {name} already exists.")
    group = Group(name=name, description=description)
    session.add(group)
    session.flush()
    audit(session, "group.create", actor_id=actor_id, ip=ip, object_type="group", object_id=group.id,
          summary=name)
    return group


def rename_group(session: Session, *, actor_id: int, group_id: int, name: str, description: str,
                 ip: str = "") -> Group:
    group = session.get(Group, group_id)
    if group is None:
        raise NotFound("No such group.")
    name = clean_name(name, "Group name", GROUP_NAME_MAX)
    clash = session.scalar(select(Group.id).where(func.lower(Group.name) == name.lower(), Group.id != group_id))
    if clash:
        raise MemberError(f"A group called {name} already exists.")
    group.name, group.description = name, (description or "").strip()[:500]
    audit(session, "group.update", actor_id=actor_id, ip=ip, object_type="group", object_id=group.id,
          summary=name)
    return group


def delete_group(session: Session, *, actor_id: int, group_id: int, ip: str = "") -> None:
    group = session.get(Group, group_id)
    if group is None:
        raise NotFound("No such group.")
    session.execute(delete(GroupMembership).where(GroupMembership.group_id == group_id))
    session.delete(group)
    audit(session, "group.delete", actor_id=actor_id, ip=ip, object_type="group", object_id=group_id,
          summary=group.name)


def groups_by_name(session: Session) -> dict[str, int]:
    return {name.lower(): gid for gid, name in session.execute(select(Group.id, Group.name))}


# --- the directory ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DirectoryPage:
    members: list[Member]
    total: int
    page: int
    pages: int
    q: str
    group_id: int | None
    status: str


def directory(session: Session, *, q: str = "", group_id: int | None = None, status: str = "",
              page: int = 1) -> DirectoryPage:
    """Members matching a search, ordered by name, 50 a page. A name index serves the order; the search is a
    LIKE over name and email (tens of milliseconds at 50,000 members; see docs/BENCHMARKS.md)."""
    q = " ".join((q or "").split())[:100]
    where = []
    if q:
        pattern = "%" + like_escape(q.lower()) + "%"
        where.append(or_(func.lower(Member.name).like(pattern, escape="\\"),
                         Member.email.like(pattern, escape="\\")))
    if group_id:
        where.append(Member.id.in_(select(GroupMembership.member_id).where(GroupMembership.group_id == group_id)))
    if status in (Status.INVITED, Status.ACTIVE, Status.DEACTIVATED):
        where.append(Member.status == status)
    elif status == "bouncing":  # the address is flagged after hard bounces (app/mail/bounces.py)
        where.append(Member.bouncing_since.is_not(None))
    total = session.scalar(select(func.count()).select_from(Member).where(*where)) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    members = list(session.scalars(
        select(Member).options(selectinload(Member.groups)).where(*where)
        .order_by(Member.name, Member.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ))
    return DirectoryPage(members=members, total=total, page=page, pages=pages, q=q, group_id=group_id,
                         status=status)


def audit_log(session: Session, *, page: int = 1) -> tuple[list[Any], int]:
    from app.members.models import AuditEvent

    total = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    rows = list(session.scalars(
        select(AuditEvent).options(selectinload(AuditEvent.actor)).order_by(AuditEvent.id.desc())
        .limit(PAGE_SIZE).offset((max(1, page) - 1) * PAGE_SIZE)
    ))
    return rows, total
