"""Pages for signing in, the member's home and profile, and the admin's members, groups and audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text as sql
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import security, web
from app.db import run_db
from app.members import auth, services
from app.members.guard import RateLimited, audit
from app.members.models import Status, TokenPurpose
from app.members.services import MemberError, NotFound
from app.templating import error_response, page_or_fragment, render, see_other

RATE_LIMITED = "Too many attempts. Please wait 15 minutes and try again."
LINK_SENT = ("If {email} belongs to a member, a link is on its way. It works once, for {minutes} minutes. "
             "Check your inbox (and the spam folder).")


# --- public ----------------------------------------------------------------------------------------------------

async def healthz(request: Request) -> Response:
    def check() -> bool:
        try:
            with web.db(request).read() as s:
                s.execute(sql("SELECT 1"))
            return True
        except Exception:
            return False

    ok = await run_db(check)
    return JSONResponse({"status": "ok" if ok else "error", "database": "reachable" if ok else "unreachable"},
                        status_code=200 if ok else 503, headers={"cache-control": "no-store"})


async def home(request: Request) -> Response:
    from app.proposals import queries as proposal_queries
    from app.proposals.display import display_context

    me = web.require_member(request)

    def load() -> Any:
        with web.db(request).read() as s:
            return proposal_queries.home(s, me)

    listing = await run_db(load)
    return render(request, "members/home.html",
                  {"me": me, "listing": listing, **display_context(request.app.state.org_tz or "UTC")})


async def setup(request: Request) -> Response:
    token = request.path_params["token"]

    def check() -> str | None:
        with web.db(request).read() as s:
            if services.admin_exists(s):
                return "Plenary is already set up. Sign in instead."
            try:
                services.peek_token(s, token, TokenPurpose.SETUP)
            except MemberError as exc:
                return str(exc) + " Restart Plenary to print a new setup link."
            return None

    problem = await run_db(check)
    if problem:
        return error_response(request, 404, problem)
    values = {"org_name": "", "time_zone": "UTC", "name": "", "email": ""}
    if request.method == "GET":
        return render(request, "members/setup.html", {"values": values, "error": None},
                      headers={"referrer-policy": "no-referrer"})
    data = await web.form(request)
    values = {k: web.text(data, k, 300) for k in values}
    password = web.text(data, "password", 1000)

    def do() -> Any:
        with web.db(request).begin() as s:
            member = services.complete_setup(
                s, token, org_name=values["org_name"], time_zone=values["time_zone"] or "UTC",
                name=values["name"], email=values["email"], password=password, pwd_ctx=web.pwd_ctx(request),
                ip=web.client_ip(request))
            return auth.start_session(s, web.settings(request), member, ip=web.client_ip(request),
                                      user_agent=web.user_agent(request))

    try:
        session_token = await run_db(do)
    except MemberError as exc:
        return render(request, "members/setup.html", {"values": values, "error": str(exc)}, status_code=400)
    services.load_org_state(request.app)
    response = see_other(request.url_for("home").path, "Welcome! Your organization is ready. Invite members next.")
    web.set_session_cookie(request, response, session_token)
    return response


async def signin(request: Request) -> Response:
    next_path = security.safe_next(request.query_params.get("next"))
    if request.method == "GET":
        if web.current_member(request):
            return see_other(next_path)
        return render(request, "members/signin.html", {"email": "", "error": None, "next": next_path})
    data = await web.form(request)
    email, password = web.text(data, "email", 300), web.text(data, "password", 1000)
    next_path = security.safe_next(web.text(data, "next", 500))

    def do() -> Any:
        with web.db(request).begin() as s:
            try:
                _member, token = auth.sign_in_password(
                    s, web.settings(request), web.pwd_ctx(request), email=email, password=password,
                    ip=web.client_ip(request), user_agent=web.user_agent(request))
                return token
            except MemberError as exc:
                # keep the failure's audit row and rate-limit count: commit, then report
                return exc

    try:
        result = await run_db(do)
    except RateLimited:
        await run_db(_audit_rate_limit, request, "signin")
        return render(request, "members/signin.html", {"email": email, "error": RATE_LIMITED, "next": next_path},
                      status_code=429)
    if isinstance(result, MemberError):
        return render(request, "members/signin.html", {"email": email, "error": str(result), "next": next_path},
                      status_code=400)
    response = see_other(next_path)
    web.set_session_cookie(request, response, result)
    return response


def _audit_rate_limit(request: Request, what: str) -> None:
    with web.db(request).begin() as s:
        audit(s, "ratelimit." + what, actor_id=None, ip=web.client_ip(request))


async def _link_request(request: Request, purpose: str, template: str) -> Response:
    if request.method == "GET":
        return render(request, template, {"email": "", "error": None, "sent": None})
    data = await web.form(request)
    email = web.text(data, "email", 300).strip()

    def do() -> None:
        with web.db(request).begin() as s:
            auth.request_link(s, web.settings(request), email=email, purpose=purpose,
                              ip=web.client_ip(request), org_name=web.org_name(request))

    try:
        await run_db(do)
    except RateLimited:
        await run_db(_audit_rate_limit, request, purpose)
        return render(request, template, {"email": email, "error": RATE_LIMITED, "sent": None}, status_code=429)
    minutes = auth.SIGNIN_LINK_MINUTES if purpose == TokenPurpose.SIGNIN else auth.RESET_MINUTES
    return render(request, template, {"email": email, "error": None,
                                      "sent": LINK_SENT.format(email=email, minutes=minutes)})


async def signin_link_request(request: Request) -> Response:
    return await _link_request(request, TokenPurpose.SIGNIN, "members/signin_link.html")


async def reset_request(request: Request) -> Response:
    return await _link_request(request, TokenPurpose.RESET, "members/reset_request.html")


async def _peek_link(request: Request, purpose: str) -> tuple[str, str | None, str | None]:
    token = request.path_params["token"]

    def check() -> tuple[str | None, str | None]:
        with web.db(request).read() as s:
            try:
                m = auth.link_member(s, token, purpose)
                return m.name, None
            except MemberError as exc:
                return None, str(exc)

    name, problem = await run_db(check)
    return token, name, problem


NO_REFERRER = {"referrer-policy": "no-referrer"}


async def signin_link(request: Request) -> Response:
    """GET shows a button; only the POST signs in, so link scanners in mail systems can't use the link up."""
    token, name, problem = await _peek_link(request, TokenPurpose.SIGNIN)
    if problem:
        return render(request, "members/link_problem.html", {"error": problem}, status_code=400,
                      headers=NO_REFERRER)
    if request.method == "GET":
        return render(request, "members/signin_confirm.html", {"name": name}, headers=NO_REFERRER)

    def do() -> Any:
        with web.db(request).begin() as s:
            return auth.sign_in_with_link(s, web.settings(request), token=token, ip=web.client_ip(request),
                                          user_agent=web.user_agent(request))[1]

    try:
        session_token = await run_db(do)
    except MemberError as exc:
        return render(request, "members/link_problem.html", {"error": str(exc)}, status_code=400)
    response = see_other(request.url_for("home").path, f"Welcome, {name}. You are signed in.")
    web.set_session_cookie(request, response, session_token)
    return response


