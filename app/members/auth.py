"""Signing in and out: passwords, emailed links, invitations, resets, sessions, email changes.

Every way in ends in `start_session`, the only function that creates a session. Answers never reveal whether
an address belongs to a member: a wrong password and an unknown address fail the same way and cost the same
time, and a link request is answered "if the address is known, a link is on its way" either way.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app import security
from app.db import utcnow
from app.mail.bounces import forget as forget_bounces
from app.mail.outbox import enqueue
from app.members.guard import audit, check_rate
from app.members.models import AuthToken, Member, Status, TokenPurpose, UserSession
from app.members.services import (
    MemberError,
    issue_token,
    normalize_email,
    peek_token,
    set_password,
    take_token,
)
from app.settings import Settings

SIGNIN_LINK_MINUTES = 15
RESET_MINUTES = 60
EMAIL_CHANGE_HOURS = 24


class SignInFailed(MemberError):
    """Wrong address or password; deliberately the same message for both."""


def _limits(settings: Settings) -> dict[str, int]:
    return {"limit": settings.rate_limit_count, "window_s": settings.rate_limit_window_s}


def start_session(session: Session, settings: Settings, member: Member, *, ip: str, user_agent: str) -> str:
    """The one place a session is created. Returns the cookie value (only its hash is stored)."""
    token = security.new_token()
    now = utcnow()
    session.add(UserSession(token_hash=security.token_hash(token), member_id=member.id, created_at=now,
                            last_seen_at=now, expires_at=now + dt.timedelta(days=settings.session_days),
                            ip=ip[:64], user_agent=(user_agent or "")[:300]))
    member.last_sign_in_at = now
    if member.status == Status.INVITED:
        member.status = Status.ACTIVE
    return token


def sign_in_password(session: Session, settings: Settings, pwd_ctx: Any, *, email: str, password: str,
                     ip: str, user_agent: str) -> tuple[Member, str]:
    address = (email or "").strip().lower()[:254]
    check_rate(session, [f"signin:email:{address}", f"signin:ip:{ip}"], **_limits(settings))
    member = session.scalar(select(Member).where(Member.email == address)) if address else None
    usable = member is not None and member.status != Status.DEACTIVATED
    ok, new_hash = security.verify_password(password or "", member.password_hash if usable else None,
                                            pwd_ctx)
    if not ok or member is None:
        audit(session, "signin.failed", actor_id=None, ip=ip, summary="password sign-in failed")
        raise SignInFailed("That email address and password do not match an account.")
    if new_hash:
        member.password_hash = new_hash
    audit(session, "signin.password", actor_id=member.id, ip=ip, object_type="member", object_id=member.id)
    return member, start_session(session, settings, member, ip=ip, user_agent=user_agent)


def request_link(session: Session, settings: Settings, *, email: str, purpose: str, ip: str,
                 org_name: str) -> None:
    """Send a sign-in or reset link if the address belongs to an active member; silently do nothing if not."""
    address = (email or "").strip().lower()[:254]
    check_rate(session, [f"{purpose}:email:{address}", f"{purpose}:ip:{ip}"], **_limits(settings))
    try:
        address = normalize_email(address)
    except MemberError:
        return
    member = session.scalar(select(Member).where(Member.email == address))
    if member is None or member.status == Status.DEACTIVATED:
        return
    # A new link replaces any older unused one of the same kind.
    session.execute(delete(AuthToken).where(AuthToken.member_id == member.id, AuthToken.purpose == purpose,
                                            AuthToken.used_at.is_(None)))
    minutes = SIGNIN_LINK_MINUTES if purpose == TokenPurpose.SIGNIN else RESET_MINUTES
    token = issue_token(session, purpose, member.id, dt.timedelta(minutes=minutes))
    path = "/signin/link/" if purpose == TokenPurpose.SIGNIN else "/reset/"
    enqueue(session, settings, kind="signin_link" if purpose == TokenPurpose.SIGNIN else "password_reset",
            to_addr=member.email, to_name=member.name, member_id=member.id,
            dedupe=f"token:{security.token_hash(token)[:16]}",
            context={"name": member.name, "org_name": org_name, "minutes": minutes,
                     "link": settings.url(path + token)})


def link_member(session: Session, token: str, purpose: str) -> Member:
    """The member a still-valid link belongs to (for the page that asks to confirm)."""
    row = peek_token(session, token, purpose)
    member = session.get(Member, row.member_id) if row.member_id else None
    if member is None or member.status == Status.DEACTIVATED:
        raise MemberError("This link is not valid. Ask for a new one.")
    return member


def sign_in_with_link(session: Session, settings: Settings, *, token: str, ip: str,
                      user_agent: str) -> tuple[Member, str]:
    """Confirmed by a POST: mail scanners that open the link do not use it up."""
    member = link_member(session, token, TokenPurpose.SIGNIN)
    take_token(session, token, TokenPurpose.SIGNIN)
    audit(session, "signin.link", actor_id=member.id, ip=ip, object_type="member", object_id=member.id)
    return member, start_session(session, settings, member, ip=ip, user_agent=user_agent)


def accept_invitation(session: Session, settings: Settings, pwd_ctx: Any, *, token: str, password: str | None,
                      ip: str, user_agent: str) -> tuple[Member, str]:
    member = link_member(session, token, TokenPurpose.INVITE)
    if password:
        set_password(member, password, pwd_ctx)
    take_token(session, token, TokenPurpose.INVITE)
    audit(session, "invite.accept", actor_id=member.id, ip=ip, object_type="member", object_id=member.id)
    return member, start_session(session, settings, member, ip=ip, user_agent=user_agent)


def reset_password(session: Session, settings: Settings, pwd_ctx: Any, *, token: str, password: str,
                   ip: str, user_agent: str) -> tuple[Member, str]:
    member = link_member(session, token, TokenPurpose.RESET)
    set_password(member, password, pwd_ctx)
    take_token(session, token, TokenPurpose.RESET)
    sign_out_everywhere(session, member.id)
    audit(session, "password.reset", actor_id=member.id, ip=ip, object_type="member", object_id=member.id)
    return member, start_session(session, settings, member, ip=ip, user_agent=user_agent)


def sign_out(session: Session, session_id: int) -> None:
    session.execute(delete(UserSession).where(UserSession.id == session_id))


def sign_out_everywhere(session: Session, member_id: int) -> None:
    session.execute(delete(UserSession).where(UserSession.member_id == member_id))


# --- profile ---------------------------------------------------------------------------------------------------

def change_password(session: Session, pwd_ctx: Any, *, member_id: int, current: str, new: str,
                    keep_session_id: int, ip: str) -> None:
    member = session.get(Member, member_id)
    assert member is not None
    if member.password_hash:
        ok, _ = security.verify_password(current or "", member.password_hash, pwd_ctx)
        if not ok:
            raise MemberError("Your current password is not correct.")
    set_password(member, new, pwd_ctx)
    # A new password ends every other signed-in browser.
    session.execute(delete(UserSession).where(UserSession.member_id == member_id,
                                              UserSession.id != keep_session_id))
    audit(session, "password.change", actor_id=member_id, ip=ip, object_type="member", object_id=member_id)


def request_email_change(session: Session, settings: Settings, pwd_ctx: Any, *, member_id: int, new_email: str,
                         password: str, ip: str, org_name: str) -> str:
    member = session.get(Member, member_id)
    assert member is not None
    check_rate(session, [f"email_change:member:{member_id}"], **_limits(settings))
    if member.password_hash:
        ok, _ = security.verify_password(password or "", member.password_hash, pwd_ctx)
        if not ok:
            raise MemberError("Your current password is not correct.")
    address = normalize_email(new_email)
    if address == member.email:
        raise MemberError("That is already your email address.")
    session.execute(delete(AuthToken).where(AuthToken.member_id == member.id,
                                            AuthToken.purpose == TokenPurpose.EMAIL_CHANGE,
                                            AuthToken.used_at.is_(None)))
    token = issue_token(session, TokenPurpose.EMAIL_CHANGE, member.id, dt.timedelta(hours=EMAIL_CHANGE_HOURS),
                        new_email=address)
    key = security.token_hash(token)[:16]
    # The confirmation goes to the new address; the old one is told, so a hijacked session can't quietly move it.
    enqueue(session, settings, kind="email_change_confirm", to_addr=address, to_name=member.name,
            member_id=member.id, dedupe=f"token:{key}",
            context={"name": member.name, "org_name": org_name, "hours": EMAIL_CHANGE_HOURS,
                     "link": settings.url(f"/profile/email/{token}")})
    enqueue(session, settings, kind="email_change_notice", to_addr=member.email, to_name=member.name,
            member_id=member.id, dedupe=f"token:{key}",
            context={"name": member.name, "org_name": org_name, "new_email": address})
    audit(session, "email.change_requested", actor_id=member_id, ip=ip, object_type="member",
          object_id=member_id)
    return address


def confirm_email_change(session: Session, *, token: str, ip: str) -> Member:
    row = take_token(session, token, TokenPurpose.EMAIL_CHANGE)
    member = session.get(Member, row.member_id) if row.member_id else None
    if member is None or not row.new_email or member.status == Status.DEACTIVATED:
        raise MemberError("This link is not valid. Ask for a new one.")
    if session.scalar(select(Member.id).where(Member.email == row.new_email, Member.id != member.id)):
        raise MemberError("That address now belongs to another member.")
    old = member.email
    member.email = row.new_email
    forget_bounces(member)  # a new address starts with no bounces and no flag
    audit(session, "email.changed", actor_id=member.id, ip=ip, object_type="member", object_id=member.id,
          old=old, new=row.new_email)
    return member


def rename(session: Session, *, member_id: int, name: str) -> None:
    from app.members.services import clean_name

    session.execute(update(Member).where(Member.id == member_id).values(name=clean_name(name)))