async def accept_invite(request: Request) -> Response:
    token, name, problem = await _peek_link(request, TokenPurpose.INVITE)
    if problem:
        return render(request, "members/link_problem.html", {"error": problem}, status_code=400,
                      headers=NO_REFERRER)
    if request.method == "GET":
        return render(request, "members/invite.html", {"name": name, "error": None}, headers=NO_REFERRER)
    data = await web.form(request)
    with_password = web.text(data, "choice", 20) != "links"
    password = web.text(data, "password", 1000) if with_password else None
    if with_password and not password:
        return render(request, "members/invite.html",
                      {"name": name, "error": "Choose a password, or continue without one."}, status_code=400)

    def do() -> Any:
        with web.db(request).begin() as s:
            return auth.accept_invitation(s, web.settings(request), web.pwd_ctx(request), token=token,
                                          password=password, ip=web.client_ip(request),
                                          user_agent=web.user_agent(request))[1]

    try:
        session_token = await run_db(do)
    except MemberError as exc:
        return render(request, "members/invite.html", {"name": name, "error": str(exc)}, status_code=400)
    response = see_other(request.url_for("home").path, f"Welcome, {name}! You are a member now.")
    web.set_session_cookie(request, response, session_token)
    return response


async def reset(request: Request) -> Response:
    token, name, problem = await _peek_link(request, TokenPurpose.RESET)
    if problem:
        return render(request, "members/link_problem.html", {"error": problem}, status_code=400,
                      headers=NO_REFERRER)
    if request.method == "GET":
        return render(request, "members/reset.html", {"name": name, "error": None}, headers=NO_REFERRER)
    data = await web.form(request)
    password = web.text(data, "password", 1000)

    def do() -> Any:
        with web.db(request).begin() as s:
            return auth.reset_password(s, web.settings(request), web.pwd_ctx(request), token=token,
                                       password=password, ip=web.client_ip(request),
                                       user_agent=web.user_agent(request))[1]

    try:
        session_token = await run_db(do)
    except MemberError as exc:
        return render(request, "members/reset.html", {"name": name, "error": str(exc)}, status_code=400)
    response = see_other(request.url_for("home").path,
                         "Your password is changed. Every other device was signed out.")
    web.set_session_cookie(request, response, session_token)
    return response


async def signout(request: Request) -> Response:
    me = web.current_member(request)
    if me is not None:
        def do() -> None:
            with web.db(request).begin() as s:
                auth.sign_out(s, me.session_id)
        await run_db(do)
    response = see_other(request.url_for("signin").path, "You are signed out.")
    web.clear_session_cookie(request, response)
    return response


async def signout_everywhere(request: Request) -> Response:
    me = web.require_member(request)

    def do() -> None:
        with web.db(request).begin() as s:
            auth.sign_out_everywhere(s, me.id)
            audit(s, "signout.everywhere", actor_id=me.id, ip=web.client_ip(request), object_type="member",
                  object_id=me.id)

    await run_db(do)
    response = see_other(request.url_for("signin").path, "You are signed out on every device.")
    web.clear_session_cookie(request, response)
    return response


# --- profile ---------------------------------------------------------------------------------------------------

async def _profile_page(request: Request, errors: dict[str, str] | None = None, status: int = 200) -> Response:
    me = web.require_member(request)

    def load() -> Any:
        with web.db(request).read() as s:
            return services.get_member(s, me.id)

    member = await run_db(load)
    return render(request, "members/profile.html", {"member": member, "errors": errors or {}},
                  status_code=status)


async def profile(request: Request) -> Response:
    return await _profile_page(request)


async def profile_name(request: Request) -> Response:
    me = web.require_member(request)
    data = await web.form(request)

    def do() -> None:
        with web.db(request).begin() as s:
            auth.rename(s, member_id=me.id, name=web.text(data, "name", 300))

    try:
        await run_db(do)
    except MemberError as exc:
        return await _profile_page(request, {"name": str(exc)}, 400)
    return see_other(request.url_for("profile").path, "Your name is saved.")


async def profile_password(request: Request) -> Response:
    me = web.require_member(request)
    data = await web.form(request)

    def do() -> None:
        with web.db(request).begin() as s:
            auth.change_password(s, web.pwd_ctx(request), member_id=me.id, current=web.text(data, "current", 1000),
                                 new=web.text(data, "new", 1000), keep_session_id=me.session_id,
                                 ip=web.client_ip(request))

    try:
        await run_db(do)
    except MemberError as exc:
        return await _profile_page(request, {"password": str(exc)}, 400)
    return see_other(request.url_for("profile").path,
                     "Your password is changed. Your other devices were signed out.")


async def profile_email(request: Request) -> Response:
    me = web.require_member(request)
    data = await web.form(request)

    def do() -> str:
        with web.db(request).begin() as s:
            return auth.request_email_change(
                s, web.settings(request), web.pwd_ctx(request), member_id=me.id,
                new_email=web.text(data, "email", 300), password=web.text(data, "password", 1000),
                ip=web.client_ip(request), org_name=web.org_name(request))

    try:
        address = await run_db(do)
    except RateLimited:
        return await _profile_page(request, {"email": RATE_LIMITED}, 429)
    except MemberError as exc:
        return await _profile_page(request, {"email": str(exc)}, 400)
    return see_other(request.url_for("profile").path,
                     f"We sent a confirmation link to {address}. Your address changes when you open it.")


async def profile_email_confirm(request: Request) -> Response:
    token = request.path_params["token"]
    if request.method == "GET":
        def check() -> str | None:
            with web.db(request).read() as s:
                try:
                    row = services.peek_token(s, token, TokenPurpose.EMAIL_CHANGE)
                    return row.new_email
                except MemberError:
                    return None

        new_email = await run_db(check)
        if new_email is None:
            return render(request, "members/link_problem.html",
                          {"error": "This link is not valid or has expired. Ask for a new one."},
                          status_code=400, headers=NO_REFERRER)
        return render(request, "members/email_confirm.html", {"new_email": new_email}, headers=NO_REFERRER)

    def do() -> str:
        with web.db(request).begin() as s:
            return auth.confirm_email_change(s, token=token, ip=web.client_ip(request)).email

    try:
        address = await run_db(do)
    except MemberError as exc:
        return render(request, "members/link_problem.html", {"error": str(exc)}, status_code=400)
    return see_other(request.url_for("home").path, f"Your email address is now {address}.")


# --- admin: members --------------------------------------------------------------------------------------------

def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


async def admin_members(request: Request) -> Response:
    web.require_admin(request)
    qp = request.query_params
    q, status = qp.get("q", ""), qp.get("status", "")
    group_id, page = _int(qp.get("group")), _int(qp.get("page")) or 1

    def load() -> Any:
        with web.db(request).read() as s:
            return (services.directory(s, q=q, group_id=group_id, status=status, page=page),
                    services.list_groups(s))

    result, groups = await run_db(load)
    return page_or_fragment(request, "admin/members.html", "admin/_members_table.html",
                            {"result": result, "groups": groups})


async def admin_invite(request: Request) -> Response:
    me = web.require_admin(request)

    def groups() -> Any:
        with web.db(request).read() as s:
            return services.list_groups(s)

    values: dict[str, Any] = {"name": "", "email": "", "role": "member", "groups": []}
    if request.method == "GET":
        return render(request, "admin/invite.html", {"values": values, "error": None, "groups": await run_db(groups)})
    data = await web.form(request)
    values = {"name": web.text(data, "name", 300), "email": web.text(data, "email", 300),
              "role": web.text(data, "role", 20) or "member", "groups": web.int_list(data, "groups")}

    def do() -> str:
        with web.db(request).begin() as s:
            m = services.invite_member(s, web.settings(request), actor_id=me.id, name=values["name"],
                                       email=values["email"], group_ids=values["groups"], role=values["role"],
                                       ip=web.client_ip(request), org_name=web.org_name(request))
            return m.name

    try:
        name = await run_db(do)
    except MemberError as exc:
        return render(request, "admin/invite.html", {"values": values, "error": str(exc),
                                                     "groups": await run_db(groups)}, status_code=400)
    return see_other(request.url_for("admin:members").path, f"Invitation to {name} queued.")


async def admin_member(request: Request, errors: dict[str, str] | None = None, status: int = 200) -> Response:
    web.require_admin(request)
    member_id = request.path_params["member_id"]

    def load() -> Any:
        with web.db(request).read() as s:
            try:
                return services.get_member(s, member_id), services.list_groups(s)
            except MemberError:
                return None

    loaded = await run_db(load)
    if loaded is None:
        raise HTTPException(404)
    member, groups = loaded
    return render(request, "admin/member.html", {"member": member, "groups": groups, "errors": errors or {}},
                  status_code=status)


async def _admin_change_failed(request: Request, key: str, change: Any) -> str | None:
    """Run an admin's change to the member or group named in the URL in one write transaction. Returns why it
    was refused, or None when it was done; an unknown id is a 404."""
    me = web.require_admin(request)
    object_id = request.path_params[key]
    data = await web.form(request)

    def do() -> None:
        with web.db(request).begin() as s:
            change(s, me, object_id, data)

    try:
        await run_db(do)
    except NotFound as exc:
        raise HTTPException(404) from exc
    except MemberError as exc:
        return str(exc)
    return None


async def _admin_change(request: Request, change: Any, done: str) -> Response:
    error = await _admin_change_failed(request, "member_id", change)
    if error:
        return await admin_member(request, {"change": error}, 400)
    return see_other(request.url_for("admin:member", member_id=request.path_params["member_id"]).path, done)


async def admin_member_role(request: Request) -> Response:
    def change(s: Any, me: Any, member_id: int, data: Any) -> None:
        services.change_role(s, actor_id=me.id, member_id=member_id, role=web.text(data, "role", 20),
                             ip=web.client_ip(request))
    return await _admin_change(request, change, "Role saved.")


async def admin_member_status(request: Request) -> Response:
    def change(s: Any, me: Any, member_id: int, data: Any) -> None:
        services.set_active(s, actor_id=me.id, member_id=member_id,
                            active=web.text(data, "active", 10) == "1", ip=web.client_ip(request))
    return await _admin_change(request, change, "Status saved.")


async def admin_member_groups(request: Request) -> Response:
    def change(s: Any, me: Any, member_id: int, data: Any) -> None:
        services.update_member_groups(s, actor_id=me.id, member_id=member_id,
                                      group_ids=web.int_list(data, "groups"), ip=web.client_ip(request))
    return await _admin_change(request, change, "Groups saved.")


async def admin_member_reinvite(request: Request) -> Response:
    def change(s: Any, me: Any, member_id: int, data: Any) -> None:
        member = services.get_member(s, member_id)
        if member.status != Status.INVITED:
            raise MemberError("Only members who have not joined yet can be invited again.")
        services.send_invitation(s, web.settings(request), member, org_name=web.org_name(request))
        audit(s, "member.reinvite", actor_id=me.id, ip=web.client_ip(request), object_type="member",
              object_id=member.id, summary=member.name)
    return await _admin_change(request, change, "A new invitation is queued.")


# --- admin: groups ---------------------------------------------------------------------------------------------

async def admin_groups(request: Request) -> Response:
    me = web.require_admin(request)

    def load() -> Any:
        with web.db(request).read() as s:
            return services.list_groups(s)

    if request.method == "GET":
        return render(request, "admin/groups.html", {"groups": await run_db(load), "error": None, "values": {}})
    data = await web.form(request)
    values = {"name": web.text(data, "name", 300), "description": web.text(data, "description", 1000)}

    def do() -> str:
        with web.db(request).begin() as s:
            return services.create_group(s, actor_id=me.id, ip=web.client_ip(request), **values).name

    try:
        name = await run_db(do)
    except MemberError as exc:
        return render(request, "admin/groups.html", {"groups": await run_db(load), "error": str(exc),
                                                     "values": values}, status_code=400)
    return see_other(request.url_for("admin:groups").path, f"Group {name} created.")


async def _group_change(request: Request, change: Any, done: str) -> Response:
    error = await _admin_change_failed(request, "group_id", change)
    return see_other(request.url_for("admin:groups").path, error or done)


async def admin_group(request: Request) -> Response:
    def change(s: Any, me: Any, group_id: int, data: Any) -> None:
        services.rename_group(s, actor_id=me.id, group_id=group_id, name=web.text(data, "name", 300),
                              description=web.text(data, "description", 1000), ip=web.client_ip(request))
    return await _group_change(request, change, "Group saved.")


async def admin_group_delete(request: Request) -> Response:
    def change(s: Any, me: Any, group_id: int, data: Any) -> None:
        services.delete_group(s, actor_id=me.id, group_id=group_id, ip=web.client_ip(request))
    return await _group_change(request, change, "Group deleted. Its members stay members.")


async def admin_audit(request: Request) -> Response:
    web.require_admin(request)
    page = _int(request.query_params.get("page")) or 1

    def load() -> Any:
        with web.db(request).read() as s:
            return services.audit_log(s, page=page)

    events, total = await run_db(load)
    return render(request, "admin/audit.html", {"events": events, "total": total, "page": page,
                                                "pages": max(1, -(-total // services.PAGE_SIZE))})

